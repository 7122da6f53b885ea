package dev.makegood.kstreams;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

import dev.makegood.kstreams.Model.History;
import dev.makegood.kstreams.Model.Window;

/**
 * Every accepted revision of every incident on the outage topic, for every task: the topic is
 * small and every task needs all of it, as makegood's IncidentFeed. A plain consumer (assigned,
 * no group) reads it from the beginning; `readToEnd` before the streams start, then a daemon
 * thread follows it. Tasks see immutable snapshots; a new revision replaces the snapshot.
 */
final class IncidentFeed implements Runnable {
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final Codec codec;
    private final Policy policy;
    private final AtomicReference<Map<String, History>> snapshot = new AtomicReference<>(Map.of());
    private volatile boolean running = true;
    long invalid;

    IncidentFeed(String bootstrap, String topic, Codec codec, Policy policy) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        this.consumer = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> parts = consumer.partitionsFor(topic).stream()
            .map(i -> new TopicPartition(topic, i.partition())).toList();
        consumer.assign(parts);
        consumer.seekToBeginning(parts);
        this.codec = codec;
        this.policy = policy;
    }

    Map<String, History> snapshot() {
        return snapshot.get();
    }

    /** Poll until every partition is read to the end it had when this was called. */
    void readToEnd() {
        Map<TopicPartition, Long> ends = consumer.endOffsets(consumer.assignment());
        while (ends.entrySet().stream().anyMatch(e -> consumer.position(e.getKey()) < e.getValue())) {
            pollOnce();
        }
    }

    @Override
    public void run() {
        try {
            while (running) {
                pollOnce();
            }
        } finally {
            consumer.close(Duration.ofSeconds(2));
        }
    }

    void stop() {
        running = false;
        consumer.wakeup();
    }

    private void pollOnce() {
        Map<String, History> next = null;
        try {
            for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(200))) {
                Window w;
                try {
                    w = codec.window(rec.value());
                    if (w.services().isEmpty() || !policy.services.containsAll(w.services())
                        || (w.status().equals("CLOSED") && w.endedAt() == null)
                        || (w.endedAt() != null && w.endedAt() < w.startedAt())) {
                        throw new Codec.BadRecord("invalid window");
                    }
                } catch (Codec.BadRecord e) {
                    invalid++;
                    continue;
                }
                if (next == null) {
                    next = new HashMap<>(snapshot.get());
                }
                History accepted = next.getOrDefault(w.incidentId(), History.EMPTY).accept(w);
                if (accepted != null) {
                    next.put(w.incidentId(), accepted);
                }
            }
        } catch (org.apache.kafka.common.errors.WakeupException e) {
            return;
        }
        if (next != null && !next.equals(snapshot.get())) {
            snapshot.set(Map.copyOf(next));
        }
    }
}
