package rebalancelab.member;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import sun.misc.Signal;

/**
 * The Java members' host, the JVM counterpart of bench/services/member_host.py: {@code rebalance-lab
 * member --client java} (or {@code --variant curator}) execs it with one JSON argument,
 * {@code {"config": <MemberConfig as JSON>, "count": N, "leave_bound_ms": B}}. It hosts N members,
 * each with its own KafkaConsumer or Curator client; SIGTERM (or Ctrl-C) makes every member leave
 * in parallel and the JVM exit 0, as the Python host does. Events go to stdout, one JSON line each;
 * logs go to stderr (slf4j-simple, warnings and worse).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
        if (args.length != 1) {
            System.err.println("usage: java rebalancelab.member.Main '{\"config\": {...}, \"count\": N}'");
            System.exit(2);
        }
        CountDownLatch done = new CountDownLatch(1);
        // Before the first member starts: a SIGTERM while the others start must make the started
        // ones leave, not kill the JVM with its members still in the group (member_host does the same).
        // sun.misc.Signal (jdk.unsupported; javac warns) rather than a shutdown hook: a JVM that ends
        // in a hook exits 143, and the harness reads any code but 0 after SIGTERM as a failed leave.
        for (String name : List.of("TERM", "INT")) {
            Signal.handle(new Signal(name), s -> done.countDown());
        }
        List<Member> members = new ArrayList<>();
        long leaveBoundMs;
        try {
            JsonNode spec = EventSink.JSON.readTree(args[0]);
            JsonNode config = spec.path("config");
            int count = spec.path("count").asInt(1);
            leaveBoundMs = spec.path("leave_bound_ms").asLong(32_000);
            String mode = config.path("mode").asText();
            String variant = config.path("variant").asText();
            EventSink sink = new EventSink(System.out, config.path("group").asText(), mode, variant);
            for (int i = 0; i < count; i++) {
                Settings settings = Settings.of(config, memberId(config, count, i));
                members.add(create(settings, sink));
            }
            for (Member member : members) {
                member.start();
            }
        } catch (IllegalArgumentException | IllegalStateException e) {
            System.err.println("Error: " + e.getMessage());
            System.exit(1);
            return;
        }
        while (!done.await(500, TimeUnit.MILLISECONDS)) {
            if (members.stream().allMatch(Member::failed)) {
                System.err.println("Error: every member gave up (see the log above)");
                System.exit(1);
            }
        }
        // Leave in parallel: a large host must not take count x leave-time to exit.
        List<Thread> leaving = new ArrayList<>();
        for (Member member : members) {
            Thread t = new Thread(() -> {
                try {
                    member.leave(leaveBoundMs);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            t.start();
            leaving.add(t);
        }
        for (Thread t : leaving) {
            t.join();
        }
        System.out.flush();
        // Exit now: client threads that are still closing must not hold the JVM past the bound.
        Runtime.getRuntime().halt(0);
    }

    /** Names as member_host names Python members: the name (or m.i of a host of many) plus 8 hex. */
    static String memberId(JsonNode config, int count, int index) {
        JsonNode given = config.get("member_name");
        String name = given == null || given.isNull() ? null : given.asText();
        if (count > 1) {
            name = (name == null ? "m" : name) + "." + index;
        }
        String prefix = name != null ? name : config.path("group").asText() + "-" + ProcessHandle.current().pid();
        return prefix + "-" + UUID.randomUUID().toString().replace("-", "").substring(0, 8);
    }

    static Member create(Settings settings, EventSink sink) {
        if (settings.mode().equals("coordinator")) {
            if (settings.bootstrap() == null) {
                throw new IllegalArgumentException("bootstrap: coordinator mode needs brokers as host:port,...");
            }
            return new ConsumerMember(settings, sink);
        }
        if (settings.mode().equals("zk") && "curator".equals(settings.variant())) {
            return new CuratorMember(settings, sink);
        }
        throw new IllegalArgumentException("the Java host runs coordinator-mode members and the zk variant "
                + "curator, not mode " + settings.mode() + " variant " + settings.variant());
    }
}
