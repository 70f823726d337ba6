/*
 * WA1 in Kafka Streams 4.1, written the idiomatic Kafka Streams way, as its users would: count
 * events per key per one-minute tumbling event-time window with 5 s of grace, and emit each
 * window's final count once, when the window closes.
 *
 *   stream(input)                  String keys, byte[] values (the payload is not read)
 *   .groupByKey()                  the input is already keyed: no repartition topic
 *   .windowedBy(1 min, grace 5 s)
 *   .count()                       RocksDB window store + changelog, record cache on (default)
 *   .suppress(untilWindowCloses)   unbounded in-memory buffer + changelog: one final result
 *                                  per window, emitted once stream time passes end + grace
 *   .toStream().to(output)         key: TimeWindowedSerializer(String), value: 8-byte long
 *
 * Configuration; everything else is left at Kafka Streams' defaults:
 *   processing.guarantee from --guarantee exactly_once_v2 (exactly-once, the default) or
 *                                         at_least_once (at-least-once): the guarantee eddy
 *                                         runs with in the same benchmark
 *   commit.interval.ms=100                exactly_once_v2's default (a transaction every
 *                                         100 ms); set for at_least_once too, whose default
 *                                         is 30 s: eddy commits every 100 ms under both, and
 *                                         the record cache forwards counts to suppress only
 *                                         at commits, so 30 s would hold results back
 *   num.stream.threads=--threads          default 2: one per input partition, 2 cores
 *   auto.offset.reset=earliest            the input is written before the peer starts
 *   application.id, bootstrap.servers, state.dir from the flags.
 *
 * Protocol (benchmarks/kstreams/README.md): prints READY on stdout the first time the client
 * is RUNNING; on SIGTERM or SIGINT closes (60 s at most) and exits 0, or 1 if the close did
 * not finish; exits 1 if Kafka Streams fails, 2 on bad flags.
 */
package dev.eddy.bench;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.Suppressed.BufferConfig;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;

public final class WA1 {
    private static final Duration WINDOW = Duration.ofMinutes(1);
    private static final Duration GRACE = Duration.ofSeconds(5);
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(60);

    private static final List<String> FLAGS =
            List.of("brokers", "input", "output", "app-id", "state-dir", "threads", "guarantee");
    private static final Map<String, String> GUARANTEES = Map.of(
            "exactly-once", StreamsConfig.EXACTLY_ONCE_V2,
            "at-least-once", StreamsConfig.AT_LEAST_ONCE);
    private static final String USAGE = String.join("\n",
            "usage: java -jar eddy-kstreams-wa1.jar --brokers HOST:PORT[,...]",
            "           --input TOPIC --output TOPIC --app-id ID --state-dir DIR [--threads N]",
            "           [--guarantee exactly-once|at-least-once]",
            "  --brokers    bootstrap.servers",
            "  --input      input topic (String keys, event-time record timestamps)",
            "  --output     output topic for the final per-window counts",
            "  --app-id     application.id (consumer group, prefix of internal topics)",
            "  --state-dir  state.dir (RocksDB stores)",
            "  --threads    num.stream.threads (default 2)",
            "  --guarantee  processing.guarantee: exactly-once (exactly_once_v2, the default)",
            "               or at-least-once (at_least_once)");

    public static void main(String[] args) throws InterruptedException {
        Map<String, String> flags = parseFlags(args);

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(flags.get("input"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                .count(Materialized.with(Serdes.String(), Serdes.Long()))
                .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))
                .toStream()
                .to(flags.get("output"), Produced.with(
                        WindowedSerdes.timeWindowedSerdeFrom(String.class, WINDOW.toMillis()),
                        Serdes.Long()));

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, flags.get("app-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, flags.get("state-dir"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, flags.get("threads"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, GUARANTEES.get(flags.get("guarantee")));
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        AtomicBoolean ready = new AtomicBoolean();
        AtomicBoolean failed = new AtomicBoolean();
        CountDownLatch error = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && ready.compareAndSet(false, true)) {
                System.out.println("READY");
                System.out.flush();
            } else if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                error.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean closed = streams.close(CLOSE_TIMEOUT);
            // After a signal the JVM exits with 128+signal once the hooks finish; a clean
            // close is a success, so report it as one.
            Runtime.getRuntime().halt(closed && !failed.get() ? 0 : 1);
        }, "wa1-shutdown"));

        streams.start();
        error.await(); // only an ERROR state gets past this; a signal ends the JVM in the hook
        System.err.println("wa1: Kafka Streams stopped with an error (see the log above)");
        System.exit(1);
    }

    /** Parses "--name value" pairs; prints the usage and exits 2 on anything unexpected. */
    private static Map<String, String> parseFlags(String[] args) {
        Map<String, String> flags = new HashMap<>();
        flags.put("threads", "2");
        flags.put("guarantee", "exactly-once");
        for (int i = 0; i < args.length; i += 2) {
            String name = args[i].startsWith("--") ? args[i].substring(2) : "";
            if (!FLAGS.contains(name) || i + 1 == args.length) {
                usage("unknown flag or missing value: " + args[i]);
            }
            flags.put(name, args[i + 1]);
        }
        for (String name : FLAGS) {
            if (!flags.containsKey(name)) {
                usage("missing --" + name);
            }
        }
        if (!GUARANTEES.containsKey(flags.get("guarantee"))) {
            usage("--guarantee must be exactly-once or at-least-once, not " + flags.get("guarantee"));
        }
        try {
            if (Integer.parseInt(flags.get("threads")) < 1) {
                usage("--threads must be at least 1");
            }
        } catch (NumberFormatException e) {
            usage("--threads: not a number: " + flags.get("threads"));
        }
        return flags;
    }

    private static void usage(String problem) {
        System.err.println("wa1: " + problem);
        System.err.println(USAGE);
        System.exit(2);
    }
}
