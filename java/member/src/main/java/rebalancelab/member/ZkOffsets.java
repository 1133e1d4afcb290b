package rebalancelab.member;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.apache.curator.utils.ZKPaths;
import org.apache.kafka.common.TopicPartition;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * Offsets in ZooKeeper as Kafka 0.8.2's {@code ZookeeperConsumerConnector} kept them, the Curator
 * member's copy of zk_mode/offsets.py: one persistent znode per partition,
 * {@code <root>/consumers/<group>/offsets/<topic>/<partition>}, holding the offset as a decimal string.
 *
 * <ul>
 *   <li>{@code commitOffsetToZooKeeper}: a partition is written only when its offset differs from
 *       the last one written or read for it ({@code checkpointedZkOffsets}), with
 *       {@code ZkUtils.updatePersistentPath} (set, or create with the parents when missing).
 *   <li>{@code fetchOffsetFromZooKeeper}: a missing znode means no offset stored, -1 as OffsetFetch says.
 *   <li>{@code ZKRebalancerListener.addPartitionTopicInfo}: what a new owner read counts as
 *       checkpointed, so its next commit writes only what moved.
 * </ul>
 *
 * <p>No records flow in this project, so a commit advances each position by one, as every member does.
 * Garbage in an offset znode is logged and read as "none stored" (-1), listed as unreadable, so the
 * checker names the partition instead of the member failing on it. When to commit and fetch is
 * CuratorMember's business; this class keeps the checkpoint and makes the calls (worker thread only).
 *
 * <p>The calls go through the raw handle of the session that read the offsets back (the one holding
 * our claims), not Curator's client: Curator retries an operation across a session expiry on a new
 * session, so a commit queued before a pause would land after our claims died, possibly over the
 * next owner's newer offset. On a dead handle the call fails instead, as kazoo's and 0.8.2's do.
 */
final class ZkOffsets {
    /** What a fetch reports for a partition with no (readable) stored offset, as Kafka's OffsetFetch. */
    static final long NO_OFFSET = -1;

    private static final Pattern DECIMAL = Pattern.compile("-?[0-9]+");

    /** One read-back: the offset per partition (-1: none stored) and the znodes holding garbage. */
    record Fetched(Map<TopicPartition, Long> offsets, List<String> unreadable) {}

    private final GroupPaths paths;
    private final Consumer<String> log;
    /** The next offset to commit per owned partition (the position, in Kafka's words). */
    private final Map<TopicPartition, Long> positions = new HashMap<>();
    /** 0.8.2's {@code checkpointedZkOffsets}: the last offset written or read per partition. */
    private final Map<TopicPartition, Long> checkpointed = new HashMap<>();
    /** The session that last read offsets back; commits never outlive it. */
    private ZooKeeper session;

    ZkOffsets(GroupPaths paths, Consumer<String> log) {
        this.paths = paths;
        this.log = log;
    }

    /** The offset a znode holds (0.8.2 wrote {@code offset.toString}), or null for anything else. */
    static Long parse(byte[] raw) {
        String text = new String(raw == null ? new byte[0] : raw, StandardCharsets.US_ASCII).strip();
        if (!DECIMAL.matcher(text).matches()) {
            return null;
        }
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            return null; // digits beyond a long: no offset Kafka could have written
        }
    }

    /**
     * Read the stored offsets of {@code partitions} (one getData each) on {@code session}, the one
     * holding their claims, and resume from them.
     */
    Fetched fetch(ZooKeeper session, Collection<TopicPartition> partitions) throws Exception {
        this.session = session;
        Map<TopicPartition, Long> offsets = new TreeMap<>(Partitions.ORDER);
        List<String> unreadable = new ArrayList<>();
        for (TopicPartition tp : sorted(partitions)) {
            String path = paths.offset(tp.topic(), tp.partition());
            byte[] raw;
            try {
                raw = session.getData(path, false, null);
            } catch (KeeperException.NoNodeException e) {
                offsets.put(tp, NO_OFFSET);
                continue;
            }
            Long offset = parse(raw);
            if (offset == null) {
                String text = new String(raw == null ? new byte[0] : raw, StandardCharsets.UTF_8);
                log.accept("offset znode " + path + " holds '" + (text.length() > 60 ? text.substring(0, 60) : text)
                        + "', not an offset: reading it as none stored");
                unreadable.add(path);
                offsets.put(tp, NO_OFFSET);
                continue;
            }
            offsets.put(tp, offset);
            checkpointed.put(tp, offset);
        }
        offsets.forEach((tp, offset) -> positions.put(tp, Math.max(offset, 0)));
        return new Fetched(offsets, unreadable);
    }

    /**
     * Advance each partition's position by one and write those that differ from the checkpoint
     * (0.8.2's {@code commitOffsets}, only changed offsets); returns what was written.
     */
    Map<TopicPartition, Long> commit(Collection<TopicPartition> partitions) throws Exception {
        Map<TopicPartition, Long> written = new TreeMap<>(Partitions.ORDER);
        if (session == null) {
            return written; // nothing read back yet, so nothing owned
        }
        for (TopicPartition tp : sorted(partitions)) {
            long offset = positions.getOrDefault(tp, 0L) + 1;
            if (Long.valueOf(offset).equals(checkpointed.get(tp))) {
                continue;
            }
            byte[] data = Long.toString(offset).getBytes(StandardCharsets.US_ASCII);
            write(paths.offset(tp.topic(), tp.partition()), data);
            positions.put(tp, offset);
            checkpointed.put(tp, offset);
            written.put(tp, offset);
        }
        return written;
    }

    /** Partitions we no longer own: their next owner's commits make our checkpoint stale. */
    void forget(Collection<TopicPartition> partitions) {
        for (TopicPartition tp : partitions) {
            positions.remove(tp);
            checkpointed.remove(tp);
        }
    }

    /** A lost session: every partition is someone else's now. */
    void forgetAll() {
        positions.clear();
        checkpointed.clear();
        session = null;
    }

    /** 0.8's {@code ZkUtils.updatePersistentPath}: set, or create with the parents if missing. */
    private void write(String path, byte[] data) throws Exception {
        try {
            session.setData(path, data, -1);
        } catch (KeeperException.NoNodeException e) {
            ZKPaths.mkdirs(session, path, false);
            try {
                session.create(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            } catch (KeeperException.NodeExistsException raced) {
                session.setData(path, data, -1); // created meanwhile (a previous owner)
            }
        }
    }

    private static Set<TopicPartition> sorted(Collection<TopicPartition> partitions) {
        Set<TopicPartition> out = new TreeSet<>(Partitions.ORDER);
        out.addAll(partitions);
        return out;
    }
}
