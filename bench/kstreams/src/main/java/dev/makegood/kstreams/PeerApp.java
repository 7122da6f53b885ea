package dev.makegood.kstreams;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.Stores;

/**
 * makegood's entitlement x window join as a Kafka Streams application: the JVM peer of the bench.
 *
 * Reads {@code <ns>.entitlement.states.v1} and {@code <ns>.outage.windows.v1} (the workers' topics,
 * the workers' Avro in registry framing), decides with a port of the reference rules, and writes
 * remedies and their notices to its own topics {@code <ns>.bench.kstreams.remedies.v1} and
 * {@code <ns>.bench.kstreams.notices.v1}. Prints JSON lines on stdout: "running", "processed"
 * (when --events records were processed: seconds from the first to the N-th), "exit".
 *
 * <pre>java -Xmx1g -cp 'target/makegood-kstreams-peer.jar:target/libs/*' dev.makegood.kstreams.PeerApp
 *   --namespace NS --events N --state-dir DIR [--bootstrap H:P] [--registry URL] [--schemas DIR]
 *   [--policy FILE] [--threads 1] [--guarantee exactly_once_v2] [--commit-ms MS] [--exit-after-events]
 *   [--timeout S]</pre>
 */
public final class PeerApp {
    static final String REMEDIES = "remedies";
    static final String NOTICES = "notices";

    private PeerApp() {
    }

    public static void main(String[] argv) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        Map<String, String> a = args(argv);
        String ns = a.get("namespace");
        String bootstrap = a.getOrDefault("bootstrap", "127.0.0.1:9092");
        long events = Long.parseLong(a.getOrDefault("events", "0"));
        double timeout = Double.parseDouble(a.getOrDefault("timeout", "900"));
        String states = ns + ".entitlement.states.v1";
        String remedyTopic = ns + ".bench.kstreams.remedies.v1";
        String noticeTopic = ns + ".bench.kstreams.notices.v1";

        Policy policy = Policy.load(Path.of(a.getOrDefault("policy", "deploy/policies/kakao-1015.yaml")));
        Codec codec = new Codec(a.getOrDefault("registry", "http://127.0.0.1:8081/apis/ccompat/v7"),
                                Path.of(a.getOrDefault("schemas", "schemas")));
        int remedyId = codec.register(remedyTopic + "-value", "remedy_action");
        int noticeId = codec.register(noticeTopic + "-value", "user_notice");
        IncidentFeed feed = new IncidentFeed(bootstrap, ns + ".outage.windows.v1", codec, policy);
        feed.readToEnd();
        Thread feeder = new Thread(feed, "incident-feed");
        feeder.setDaemon(true);
        feeder.start();

        Stats stats = new Stats(events);
        Topology t = new Topology();
        t.addSource("states", new ByteArrayDeserializer(), new ByteArrayDeserializer(), states);
        t.addProcessor("join", () -> new JoinProcessor(codec, policy, feed, stats,
                                                       codec.new Writer(remedyId, "remedy_action"),
                                                       codec.new Writer(noticeId, "user_notice"), states), "states");
        t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(JoinProcessor.STORE),
                                                    Serdes.Bytes(), Serdes.ByteArray()), "join");
        t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(JoinProcessor.PROGRESS),
                                                    Serdes.String(), Serdes.String()), "join");
        t.addSink(REMEDIES, remedyTopic, new ByteArraySerializer(), new ByteArraySerializer(), "join");
        t.addSink(NOTICES, noticeTopic, new ByteArraySerializer(), new ByteArraySerializer(), "join");

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, ns + ".bench.kstreams");
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state-dir"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(a.getOrDefault("threads", "1")));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.getOrDefault("guarantee", StreamsConfig.EXACTLY_ONCE_V2));
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        if (a.containsKey("commit-ms")) {       // Kafka Streams' default: 100 ms under exactly-once
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(a.get("commit-ms")));
        }

        KafkaStreams streams = new KafkaStreams(t, p);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && before == KafkaStreams.State.REBALANCING) {
                System.out.println(stats.json("running"));
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                .SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(java.time.Duration.ofSeconds(20));
            feed.stop();
            System.out.println(stats.json("exit"));
            System.out.flush();
        }));
        streams.start();

        boolean reported = false;
        long lastProgress = System.nanoTime();
        while (!stopped.await(20, TimeUnit.MILLISECONDS)) {
            if (System.nanoTime() - lastProgress > 2_000_000_000L) {      // the log's timeline
                System.out.println(stats.json("progress"));
                lastProgress = System.nanoTime();
            }
            if (!reported && events > 0 && stats.targetNanos != 0) {
                System.out.println(stats.json("processed"));
                reported = true;
                if (a.containsKey("exit-after-events")) {
                    break;
                }
            }
            if (!reported && stats.firstNanos != 0 && (System.nanoTime() - stats.firstNanos) / 1e9 > timeout) {
                System.out.println(stats.json("timed_out"));
                break;
            }
        }
        System.exit(stopped.getCount() == 0 ? 1 : 0);      // the shutdown hook closes the streams
    }

    private static Map<String, String> args(String[] argv) {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + argv[i]);
            }
            String name = argv[i].substring(2);
            if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
                out.put(name, argv[++i]);
            } else {
                out.put(name, "true");
            }
        }
        if (!out.containsKey("namespace") || !out.containsKey("state-dir")) {
            throw new IllegalArgumentException("--namespace and --state-dir are required");
        }
        return out;
    }
}
