package rebalancelab.member;

import java.util.Comparator;
import org.apache.kafka.common.TopicPartition;

/** The one partition order every member uses: by topic, then partition (Python's tuple order). */
final class Partitions {
    static final Comparator<TopicPartition> ORDER =
            Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition);

    private Partitions() {}
}
