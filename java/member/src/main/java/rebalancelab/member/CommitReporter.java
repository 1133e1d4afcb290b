package rebalancelab.member;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.consumer.ConsumerInterceptor;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Reports every commit the coordinator acknowledged, auto-commits included: Kafka calls
 * {@link ConsumerInterceptor#onCommit} once an OffsetCommit succeeded (ConsumerCoordinator's
 * OffsetCommitResponseHandler), which is exactly what {@code offsets_committed} means.
 */
public final class CommitReporter implements ConsumerInterceptor<byte[], byte[]> {
    interface Listener {
        void committed(Map<TopicPartition, OffsetAndMetadata> offsets);
    }

    static final Map<String, Listener> LISTENERS = new ConcurrentHashMap<>();

    private Listener listener;

    @Override
    public void configure(Map<String, ?> configs) {
        listener = LISTENERS.get(String.valueOf(configs.get(LeaderNamingAssignor.MEMBER_CONFIG)));
    }

    @Override
    public ConsumerRecords<byte[], byte[]> onConsume(ConsumerRecords<byte[], byte[]> records) {
        return records;
    }

    @Override
    public void onCommit(Map<TopicPartition, OffsetAndMetadata> offsets) {
        if (listener != null) {
            listener.committed(offsets);
        }
    }

    @Override
    public void close() {}
}
