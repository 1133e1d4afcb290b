package rebalancelab.member;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.BoundedExponentialBackoffRetry;
import org.apache.kafka.common.TopicPartition;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.data.Stat;

/**
 * The zk variant {@code curator}: Apache Curator's {@link LeaderLatch} elects the leader, which
 * publishes the assignment the way zk_mode's chain does (zk_mode/election.py), in chain's layout:
 *
 * <ul>
 *   <li>{@code members/}: the latch's EPHEMERAL_SEQUENTIAL znodes ({@code _c_<uuid>-latch-<seq>},
 *       LeaderLatch.reset); each holds the member's registration (the latch id), JSON
 *       {@code {"member", "topics", "registered"}} as chain's. The lowest leads; each latch watches
 *       its predecessor only (LeaderLatch.checkLeadership), so the election has no herd.
 *   <li>{@code assignment}: the leader's decision; its znode version is the generation. Published
 *       with one Curator transaction that checks our latch znode (gone once our session expired)
 *       and sets the assignment at the version read, as chain's {@code multi}.
 *   <li>{@code owners/<topic>-<partition>}: ephemeral claims, so no partition is owned twice.
 * </ul>
 *
 * <p>Threading: Curator's watchers and listeners only queue a task; one worker thread per member
 * runs them in order (as ZkMember's worker does). Session handling mirrors ZkMember: SUSPENDED
 * stops acting as owner ({@code revoked}), LOST ({@code session_lost}) forgets every claim, and
 * the latch rejoins with the new session on RECONNECTED (LeaderLatch.handleStateChange).
 *
 * <p>Offsets, as zk_mode's ZkMember and Kafka 0.8.2's {@code ZookeeperConsumerConnector} with
 * {@code auto.commit.enable} (its default), in {@link ZkOffsets}: the offsets of the owned partitions
 * are committed every {@code auto_commit_interval_ms} (0.8.2's {@code autoCommit} on its scheduler;
 * here a periodic task on the worker), synchronously before partitions are given up (0.8.2's
 * {@code ZKRebalancerListener.closeFetchersForQueues} calls {@code commitOffsets} before
 * {@code releasePartitionOwnership}) and on a graceful leave (0.8.2's {@code shutdown} calls
 * {@code commitOffsets}). A new owner reads them back once it holds its claims and before it reports
 * the partitions {@code assigned} (0.8.2's {@code rebalance} calls {@code fetchOffsets} before
 * {@code reflectPartitionOwnershipDecision}). {@code enable_auto_commit=false} (a scenario's
 * {@code offsets: none}) turns commits and read-backs off.
 *
 * <p>One class of some 700 lines (the offsets' ZooKeeper calls apart, in ZkOffsets), as zk_mode's
 * ZkMember and LeaderElectedMember together: election, publication, ownership, offsets and the
 * session all read and change the worker's one state (claims, target, generations), which splitting
 * would hand back and forth.
 */
final class CuratorMember implements Member {
    /** group_api's DEFAULT_AUTO_COMMIT_INTERVAL_MS (Kafka's auto.commit.interval.ms default too). */
    private static final int DEFAULT_COMMIT_INTERVAL_MS = 5_000;

    private final Settings settings;
    private final EventSink sink;
    private final GroupPaths paths;
    private final ScheduledExecutorService worker;
    private final boolean commitsEnabled;
    private final int commitIntervalMs;
    private final AtomicBoolean failed = new AtomicBoolean();
    private final CountDownLatch left = new CountDownLatch(1);
    private CuratorFramework client;
    private LeaderLatch latch;
    private ZkOffsets offsets;
    // One instance each: ZooKeeper keeps a path's watchers in a set, so re-arming a watch with the
    // same object (Curator's NamespaceWatcher compares the wrapped one) never piles up notifications.
    private final Watcher membersChanged = onChange(this::lead);
    private final Watcher assignmentChanged = onChange(this::followAssignment);
    private final Watcher claimReleased = onChange(this::retryTarget);

    // Touched only on the worker thread.
    private Map<String, Integer> partitionsPerTopic = Map.of();
    private final Set<TopicPartition> claims = new HashSet<>();
    private final Set<TopicPartition> owned = new HashSet<>();
    private final Map<String, JsonNode> registrations = new HashMap<>(); // latch node -> registration
    private Target target;
    private Integer generation;
    private Integer seenGeneration;
    private Integer electedGeneration;
    private boolean suspended;
    private boolean sessionLost;
    private boolean leaving;

