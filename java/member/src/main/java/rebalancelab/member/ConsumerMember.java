package rebalancelab.member;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidGroupIdException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A member that is Kafka's own consumer (kafka-clients' {@link KafkaConsumer}), polled on a thread
 * of its own (a KafkaConsumer is not thread-safe: every call, the callbacks included, happens on
 * that thread).
 *
 * <p>Options ({@code --option KEY=VALUE}): {@code protocol} {@code eager} (default: the classic
 * protocol with the configured assignor), {@code cooperative} (classic, Kafka's
 * CooperativeStickyAssignor; needs assignor sticky) or {@code consumer} (KIP-848: the broker assigns
 * with {@code group.remote.assignor}, range or uniform for sticky); {@code commit} {@code auto}
 * (default: {@code enable.auto.commit}, every {@code auto_commit_interval_ms}, and once more on close,
 * as the Java consumer does) or {@code manual} (commitSync every {@code auto_commit_interval_ms},
 * the position advanced by one per commit as our members do, there being no records);
 * {@code enable_auto_commit} {@code false} (a scenario's {@code offsets: none}) turns commits off
 * whichever {@code commit} is chosen: {@code enable.auto.commit=false}, so neither the periodic
 * auto-commit nor the ones before a rejoin and on close ({@code ConsumerCoordinator.onJoinPrepare},
 * {@code close -> maybeAutoCommitOffsetsSync}) happen, and no commitSync;
 * {@code request_timeout_ms}, {@code retry_backoff_ms}.
 */
final class ConsumerMember implements Member, ConsumerRebalanceListener {
    private final Settings settings;
    private final EventSink sink;
    private final String protocol;
    private final boolean autoCommit;
    private final boolean commits;
    private final int commitIntervalMs;
    private final int requestTimeoutMs;
    private final Thread thread;
    private final AtomicBoolean stopping = new AtomicBoolean();
    private final AtomicBoolean failed = new AtomicBoolean();
    private final CountDownLatch left = new CountDownLatch(1);
    private volatile KafkaConsumer<byte[], byte[]> consumer;

    // Touched only on the poll thread (the consumer's callbacks run there too).
    private Integer generation;
    private String leader;
    private String kafkaMemberId = "";
    private Map<String, List<TopicPartition>> computed;
    private final Map<TopicPartition, Long> positions = new HashMap<>();
    private long nextCommitNs;

    ConsumerMember(Settings settings, EventSink sink) {
        this.settings = settings;
        this.sink = sink;
        this.protocol = settings.option("protocol", "eager");
        this.autoCommit = switch (settings.option("commit", "auto")) {
            case "auto" -> true;
            case "manual" -> false;
            default -> throw new IllegalArgumentException(
                    "options.commit: expected auto or manual, got " + settings.option("commit", ""));
        };
        this.commits = settings.autoCommitEnabled();
        this.commitIntervalMs = settings.intOption("auto_commit_interval_ms", 5_000);
        this.requestTimeoutMs = settings.intOption("request_timeout_ms", 30_000);
        properties(); // fail on a bad configuration now, before anything starts
        this.thread = new Thread(this::run, "consumer-" + settings.memberId());
    }

    /** The consumer's configuration, from the member's settings and the scenario's profile. */
    Properties properties() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, settings.bootstrap());
        p.put(ConsumerConfig.GROUP_ID_CONFIG, settings.group());
        // The client id is the member id, so the coordinator's member ids name our members the way
        // the Python members' do (client_id_of in coordinator_mode/client/settings.py).
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, settings.memberId());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, Boolean.toString(commits && autoCommit));
        p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, commitIntervalMs);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, requestTimeoutMs);
        p.put(ConsumerConfig.RETRY_BACKOFF_MS_CONFIG, settings.intOption("retry_backoff_ms", 100));
        p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, settings.rebalanceTimeoutMs());
        p.put(ConsumerConfig.INTERCEPTOR_CLASSES_CONFIG, CommitReporter.class.getName());
        p.put(LeaderNamingAssignor.MEMBER_CONFIG, settings.memberId());
        if (settings.groupInstanceId() != null) {
            p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, settings.groupInstanceId());
        }
        switch (protocol) {
            case "eager", "cooperative" -> {
                String assignor = settings.assignor();
                if (protocol.equals("cooperative")) {
                    if (!assignor.equals("sticky")) {
                        throw new IllegalArgumentException(
                                "options.protocol=cooperative needs assignor sticky (Kafka's only cooperative "
                                        + "assignor is cooperative-sticky), got " + assignor);
                    }
                    assignor = "cooperative-sticky";
                }
                LeaderNamingAssignor.kafkaAssignor(assignor); // refuse an unknown name here
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
                p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, LeaderNamingAssignor.class.getName());
                p.put(LeaderNamingAssignor.DELEGATE_CONFIG, assignor);
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, settings.sessionTimeoutMs());
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, settings.heartbeatIntervalMs());
            }
            case "consumer" -> {
                // KIP-848: the session and heartbeat interval are the group's, set on the broker.
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
                p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, switch (settings.assignor()) {
                    case "range" -> "range";
                    case "sticky" -> "uniform";
                    default -> throw new IllegalArgumentException(
                            "options.protocol=consumer: the broker's assignors are range and uniform "
                                    + "(assignor range or sticky), got " + settings.assignor());
                });
            }
            default -> throw new IllegalArgumentException(
                    "options.protocol: expected eager, cooperative or consumer, got " + protocol);
        }
        return p;
    }

    @Override
    public void start() {
        LeaderNamingAssignor.HOOKS.put(settings.memberId(), new AssignorHooks());
        CommitReporter.LISTENERS.put(settings.memberId(), this::committed);
        thread.start();
    }

    @Override
    public boolean failed() {
        return failed.get();
    }

    @Override
    public void leave(long boundMs) throws InterruptedException {
        stopping.set(true);
        KafkaConsumer<byte[], byte[]> c = consumer;
        if (c != null) {
            c.wakeup(); // the one KafkaConsumer method that is safe from another thread
        }
        if (!left.await(boundMs, TimeUnit.MILLISECONDS)) {
            System.err.printf("%s: leave did not finish within %d ms%n", settings.memberId(), boundMs);
        }
    }

    private void run() {
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(properties())) {
            consumer = c;
            c.subscribe(settings.topics(), this);
            nextCommitNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(commitIntervalMs);
            while (!stopping.get()) {
                try {
                    c.poll(Duration.ofMillis(200));
                    if (protocol.equals("consumer")) {
                        followEpoch(c);
                    }
                    if (commits && !autoCommit) {
                        maybeCommit(c);
                    }
                } catch (WakeupException e) {
                    // leave() asked us to stop
                } catch (UnsupportedVersionException | InvalidGroupIdException | GroupAuthorizationException
                        | FencedInstanceIdException | InvalidConfigurationException e) {
                    throw e; // retrying cannot help (AbstractCoordinator's fatal errors): give up
                } catch (RuntimeException e) {
                    if (stopping.get()) {
                        break;
                    }
                    System.err.printf("%s: poll failed, polling again: %s%n", settings.memberId(), e);
                }
            }
            // close(): the auto-commit of the positions, onPartitionsRevoked, then LeaveGroup
            // (ConsumerCoordinator.close -> maybeAutoCommitOffsetsSync, onLeavePrepare, maybeLeaveGroup).
            c.close(Duration.ofMillis(requestTimeoutMs));
            sink.event("left", settings.memberId())
                    .generation(generation)
                    .with("kafka_member_id", kafkaMemberId)
                    .emit();
        } catch (RuntimeException e) {
            failed.set(true);
            System.err.printf("%s: giving up: %s%n", settings.memberId(), e);
        } finally {
            LeaderNamingAssignor.HOOKS.remove(settings.memberId());
            CommitReporter.LISTENERS.remove(settings.memberId());
            left.countDown();
        }
    }

    // -- the rebalance listener (poll thread) ----------------------------------------------------

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        if (!partitions.isEmpty()) {
            sink.event("revoked", settings.memberId())
                    .generation(generation)
                    .partitions(partitions)
                    .with("reason", stopping.get() ? "leave" : "rebalance")
                    .with("kafka_member_id", kafkaMemberId)
                    .emit();
        }
        partitions.forEach(positions::remove);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
        sink.event("session_lost", settings.memberId())
                .generation(generation)
                .with("reason", "partitions lost (fenced or session expired)")
                .with("kafka_member_id", kafkaMemberId)
                .emit();
        generation = null;
        positions.clear();
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> added) {
        KafkaConsumer<byte[], byte[]> c = consumer;
        if (protocol.equals("consumer")) {
            learnFromMetadata(c.groupMetadata());
        }
        Set<TopicPartition> owned = new TreeSet<>(Partitions.ORDER);
        owned.addAll(c.assignment()); // the complete set: a cooperative callback names only the added
        sink.event("assigned", settings.memberId())
                .generation(generation)
                .partitions(owned)
                .with("leader", leader)
                .with("kafka_member_id", kafkaMemberId)
                .emit();
        fetchOffsets(c, owned);
    }

    /**
     * KIP-848 bumps a member's epoch to the group's target epoch also when its own partitions stay
     * the same, and then calls no listener: announce the same set at the new epoch, so every member
     * of a reconciled group reports one generation, as in the classic protocol.
     */
    private void followEpoch(KafkaConsumer<byte[], byte[]> c) {
        ConsumerGroupMetadata metadata = c.groupMetadata();
        if (generation == null || metadata.generationId() <= generation) {
            return;
        }
        generation = metadata.generationId();
        Set<TopicPartition> owned = new TreeSet<>(Partitions.ORDER);
        owned.addAll(c.assignment());
        sink.event("assigned", settings.memberId())
                .generation(generation)
                .partitions(owned)
                .with("leader", null)
                .with("kafka_member_id", kafkaMemberId)
                .emit();
    }

    /** KIP-848 has no assignor on the client: the member epoch is the generation, nobody leads. */
    private void learnFromMetadata(ConsumerGroupMetadata metadata) {
        boolean rejoined = !metadata.memberId().equals(kafkaMemberId) || generation == null;
        generation = metadata.generationId();
        kafkaMemberId = metadata.memberId();
        leader = null;
        if (rejoined) {
            sink.event("joined", settings.memberId())
                    .generation(generation)
                    .with("kafka_member_id", kafkaMemberId)
                    .with("protocol", "consumer")
                    .emit();
        }
    }

    /** OffsetFetch for what we own now, as our members do after every assignment. */
    private void fetchOffsets(KafkaConsumer<byte[], byte[]> c, Set<TopicPartition> owned) {
        if (owned.isEmpty()) {
            return;
        }
        long sent = System.nanoTime();
        Map<TopicPartition, OffsetAndMetadata> committed;
        try {
            committed = c.committed(new HashSet<>(owned), Duration.ofMillis(requestTimeoutMs));
        } catch (WakeupException e) {
            stopping.set(true);
            return;
        } catch (RuntimeException e) {
            System.err.printf("%s: offset fetch failed: %s%n", settings.memberId(), e);
            return;
        }
        List<List<Object>> offsets = new ArrayList<>();
        for (TopicPartition tp : owned) {
            OffsetAndMetadata o = committed.get(tp);
            long offset = o == null ? -1 : o.offset();
            positions.put(tp, Math.max(offset, 0));
            offsets.add(List.of(tp.topic(), tp.partition(), offset));
        }
        sink.event("offsets_fetched", settings.memberId())
                .generation(generation)
                .with("offsets", offsets)
                .with("request_mono_ns", sent)
                .emit();
    }

    private void maybeCommit(KafkaConsumer<byte[], byte[]> c) {
        long now = System.nanoTime();
        if (now < nextCommitNs || positions.isEmpty()) {
            return;
        }
        nextCommitNs = now + TimeUnit.MILLISECONDS.toNanos(commitIntervalMs);
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        positions.forEach((tp, offset) -> next.put(tp, new OffsetAndMetadata(offset + 1)));
        try {
            c.commitSync(next, Duration.ofMillis(requestTimeoutMs)); // CommitReporter emits the event
        } catch (WakeupException e) {
            stopping.set(true);
        } catch (RuntimeException e) {
            System.err.printf("%s: commit failed: %s%n", settings.memberId(), e);
        }
    }

    /** An acknowledged commit (CommitReporter, on the poll thread). */
    private void committed(Map<TopicPartition, OffsetAndMetadata> offsets) {
        if (offsets.isEmpty()) {
            return; // an auto-commit before the first assignment: nothing was committed
        }
        List<TopicPartition> sorted = new ArrayList<>(offsets.keySet());
        sorted.sort(Partitions.ORDER);
        List<List<Object>> rows = new ArrayList<>();
        for (TopicPartition tp : sorted) {
            long offset = offsets.get(tp).offset();
            rows.add(List.of(tp.topic(), tp.partition(), offset));
            positions.computeIfPresent(tp, (k, v) -> offset);
        }
        sink.event("offsets_committed", settings.memberId()).generation(generation).with("offsets", rows).emit();
    }

    /** What the classic protocol's assignor tells us (poll thread, inside onJoinComplete). */
    private final class AssignorHooks implements LeaderNamingAssignor.Hooks {
        @Override
        public void computed(Map<String, List<TopicPartition>> assignment, String name) {
            computed = assignment;
        }

        @Override
        public void assigned(ConsumerGroupMetadata metadata, String leaderId, String name) {
            generation = metadata.generationId();
            kafkaMemberId = metadata.memberId();
            // The assignment we got names the member that computed it; so a leader whose
            // SyncGroup failed does not mistake itself for the leader of the next generation.
            boolean isLeader = settings.memberId().equals(leaderId) && computed != null;
            leader = leaderId;
            sink.event("joined", settings.memberId())
                    .generation(generation)
                    .with("kafka_member_id", kafkaMemberId)
                    .with("protocol", name)
                    .emit();
            sink.event("leader_elected", settings.memberId())
                    .generation(generation)
                    .with("leader", leader)
                    .with("is_leader", isLeader)
                    .with("kafka_member_id", kafkaMemberId)
                    .emit();
            if (isLeader) {
                Map<String, List<List<Object>>> shares = new java.util.TreeMap<>();
                computed.forEach((member, parts) -> shares.put(member, EventSink.pairs(parts)));
                sink.event("assignment_computed", settings.memberId())
                        .generation(generation)
                        .with("members", shares.size())
                        .with("assignment", shares)
                        .with("kafka_member_id", kafkaMemberId)
                        .with("protocol", name)
                        .emit();
            }
            computed = null;
        }
    }
}
