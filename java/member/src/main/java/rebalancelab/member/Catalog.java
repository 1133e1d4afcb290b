package rebalancelab.member;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.KeeperException;

/** zk_mode/catalog.py's topic catalog, read the same strict way: garbage is a configuration error. */
final class Catalog {
    private Catalog() {}

    static Map<String, Integer> read(CuratorFramework client, GroupPaths paths, List<String> topics) throws Exception {
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String topic : topics) {
            String path = paths.topic(topic);
            byte[] raw;
            try {
                raw = client.getData().forPath(path);
            } catch (KeeperException.NoNodeException e) {
                throw new IllegalArgumentException("topic '" + topic + "' is not in the catalog at " + path);
            }
            String text = new String(raw == null ? new byte[0] : raw, StandardCharsets.UTF_8);
            JsonNode partitions;
            try {
                partitions = EventSink.JSON.readTree(text).path("partitions");
            } catch (Exception e) {
                partitions = null;
            }
            // Strictly a positive JSON integer, as catalog.read_topic demands.
            if (partitions == null || !partitions.isInt() || partitions.asInt() < 1) {
                String shown = text.length() > 80 ? text.substring(0, 80) : text;
                throw new IllegalArgumentException("catalog entry " + path + " is not valid ('" + shown
                        + "'): expected {\"partitions\": N} with N a positive integer");
            }
            counts.put(topic, partitions.asInt());
        }
        return counts;
    }
}
