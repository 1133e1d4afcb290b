package rebalancelab.member;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One member's configuration: group_api's MemberConfig as the Python host serialised it (the
 * session timeout already resolved to the mode's default), plus the member's own id.
 */
record Settings(
        String memberId,
        String group,
        List<String> topics,
        String mode,
        String variant,
        String assignor,
        int sessionTimeoutMs,
        int heartbeatIntervalMs,
        int rebalanceTimeoutMs,
        String zkHosts,
        String zkRoot,
        String bootstrap,
        String groupInstanceId,
        JsonNode options) {

    static Settings of(JsonNode config, String memberId) {
        List<String> topics = new ArrayList<>();
        config.path("topics").forEach(t -> topics.add(t.asText()));
        return new Settings(
                memberId,
                text(config, "group"),
                List.copyOf(topics),
                text(config, "mode"),
                text(config, "variant"),
                text(config, "assignor"),
                config.path("session_timeout_ms").asInt(),
                config.path("heartbeat_interval_ms").asInt(),
                config.path("rebalance_timeout_ms").asInt(),
                text(config, "zk_hosts"),
                text(config, "zk_root"),
                text(config, "bootstrap"),
                text(config, "group_instance_id"),
                config.path("options"));
    }

    private static String text(JsonNode config, String field) {
        JsonNode value = config.get(field);
        return value == null || value.isNull() ? null : value.asText();
    }

    /** A {@code --option KEY=VALUE} string, or the default. */
    String option(String key, String otherwise) {
        JsonNode value = options.get(key);
        return value == null || value.isNull() ? otherwise : value.asText();
    }

    /**
     * group_api's CommitSettings: {@code enable_auto_commit} (default true; a scenario's
     * {@code offsets: none} sets it false), spelled as the Python members accept it.
     */
    boolean autoCommitEnabled() {
        JsonNode value = options.get("enable_auto_commit");
        if (value == null || value.isNull()) {
            return true;
        }
        if (value.isBoolean()) {
            return value.asBoolean();
        }
        if (value.isNumber() && (value.asDouble() == 1 || value.asDouble() == 0)) {
            return value.asDouble() == 1; // the CLI passes 0/1 as numbers
        }
        String key = value.isTextual() ? value.asText().toLowerCase(Locale.ROOT) : "";
        if (List.of("true", "yes", "on").contains(key)) {
            return true;
        }
        if (List.of("false", "no", "off").contains(key)) {
            return false;
        }
        throw new IllegalArgumentException("options.enable_auto_commit: expected true or false, got " + value);
    }

    /** A positive integer {@code --option}, or the default; anything else is a configuration error. */
    int intOption(String key, int otherwise) {
        JsonNode value = options.get(key);
        if (value == null || value.isNull()) {
            return otherwise;
        }
        if (!value.canConvertToInt() || !value.isIntegralNumber() || value.asInt() <= 0) {
            throw new IllegalArgumentException("options." + key + ": expected a positive integer, got " + value);
        }
        return value.asInt();
    }
}
