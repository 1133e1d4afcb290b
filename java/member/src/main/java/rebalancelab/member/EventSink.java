package rebalancelab.member;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintStream;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.kafka.common.TopicPartition;

/**
 * The members' JSON events, one per line on stdout, in the shape of group_api/events.py.
 *
 * <p>{@code mono_ns} is {@link System#nanoTime()}: on Linux the JDK reads CLOCK_MONOTONIC for it,
 * the clock Python's {@code time.monotonic_ns()} reads, so these stamps merge with the Python
 * members' (tests/integration/test_java_member.py checks it).
 */
final class EventSink {
    static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream out;
    private final String group;
    private final String mode;
    private final String variant;

    EventSink(PrintStream out, String group, String mode, String variant) {
        this.out = out;
        this.group = group;
        this.mode = mode;
        this.variant = variant;
    }

    /** One event builder: the core fields, then extras in the order given. */
    Event event(String kind, String member) {
        return new Event(kind, member);
    }

    final class Event {
        private final Map<String, Object> fields = new LinkedHashMap<>();
        private final Map<String, Object> extra = new LinkedHashMap<>();

        private Event(String kind, String member) {
            fields.put("event", kind);
            fields.put("member", member);
            fields.put("group", group);
            fields.put("mode", mode);
            fields.put("variant", variant);
            fields.put("generation", null);
            fields.put("partitions", null);
        }

        Event generation(Integer generation) {
            fields.put("generation", generation);
            return this;
        }

        Event partitions(Collection<TopicPartition> partitions) {
            fields.put("partitions", pairs(partitions));
            return this;
        }

        Event with(String key, Object value) {
            extra.put(key, value);
            return this;
        }

        /** Stamps both clocks now and writes the line. */
        void emit() {
            fields.put("mono_ns", System.nanoTime());
            fields.put("wall", System.currentTimeMillis() / 1000.0);
            fields.putAll(extra);
            String line;
            try {
                line = JSON.writeValueAsString(fields);
            } catch (JsonProcessingException e) {
                throw new IllegalStateException("cannot encode event " + fields, e);
            }
            synchronized (out) {
                out.println(line);
                out.flush();
            }
        }
    }

    /** Partitions as [[topic, partition], ...], sorted, as the Python members write them. */
    static List<List<Object>> pairs(Collection<TopicPartition> partitions) {
        return partitions.stream()
                .sorted(Partitions.ORDER)
                .map(tp -> List.<Object>of(tp.topic(), tp.partition()))
                .collect(Collectors.toList());
    }
}
