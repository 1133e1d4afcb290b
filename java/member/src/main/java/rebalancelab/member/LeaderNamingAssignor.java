package rebalancelab.member;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.consumer.StickyAssignor;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.Configurable;

/**
 * Kafka's own assignor (range, roundrobin, sticky, cooperative-sticky), unchanged, with two
 * additions the public consumer API lacks: the member learns whether it computed this generation's
 * assignment, and which member did. The leader writes its member id into every assignment's user
 * data where the assignor leaves it empty (Kafka's four assignors do: they read only
 * {@code partitions()} in {@code onAssignment}); a follower reads it back. A follower of a leader
 * that is not one of these members (our Python members, kafka-python, librdkafka) finds no name and
 * reports the leader as unknown (null), which the checker counts as no claim.
 *
 * <p>The consumer builds assignors from class names ({@code partition.assignment.strategy}) and
 * hands them its configuration; {@link #MEMBER_CONFIG} names the member whose hooks this instance
 * calls, and {@link #DELEGATE_CONFIG} which of Kafka's assignors it wraps.
 */
public final class LeaderNamingAssignor implements ConsumerPartitionAssignor, Configurable {
    static final String MEMBER_CONFIG = "rebalancelab.member";
    static final String DELEGATE_CONFIG = "rebalancelab.assignor";

    /** What the hosting member is told; both are called on its poll thread. */
    interface Hooks {
        void computed(Map<String, List<org.apache.kafka.common.TopicPartition>> assignment, String protocol);

        void assigned(ConsumerGroupMetadata metadata, String leader, String protocol);
    }

    static final Map<String, Hooks> HOOKS = new java.util.concurrent.ConcurrentHashMap<>();

    private ConsumerPartitionAssignor delegate;
    private Hooks hooks;
    private String memberId;

    static ConsumerPartitionAssignor kafkaAssignor(String name) {
        return switch (name) {
            case "range" -> new RangeAssignor();
            case "roundrobin" -> new RoundRobinAssignor();
            case "sticky" -> new StickyAssignor();
            case "cooperative-sticky" -> new CooperativeStickyAssignor();
            default -> throw new IllegalArgumentException(
                    "assignor: expected range, roundrobin, sticky or cooperative-sticky, got " + name);
        };
    }

    @Override
    public void configure(Map<String, ?> configs) {
        memberId = String.valueOf(configs.get(MEMBER_CONFIG));
        hooks = HOOKS.get(memberId);
        delegate = kafkaAssignor(String.valueOf(configs.get(DELEGATE_CONFIG)));
        if (hooks == null) {
            throw new IllegalStateException("no member registered as " + memberId);
        }
    }

    @Override
    public ByteBuffer subscriptionUserData(Set<String> topics) {
        return delegate.subscriptionUserData(topics);
    }

    @Override
    public GroupAssignment assign(Cluster metadata, GroupSubscription groupSubscription) {
        GroupAssignment result = delegate.assign(metadata, groupSubscription);
        Map<String, Assignment> named = new HashMap<>();
        Map<String, List<org.apache.kafka.common.TopicPartition>> shares = new HashMap<>();
        byte[] self = memberId.getBytes(StandardCharsets.UTF_8);
        result.groupAssignment().forEach((member, assignment) -> {
            ByteBuffer userData = assignment.userData();
            named.put(member, userData == null || !userData.hasRemaining()
                    ? new Assignment(assignment.partitions(), ByteBuffer.wrap(self))
                    : assignment);
            shares.put(member, assignment.partitions());
        });
        hooks.computed(shares, name());
        return new GroupAssignment(named);
    }

    @Override
    public void onAssignment(Assignment assignment, ConsumerGroupMetadata metadata) {
        delegate.onAssignment(assignment, metadata);
        hooks.assigned(metadata, leaderOf(assignment), name());
    }

    /** The leader's member id from our user data, or null when a leader of another kind wrote none. */
    private static String leaderOf(Assignment assignment) {
        ByteBuffer userData = assignment.userData();
        if (userData == null || !userData.hasRemaining()) {
            return null;
        }
        byte[] bytes = new byte[userData.remaining()];
        userData.duplicate().get(bytes);
        String name = new String(bytes, StandardCharsets.UTF_8);
        // Only a printable id of ours; another assignor's binary user data names nobody.
        return name.chars().allMatch(c -> c >= 0x21 && c < 0x7f) ? name : null;
    }

    @Override
    public List<RebalanceProtocol> supportedProtocols() {
        return delegate.supportedProtocols();
    }

    @Override
    public short version() {
        return delegate.version();
    }

    @Override
    public String name() {
        return delegate.name();
    }
}
