package rebalancelab.member;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Assignment;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Subscription;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.consumer.StickyAssignor;
import org.apache.kafka.clients.consumer.internals.AbstractPartitionAssignor;
import org.apache.kafka.common.TopicPartition;

/**
 * The Curator leader's assignor: Kafka's own RangeAssignor, RoundRobinAssignor and StickyAssignor
 * through {@link AbstractPartitionAssignor#assign(Map, Map)}, the same semantics as group_api's
 * (members ordered by id; sticky keeps the previous shares unless balance forbids).
 */
final class CuratorAssignor {
    private CuratorAssignor() {}

    static Map<String, List<TopicPartition>> assign(
            String name,
            Map<String, List<String>> subscriptions,
            Map<String, Integer> partitionsPerTopic,
            Map<String, List<TopicPartition>> previous,
            int previousGeneration) {
        AbstractPartitionAssignor assignor = switch (name) {
            case "range" -> new RangeAssignor();
            case "roundrobin" -> new RoundRobinAssignor();
            case "sticky" -> new StickyAssignor();
            default -> throw new IllegalArgumentException("assignor: expected range, roundrobin or sticky, got " + name);
        };
        Map<String, Subscription> subs = new TreeMap<>();
        subscriptions.forEach((member, topics) -> subs.put(member, new Subscription(
                topics, stickyUserData(name, member, topics, previous.get(member), previousGeneration))));
        Map<String, List<TopicPartition>> result = new TreeMap<>(assignor.assign(partitionsPerTopic, subs));
        subscriptions.keySet().forEach(member -> result.putIfAbsent(member, List.of()));
        return result;
    }

    /**
     * StickyAssignor reads a member's previous share from its subscription's user data only
     * (StickyAssignor.memberData); its public way to write that is a member's own instance told
     * its assignment ({@code onAssignment}) asked for {@code subscriptionUserData}.
     */
    private static ByteBuffer stickyUserData(
            String name, String member, List<String> topics, List<TopicPartition> previous, int generation) {
        if (!name.equals("sticky") || previous == null) {
            return null;
        }
        StickyAssignor own = new StickyAssignor();
        own.onAssignment(new Assignment(previous), new ConsumerGroupMetadata("", generation, member, Optional.empty()));
        return own.subscriptionUserData(new java.util.HashSet<>(topics));
    }
}
