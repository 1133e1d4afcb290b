package rebalancelab.member;

/** zk_mode/paths.py's layout, so chain's readers, the checker and the zk load figures apply. */
record GroupPaths(String root, String group) {
    String base() {
        return trimmedRoot() + "/groups/" + group;
    }

    /** The members' LeaderLatch znodes ({@code _c_<uuid>-latch-<seq>}), each holding a registration. */
    String members() {
        return base() + "/members";
    }

    String assignment() {
        return base() + "/assignment";
    }

    String owners() {
        return base() + "/owners";
    }

    String owner(String topic, int partition) {
        return owners() + "/" + topic + "-" + partition;
    }

    String topic(String name) {
        return trimmedRoot() + "/topics/" + name;
    }

    /** Kafka 0.8's {@code ZKGroupTopicDirs.consumerOffsetDir} + {@code /<partition>}, under our root. */
    String offset(String topic, int partition) {
        return trimmedRoot() + "/consumers/" + group + "/offsets/" + topic + "/" + partition;
    }

    private String trimmedRoot() {
        return root.endsWith("/") ? root.substring(0, root.length() - 1) : root;
    }
}
