package dev.makegood.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.avro.io.BinaryDecoder;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

import dev.makegood.kstreams.Model.Entitlement;
import dev.makegood.kstreams.Model.History;
import dev.makegood.kstreams.Model.Remedy;
import dev.makegood.kstreams.Model.Source;

/**
 * The entitlement x window join of one task (one entitlement partition).
 *
 * Entitlement states go into a RocksDB store (changelogged), newest updated_at wins, and each new
 * state is decided against every incident the task has swept so far; what it sends is what the
 * new state earns beyond what the state it replaced earned (remedy ids are deterministic, so the
 * difference is exact). A new incident revision is swept over the whole store in chunks from a
 * wall-clock punctuation (a long sweep in one call would outlive the transaction timeout under
 * exactly-once), again sending only what the new revision adds. While a sweep is under way a
 * state arriving for a key the sweep has not reached yet is decided under the old view, so the
 * sweep sends its part exactly once. What the task has swept (and how far a sweep under way got)
 * is kept in a second store, so a restarted or migrated task neither repeats nor skips a sweep.
 */
final class JoinProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    static final String STORE = "entitlements";
    static final String PROGRESS = "sweep-progress";
    /** Wall time one task's sweep may take per punctuation: every task's slice, then a commit,
     *  must stay well inside the exactly-once transaction timeout (10 s in Kafka Streams). */
    static final Duration SWEEP_SLICE = Duration.ofMillis(100);

    private final Codec codec;
    private final Decider decider;
    private final IncidentFeed feed;
    private final Stats stats;
    private final Codec.Writer remedies;
    private final Codec.Writer notices;
    private final String topic;
    private final BinaryDecoder[] reuse = new BinaryDecoder[1];

    private ProcessorContext<byte[], byte[]> context;
    private KeyValueStore<Bytes, byte[]> store;
    private KeyValueStore<String, String> progress;
    private int partition;
    private Map<String, History> view = Map.of();     // the incidents this task has swept
    private Map<String, History> sweeping;            // the view a sweep under way moves to
    private Bytes swept;                              // the last key that sweep has decided

    JoinProcessor(Codec codec, Policy policy, IncidentFeed feed, Stats stats, Codec.Writer remedies,
                  Codec.Writer notices, String topic) {
        this.codec = codec;
        this.decider = new Decider(policy);
        this.feed = feed;
        this.stats = stats;
        this.remedies = remedies;
        this.notices = notices;
        this.topic = topic;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        this.context = context;
        this.store = context.getStateStore(STORE);
        this.progress = context.getStateStore(PROGRESS);
        this.partition = context.taskId().partition();
        // what this task had swept, and the sweep it was in, come back with its stores (changelogged,
        // and under exactly-once committed with the outputs they account for); a fresh task starts
        // from the incidents as they are
        String had = progress.get("view");
        if (had == null) {
            try (KeyValueIterator<Bytes, byte[]> it = store.all()) {
                had = it.hasNext() ? "" : counts(feed.snapshot());
            }
            progress.put("view", had);
        }
        view = upTo(had);
        String target = progress.get("target");
        if (target != null) {
            sweeping = upTo(target);
            String resume = progress.get("resume");
            swept = resume == null ? null : Bytes.wrap(HexFormat.of().parseHex(resume));
            stats.sweepStarted();
        }
        context.schedule(Duration.ofMillis(50), PunctuationType.WALL_CLOCK_TIME, this::sweep);
    }

    /** "incident=revisions;..." of a view: how many accepted revisions of each incident it holds. */
    private static String counts(Map<String, History> incidents) {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<String, History> e : new TreeMap<>(incidents).entrySet()) {
            b.append(e.getKey()).append('=').append(e.getValue().revisions().size()).append(';');
        }
        return b.toString();
    }

    /** The view `counts` described, from the feed's histories (they only ever grow at the end). */
    private Map<String, History> upTo(String counts) {
        Map<String, History> latest = feed.snapshot();
        Map<String, History> out = new HashMap<>();
        for (String part : counts.split(";")) {
            int eq = part.lastIndexOf('=');
            if (eq <= 0) {
                continue;
            }
            History h = latest.get(part.substring(0, eq));
            if (h != null) {
                int n = Math.min(Integer.parseInt(part.substring(eq + 1)), h.revisions().size());
                out.put(part.substring(0, eq), new History(h.revisions().subList(0, n)));
            }
        }
        return Map.copyOf(out);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        try {
            Entitlement e = valid(codec.entitlement(record.value(), reuse));
            Bytes key = Bytes.wrap(e.entitlementId().getBytes(StandardCharsets.UTF_8));
            byte[] heldBytes = store.get(key);
            Entitlement held = heldBytes == null ? null : stored(heldBytes);
            if (held != null && held.updatedAt() > e.updatedAt()) {
                return;                                 // a newer state is already stored
            }
            long offset = context.recordMetadata().map(m -> m.offset()).orElse(-1L);
            store.put(key, ByteBuffer.allocate(8 + record.value().length).putLong(offset).put(record.value()).array());
            boolean notSweptYet = sweeping != null && (swept == null || key.compareTo(swept) > 0);
            Map<String, History> v = notSweptYet || sweeping == null ? view : sweeping;
            send(added(decideAll(v, held), decideAll(v, e)), new Source(topic, partition, offset), record.timestamp());
        } catch (Codec.BadRecord bad) {
            stats.invalid.incrementAndGet();
        } finally {
            stats.processed();
        }
    }

    /** A slice of the sweep under way (at most SWEEP_SLICE of wall time), or the start of one when
     *  the incidents changed. Its progress is stored with the outputs it sent. */
    private void sweep(long now) {
        if (sweeping == null) {
            Map<String, History> latest = feed.snapshot();
            if (latest.equals(view)) {
                return;
            }
            sweeping = latest;
            swept = null;
            progress.put("target", counts(latest));
            progress.delete("resume");
            stats.sweepStarted();
        }
        long until = System.nanoTime() + SWEEP_SLICE.toNanos();
        int n = 0;
        try (KeyValueIterator<Bytes, byte[]> it = swept == null ? store.all() : store.range(swept, null)) {
            while (it.hasNext() && (n % 256 != 0 || System.nanoTime() < until)) {
                KeyValue<Bytes, byte[]> kv = it.next();
                if (kv.key.equals(swept)) {
                    continue;
                }
                swept = kv.key;
                n++;
                try {
                    Entitlement e = stored(kv.value);
                    long offset = ByteBuffer.wrap(kv.value, 0, 8).getLong();
                    send(added(decideAll(view, e), decideAll(sweeping, e)), new Source(topic, partition, offset), now);
                } catch (Codec.BadRecord bad) {
                    stats.invalid.incrementAndGet();
                }
            }
            stats.swept(n);
            if (it.hasNext()) {
                progress.put("resume", HexFormat.of().formatHex(swept.get()));
            } else {
                view = sweeping;
                sweeping = null;
                swept = null;
                progress.put("view", counts(view));
                progress.delete("target");
                progress.delete("resume");
                stats.sweepDone();
            }
        }
    }

    private Entitlement stored(byte[] value) throws Codec.BadRecord {
        byte[] body = new byte[value.length - 8];
        System.arraycopy(value, 8, body, 0, body.length);
        return codec.entitlement(body, reuse);
    }

    /** The checks of processors/validate.py validate_entitlement that a decoded record can fail. */
    private Entitlement valid(Entitlement e) throws Codec.BadRecord {
        if (e.entitlementId().isBlank() || e.userId().isBlank() || !decider.policy().services.contains(e.service())
            || e.validUntil() < e.validFrom() || e.priceKrw() < 0 || e.periodDays() < 1) {
            throw new Codec.BadRecord("invalid entitlement state");
        }
        return e;
    }

    private List<Remedy> decideAll(Map<String, History> incidents, Entitlement e) {
        if (e == null || incidents.isEmpty()) {
            return List.of();
        }
        List<Remedy> out = new ArrayList<>();
        for (History h : new TreeMap<>(incidents).values()) {
            out.addAll(decider.decide(h, e));
        }
        return out;
    }

    private static List<Remedy> added(List<Remedy> before, List<Remedy> after) {
        if (before.isEmpty()) {
            return after;
        }
        Set<String> had = new HashSet<>();
        for (Remedy r : before) {
            had.add(r.remedyId());
        }
        return after.stream().filter(r -> !had.contains(r.remedyId())).toList();
    }

    private void send(List<Remedy> out, Source src, long timestamp) {
        for (Remedy r : out) {
            byte[] key = r.userId().getBytes(StandardCharsets.UTF_8);
            context.forward(new Record<>(key, remedies.write(Codec.remedyRecord(remedies.schema(), r, src)), timestamp),
                            PeerApp.REMEDIES);
            String noticeId = decider.noticeId(r);
            context.forward(new Record<>(key, notices.write(Codec.noticeRecord(notices.schema(), noticeId, r, src)),
                                         timestamp), PeerApp.NOTICES);
            stats.remedies.incrementAndGet();
        }
    }
}
