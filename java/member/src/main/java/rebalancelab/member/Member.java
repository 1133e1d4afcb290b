package rebalancelab.member;

/** One group member hosted in this JVM: it joins on {@link #start()} and leaves on {@link #leave()}. */
interface Member {
    void start();

    /** Leave gracefully (revoke, tell the group, emit {@code left}); returns within {@code boundMs}. */
    void leave(long boundMs) throws InterruptedException;

    /** True once the member gave up for good (logged on stderr). */
    boolean failed();
}