    /** What the member was last told to own. */
    private record Target(int generation, Set<TopicPartition> partitions, String leader) {}

    CuratorMember(Settings settings, EventSink sink) {
        if (settings.zkHosts() == null) {
            throw new IllegalArgumentException("zk_hosts: zk mode needs a ZooKeeper connect string (--zk HOST:PORT,...)");
        }
        if (!List.of("range", "roundrobin", "sticky").contains(settings.assignor())) {
            throw new IllegalArgumentException("assignor: expected range, roundrobin or sticky, got " + settings.assignor());
        }
        this.settings = settings;
        this.sink = sink;
        this.paths = new GroupPaths(settings.zkRoot(), settings.group());
        this.commitsEnabled = settings.autoCommitEnabled();
        this.commitIntervalMs = settings.intOption("auto_commit_interval_ms", DEFAULT_COMMIT_INTERVAL_MS);
        this.worker = Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, "curator-" + settings.memberId()));
    }

    @Override
    public boolean failed() {
        return failed.get();
    }

    @Override
    public void start() {
        int session = settings.sessionTimeoutMs();
        client = CuratorFrameworkFactory.builder()
                .connectString(settings.zkHosts())
                .sessionTimeoutMs(session)
                .connectionTimeoutMs(session) // Curator warns when it exceeds the session timeout
                // A few quick retries per operation; a longer outage is the state listener's.
                .retryPolicy(new BoundedExponentialBackoffRetry(50, 1_000, 5))
                .build();
        client.getConnectionStateListenable().addListener((c, state) -> submit(() -> onState(state)));
        client.start();
        offsets = new ZkOffsets(paths, this::log);
        try {
            if (!client.blockUntilConnected(Math.max(10_000, session), TimeUnit.MILLISECONDS)) {
                client.close();
                throw new IllegalStateException("cannot reach ZooKeeper at " + settings.zkHosts());
            }
            partitionsPerTopic = Catalog.read(client, paths, settings.topics());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while connecting", e);
        } catch (IllegalArgumentException | IllegalStateException e) {
            client.close();
            throw e;
        } catch (Exception e) {
            client.close();
            throw new IllegalStateException("cannot read the topic catalog: " + e, e);
        }
        submit(this::join);
        if (commitsEnabled) {
            // A periodic task of the worker's own: it runs between the group's tasks, never beside them.
            worker.scheduleWithFixedDelay(guarded(this::commitOwned), commitIntervalMs, commitIntervalMs,
                    TimeUnit.MILLISECONDS);
        }
    }

    // -- the worker ------------------------------------------------------------------------------

    private interface Task {
        void run() throws Exception;
    }

    private void submit(Task task) {
        if (worker.isShutdown()) {
            return;
        }
        try {
            worker.execute(guarded(task));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // shut down meanwhile: nothing more to do
        }
    }

    /** A task as the worker runs it: nothing once we left, and no exception ends the worker. */
    private Runnable guarded(Task task) {
        return () -> {
            if (leaving && left.getCount() == 0) {
                return;
            }
            try {
                task.run();
            } catch (KeeperException.ConnectionLossException | KeeperException.SessionExpiredException e) {
                // The state listener queues the recovery (resync or rejoin).
                log("interrupted by " + e.getClass().getSimpleName());
            } catch (Exception e) {
                log("task failed, retrying on the next change: " + e);
            }
        };
    }

    /**
     * A watcher that runs {@code task} when its znode changes. ZooKeeper also hands watchers the
     * connection's changes (type None: Disconnected, Expired); those are the state listener's, and
     * acting on them would run ahead of its SUSPENDED and LOST, on a session about to be replaced.
     */
    private Watcher onChange(Task task) {
        return (WatchedEvent e) -> {
            if (e.getType() != Watcher.Event.EventType.None) {
                submit(task);
            }
        };
    }

    private void log(String message) {
        System.err.printf("%s: %s%n", settings.memberId(), message);
    }

    // -- registration and election ---------------------------------------------------------------

    private void join() throws Exception {
        ensure(paths.members(), null);
        ensure(paths.assignment(), "{}".getBytes(StandardCharsets.UTF_8));
        if (latch != null) {
            latch.close();
        }
        registrations.clear();
        latch = new LeaderLatch(client, paths.members(), registration());
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                submit(CuratorMember.this::lead);
            }

            @Override
            public void notLeader() {
                // Nothing to undo: a deposed leader publishes nothing (lead() checks, the fence too).
            }
        });
        latch.start();
        sink.event("joined", settings.memberId()).with("latch", paths.members()).emit();
        followAssignment();
    }

    private void ensure(String path, byte[] data) throws Exception {
        try {
            if (data == null) {
                client.create().creatingParentsIfNeeded().forPath(path);
            } else {
                client.create().creatingParentsIfNeeded().forPath(path, data);
            }
        } catch (KeeperException.NodeExistsException e) {
            // there already
        }
    }

    private String registration() {
        ObjectNode node = EventSink.JSON.createObjectNode();
        node.put("member", settings.memberId());
        node.set("topics", EventSink.JSON.valueToTree(settings.topics()));
        node.put("registered", System.currentTimeMillis() / 1000.0);
        return node.toString();
    }

    // -- the leader ------------------------------------------------------------------------------

    private void lead() throws Exception {
        if (latch == null || !latch.hasLeadership() || suspended) {
            return;
        }
        Map<String, List<String>> subscriptions = currentSubscriptions();
        Stat stat = new Stat();
        byte[] raw = client.getData().storingStatIn(stat).forPath(paths.assignment());
        JsonNode previous = decode(raw, paths.assignment());
        JsonNode prevMembers = previous == null ? null : previous.get("members");
        Map<String, List<TopicPartition>> prevShares = new TreeMap<>();
        if (prevMembers != null && prevMembers.isObject()) {
            prevMembers.fields().forEachRemaining(e -> {
                List<TopicPartition> share = parseShare(e.getValue());
                if (share != null && subscriptions.containsKey(e.getKey())) {
                    prevShares.put(e.getKey(), share);
                }
            });
        }
        if (previous != null
                && settings.memberId().equals(previous.path("leader").asText(null))
                && prevMembers != null && prevMembers.isObject()
                && names(prevMembers).equals(subscriptions.keySet())
                && Integer.valueOf(stat.getVersion()).equals(seenGeneration)) {
            return; // nothing changed since our last decision
        }
        Map<String, List<TopicPartition>> result = CuratorAssignor.assign(
                settings.assignor(), subscriptions, partitionsPerTopic, prevShares, stat.getVersion());
        int next = stat.getVersion() + 1;
        ObjectNode decision = EventSink.JSON.createObjectNode();
        decision.put("generation", next);
        decision.put("leader", settings.memberId());
        decision.put("leader_node", nodeName(latch.getOurPath()));
        decision.put("assignor", settings.assignor());
        Map<String, List<List<Object>>> shares = new TreeMap<>();
        result.forEach((member, parts) -> shares.put(member, EventSink.pairs(parts)));
        decision.set("members", EventSink.JSON.valueToTree(shares));
        if (!publish(decision, stat.getVersion())) {
            submit(this::lead); // re-read: someone else moved the assignment, or we lost the latch
            return;
        }
        electedGeneration = next;
        sink.event("leader_elected", settings.memberId())
                .generation(next).with("leader", settings.memberId()).with("is_leader", true).emit();
        sink.event("assignment_computed", settings.memberId())
                .generation(next).with("members", shares.size()).with("assignment", shares).emit();
    }

    /** The members' registrations, re-watching the membership; only new latch znodes are read. */
    private Map<String, List<String>> currentSubscriptions() throws Exception {
        List<String> children = client.getChildren().usingWatcher(membersChanged).forPath(paths.members());
        registrations.keySet().retainAll(children);
        Map<String, List<String>> subscriptions = new TreeMap<>();
        for (String node : children) {
            if (!registrations.containsKey(node)) {
                registrations.put(node, readRegistration(node));
            }
            JsonNode reg = registrations.get(node);
            if (reg != null) {
                List<String> topics = new ArrayList<>();
                reg.get("topics").forEach(t -> {
                    if (partitionsPerTopic.containsKey(t.asText())) {
                        topics.add(t.asText());
                    }
                });
                subscriptions.put(reg.get("member").asText(), topics);
            }
        }
        return subscriptions;
    }

    /** A registration of the right shape, or null (logged): one bad znode never stops the group. */
    private JsonNode readRegistration(String node) throws Exception {
        String path = paths.members() + "/" + node;
        byte[] raw;
        try {
            raw = client.getData().forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return null;
        }
        JsonNode reg = decode(raw, path);
        if (reg == null) {
            return null;
        }
        JsonNode topics = reg.get("topics");
        boolean ok = reg.path("member").isTextual() && topics != null && topics.isArray();
        if (ok) {
            for (JsonNode t : topics) {
                ok &= t.isTextual();
            }
        }
        if (!ok) {
            log("skipping registration of the wrong shape in " + path + ": " + reg);
            return null;
        }
        return reg;
    }

    /** One transaction: our latch znode must still exist, the assignment still be at {@code version}. */
    private boolean publish(ObjectNode decision, int version) throws Exception {
        String ours = latch.getOurPath();
        if (ours == null || !latch.hasLeadership()) {
            return false;
        }
        CuratorOp check = client.transactionOp().check().withVersion(0).forPath(ours);
        CuratorOp set = client.transactionOp().setData().withVersion(version)
                .forPath(paths.assignment(), decision.toString().getBytes(StandardCharsets.UTF_8));
        try {
            client.transaction().forOperations(check, set);
            return true;
        } catch (KeeperException.BadVersionException | KeeperException.NoNodeException e) {
            log("publication of generation " + decision.get("generation") + " fenced off (" + e.code() + ")");
            return false;
        }
    }

    // -- every member: follow the published assignment ------------------------------------------

    private void followAssignment() throws Exception {
        Stat stat = new Stat();
        byte[] raw;
        try {
            raw = client.getData().storingStatIn(stat).usingWatcher(assignmentChanged).forPath(paths.assignment());
        } catch (KeeperException.NoNodeException e) {
            return;
        }
        JsonNode decision = decode(raw, paths.assignment());
        if (decision == null || !decision.path("members").isObject()) {
            return; // empty (no decision yet) or garbage (logged): wait for the next publication
        }
        int version = stat.getVersion();
        if (Integer.valueOf(version).equals(seenGeneration)) {
            return;
        }
        seenGeneration = version;
        String leader = decision.path("leader").isTextual() ? decision.get("leader").asText() : null;
        JsonNode share = decision.get("members").get(settings.memberId());
        if (share == null) {
            // Not part of this generation (we joined after it was computed): hold nothing.
            giveUp(owned, "rebalance");
            release(claims);
            target = null;
            return;
        }
        List<TopicPartition> parts = parseShare(share);
        if (parts == null) {
            log("skipping assignment share of the wrong shape in " + paths.assignment() + ": " + share);
            return;
        }
        if (!Integer.valueOf(version).equals(electedGeneration)) {
            sink.event("leader_elected", settings.memberId()).generation(version)
                    .with("leader", leader).with("is_leader", settings.memberId().equals(leader)).emit();
        }
        apply(new Target(version, new HashSet<>(parts), leader));
    }

    // -- ownership (ZkMember._apply, _claim, _release, _revoke) ----------------------------------

    private void apply(Target next) throws Exception {
        target = next;
        if (suspended) {
            return;
        }
        Set<TopicPartition> moving = new HashSet<>(owned);
        moving.removeAll(next.partitions());
        giveUp(moving, "rebalance");
        Set<TopicPartition> unclaim = new HashSet<>(claims);
        unclaim.removeAll(next.partitions());
        release(unclaim);
        Set<TopicPartition> missing = new TreeSet<>(Partitions.ORDER);
        missing.addAll(next.partitions());
        missing.removeAll(claims);
        boolean waiting = false;
        for (TopicPartition tp : missing) {
            waiting |= !claim(tp);
        }
        if (waiting) {
            return;
        }
        if (Integer.valueOf(next.generation()).equals(generation) && owned.equals(next.partitions())) {
            return; // already announced
        }
        Set<TopicPartition> taken = new HashSet<>(next.partitions());
        taken.removeAll(owned);
        takeOffsets(taken, next.generation());
        generation = next.generation();
        owned.clear();
        owned.addAll(next.partitions());
        sink.event("assigned", settings.memberId()).generation(generation).partitions(owned)
                .with("leader", next.leader()).emit();
    }

    private boolean claim(TopicPartition tp) throws Exception {
        String path = paths.owner(tp.topic(), tp.partition());
        while (true) {
            try {
                client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL)
                        .forPath(path, settings.memberId().getBytes(StandardCharsets.UTF_8));
                claims.add(tp);
                return true;
            } catch (KeeperException.NodeExistsException e) {
                // Still held by its previous owner: wait for the delete, then try again.
                if (client.checkExists().usingWatcher(claimReleased).forPath(path) != null) {
                    return false;
                }
            }
        }
    }

    private void retryTarget() throws Exception {
        if (target != null) {
            apply(target);
        }
    }

    private void release(Set<TopicPartition> partitions) throws Exception {
        for (TopicPartition tp : new ArrayList<>(partitions)) {
            try {
                client.delete().forPath(paths.owner(tp.topic(), tp.partition()));
            } catch (KeeperException.NoNodeException e) {
                // already gone
            }
            claims.remove(tp);
        }
    }

    private void revoke(Set<TopicPartition> partitions, String reason) {
        Set<TopicPartition> gone = new HashSet<>(partitions);
        gone.retainAll(owned);
        if (gone.isEmpty()) {
            return;
        }
        owned.removeAll(gone);
        sink.event("revoked", settings.memberId()).generation(generation).partitions(gone)
                .with("reason", reason).emit();
    }

    // -- offsets (ZkMember._commit, _give_up, _take_offsets) --------------------------------------

    /** The periodic commit: only while we own what we announced, not while the session is in doubt. */
    private void commitOwned() throws Exception {
        if (!suspended && generation != null) {
            commit(owned);
        }
    }

    /** Commit the offsets of {@code partitions} that changed (0.8.2's {@code commitOffsets}). */
    private void commit(Set<TopicPartition> partitions) throws Exception {
        if (!commitsEnabled || partitions.isEmpty()) {
            return;
        }
        Map<TopicPartition, Long> written = offsets.commit(partitions);
        if (!written.isEmpty()) {
            sink.event("offsets_committed", settings.memberId()).generation(generation)
                    .with("offsets", rows(written)).emit();
        }
    }

    /**
     * Stop owning {@code partitions}: commit them first while our claims still stand, so their next
     * owner reads what we consumed (0.8.2 commits before {@code releasePartitionOwnership}).
     */
    private void giveUp(Set<TopicPartition> partitions, String reason) throws Exception {
        Set<TopicPartition> ours = new HashSet<>(partitions);
        ours.retainAll(owned);
        commit(ours);
        revoke(ours, reason);
        offsets.forget(ours);
    }

    /** Read back the stored offsets of newly owned partitions before announcing them. */
    private void takeOffsets(Set<TopicPartition> partitions, int generation) throws Exception {
        if (!commitsEnabled || partitions.isEmpty()) {
            return;
        }
        long sentNs = System.nanoTime();
        // The handle of the session that holds our claims now: commits stay on it (ZkOffsets).
        ZkOffsets.Fetched fetched = offsets.fetch(client.getZookeeperClient().getZooKeeper(), partitions);
        EventSink.Event event = sink.event("offsets_fetched", settings.memberId()).generation(generation)
                .with("offsets", rows(fetched.offsets())).with("request_mono_ns", sentNs);
        if (!fetched.unreadable().isEmpty()) {
            event.with("unreadable", fetched.unreadable());
        }
        event.emit();
    }

    /** Offsets as [[topic, partition, offset], ...], sorted, as the Python members write them. */
    private static List<List<Object>> rows(Map<TopicPartition, Long> offsets) {
        List<List<Object>> out = new ArrayList<>();
        offsets.forEach((tp, offset) -> out.add(List.of(tp.topic(), tp.partition(), offset)));
        return out;
    }

    // -- the session -----------------------------------------------------------------------------

    private void onState(ConnectionState state) throws Exception {
        if (leaving) {
            return;
        }
        switch (state) {
            case SUSPENDED -> {
                suspended = true;
                revoke(owned, "suspended");
            }
            case LOST -> {
                suspended = false;
                sessionLost = true;
                revoke(owned, "session_lost");
                offsets.forgetAll();
                claims.clear();
                target = null;
                generation = null;
                seenGeneration = null;
                sink.event("session_lost", settings.memberId()).with("reason", "session expired").emit();
            }
            case RECONNECTED -> {
                if (sessionLost) {
                    // A new session: LeaderLatch re-creates its znode itself; we follow the
                    // assignment again (watches died with the old session).
                    sessionLost = false;
                    suspended = false;
                    registrations.clear();
                    sink.event("joined", settings.memberId()).with("latch", paths.members()).emit();
                    followAssignment();
                    lead();
                } else if (suspended) {
                    suspended = false;
                    retryTarget();
                    followAssignment();
                    lead();
                }
            }
            default -> {
                // CONNECTED (the first connection) and READ_ONLY: nothing to do
            }
        }
    }

    // -- leaving ---------------------------------------------------------------------------------

    @Override
    public void leave(long boundMs) throws InterruptedException {
        submit(this::leaveGroup);
        if (!left.await(boundMs / 2, TimeUnit.MILLISECONDS)) {
            log("ZooKeeper at " + settings.zkHosts() + " unreachable: our leave got no answer in "
                    + boundMs / 2 + " ms; closing the session instead (our ephemeral znodes go with it)");
            client.close();
            if (!left.await(boundMs / 2, TimeUnit.MILLISECONDS)) {
                log("leave did not finish within " + boundMs + " ms");
            }
        }
        worker.shutdownNow();
    }

    private void leaveGroup() {
        leaving = true;
        try {
            if (client.getZookeeperClient().isConnected() && !suspended) {
                commit(owned); // 0.8.2's shutdown: commitOffsets before closing
            }
            revoke(owned, "leave");
            if (client.getZookeeperClient().isConnected()) {
                release(claims);
                if (latch != null) {
                    latch.close(); // deletes our latch znode; the next member's watch fires
                }
            } else {
                log("ZooKeeper at " + settings.zkHosts() + " unreachable: leaving without deleting our "
                        + "znodes (ephemeral: they go when our session expires)");
            }
        } catch (Exception e) {
            log("leave did not finish cleanly; the session's close removes the rest: " + e);
        } finally {
            sink.event("left", settings.memberId()).generation(generation).emit();
            left.countDown();
            client.close();
        }
    }

    // -- parsing -----------------------------------------------------------------------------------

    /** A znode's JSON object, or null (logged) for anything else: garbage never stops the group. */
    private JsonNode decode(byte[] raw, String path) {
        String text = new String(raw == null ? new byte[0] : raw, StandardCharsets.UTF_8);
        try {
            JsonNode value = EventSink.JSON.readTree(text);
            if (value != null && value.isObject()) {
                return value;
            }
        } catch (Exception e) {
            // reported below
        }
        log("skipping unparseable data in " + path + " ('" + (text.length() > 60 ? text.substring(0, 60) : text)
                + "...'): expected a JSON object");
        return null;
    }

    /** A share [[topic, partition], ...] of partitions in the catalog, or null for any other shape. */
    private List<TopicPartition> parseShare(JsonNode share) {
        if (share == null || !share.isArray()) {
            return null;
        }
        List<TopicPartition> parts = new ArrayList<>();
        for (JsonNode pair : share) {
            if (!pair.isArray() || pair.size() != 2 || !pair.get(0).isTextual() || !pair.get(1).isInt()) {
                return null;
            }
            String topic = pair.get(0).asText();
            int partition = pair.get(1).asInt();
            Integer count = partitionsPerTopic.get(topic);
            if (count == null || partition < 0 || partition >= count) {
                return null;
            }
            parts.add(new TopicPartition(topic, partition));
        }
        return parts;
    }

    private static Set<String> names(JsonNode object) {
        Set<String> out = new TreeSet<>();
        for (Iterator<String> it = object.fieldNames(); it.hasNext(); ) {
            out.add(it.next());
        }
        return out;
    }

    private static String nodeName(String path) {
        return path == null ? null : path.substring(path.lastIndexOf('/') + 1);
    }
}
