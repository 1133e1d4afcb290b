"""The actions of a scenario's timeline, in one table: what each does, how the runner runs it, how the
replay counts it and how the report labels it.

:data:`ACTIONS` maps each :class:`Action` to its :class:`ActionSpec`. The runner dispatches a step to
``spec.run`` and waits for a newer generation after it when ``spec.rebalancing``; a scenario checks
that actions with ``needs_members`` come after ``start_members``; the replay counts the targets of a
``kills`` action dead from its start (:mod:`bench.analysis.replay`); an episode opens at each of
``spec.triggers``' phases (:mod:`bench.analysis.metrics.episodes`); the report names it ``label``
(``end_label`` for an episode opened by its end) and draws the ZooKeeper cost formulas for a
``single_change``. ``spec.params`` are the action's parameters
with their checks and defaults (:mod:`bench.experiment.params`).

The run functions take the running :class:`~bench.experiment.runner.Run`; they record the action's
``start`` and ``end`` (and, for a rolling restart by SIGKILL, each ``kill``) in the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from bench.experiment.params import (
    COUNT1,
    GROUP,
    LINK,
    Param,
    boolean,
    choice,
    duration,
    positive_int,
    positive_number,
)

if TYPE_CHECKING:
    from bench.backends import MemberHandle
    from bench.experiment.groups import MemberGroup
    from bench.experiment.runner import Run
    from bench.experiment.scenario import Step


class Action(StrEnum):
    START_MEMBERS = "start_members"
    ADD_MEMBERS = "add_members"
    LEAVE_MEMBERS = "leave_members"
    KILL_MEMBER = "kill_member"
    KILL_LEADER = "kill_leader"
    PAUSE_MEMBER = "pause_member"
    ROLLING_RESTART = "rolling_restart"
    KILL_COORDINATOR = "kill_coordinator"
    STOP_ZK = "stop_zk"
    RESTART_ZK = "restart_zk"
    SET_DELAY = "set_delay"
    CUT_LINK = "cut_link"
    HEAL_LINK = "heal_link"
    STOP = "stop"


class Pick(StrEnum):
    """Which member(s) an action picks; leaderless variants have no leader, so ``leader`` there
    means the oldest member and ``follower`` any member."""

    NEWEST = "newest"
    OLDEST = "oldest"
    RANDOM = "random"
    LEADER = "leader"
    FOLLOWER = "follower"


class LinkCut(StrEnum):
    BLACKHOLE = "blackhole"  # bytes are held until the link heals (a partition)
    RESET = "reset"  # connections are reset and new ones refused until the link heals


# -- how each action runs --------------------------------------------------------------------------


def _start_members(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    count = step.as_dict().get("count") or run.scenario.groups.members
    for g in groups:
        run.record_action(i, step, "start", g.name, [], count=count)
        procs = g.spawn(count)
        run.record_action(
            i, step, "end", g.name, [m for p in procs for m in p.member_ids], pids=[p.pid for p in procs]
        )


def _add_members(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    _start_members(run, i, step, groups)


def _leave_members(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    for g in groups:
        victims = run.pick_procs(g, step.param("count"), step.param("pick"))
        targets = [m for p in victims for m in p.member_ids]
        run.record_action(i, step, "start", g.name, targets)
        for p in victims:
            g.terminate(p, str(step.action), i)
        run.record_action(i, step, "end", g.name, targets)


def _kill(run: Run, i: int, step: Step, g: MemberGroup, victims: list[MemberHandle]) -> None:
    targets = [m for p in victims for m in p.member_ids]
    run.record_action(i, step, "start", g.name, targets)
    for p in victims:
        g.kill(p)
    run.record_action(i, step, "end", g.name, targets)


def _kill_member(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    for g in groups:
        _kill(run, i, step, g, run.pick_procs(g, step.param("count"), step.param("pick")))


def _kill_leader(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    for g in groups:
        _kill(run, i, step, g, run.pick_procs(g, 1, Pick.LEADER))


def _pause_member(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    seconds = run.scenario.pause_seconds(step, run.mode)
    paused: list[tuple[MemberGroup, MemberHandle]] = []
    for g in groups:
        (proc,) = run.pick_procs(g, 1, step.param("pick"))
        proc.pause()
        g.paused.add(proc.pid)
        paused.append((g, proc))
        run.record_action(i, step, "start", g.name, proc.member_ids, seconds=seconds)
    time.sleep(seconds)  # the fault's own length, not a wait for a condition
    for g, proc in paused:
        proc.resume()
        g.paused.discard(proc.pid)
        run.record_action(i, step, "end", g.name, proc.member_ids)


def _rolling_restart(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    between = step.param("between")
    for g in groups:
        olds = list(g.live_procs())
        run.record_action(i, step, "start", g.name, [m for p in olds for m in p.member_ids])
        for proc in olds:
            before = g.generation()
            count = len(proc.member_ids)
            if step.param("graceful"):
                g.terminate(proc, str(step.action), i)
            else:
                run.record_action(i, step, "kill", g.name, proc.member_ids)
                g.kill(proc)
            g.spawn(count)
            if between == "stable":
                run.wait_stable(i, step, [g], {g.name: before}, step.wait.seconds)
            else:
                time.sleep(float(between))
        run.record_action(i, step, "end", g.name, g.live_ids())


def _kill_coordinator(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    for g in groups:
        broker = run.topology.coordinator_for(g.name)
        run.record_action(i, step, "start", g.name, [f"broker-{broker}"])
        run.topology.kill_broker(broker)
        run.record_action(i, step, "end", g.name, [f"broker-{broker}"])


def _stop_zk(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    index = run.topology.zk_index(step.param("server"))
    run.record_action(i, step, "start", None, [f"zk-{index}"])
    run.topology.stop_zk(index)
    run.record_action(i, step, "end", None, [f"zk-{index}"])


def _restart_zk(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    server = step.param("server")
    index = run.topology.stopped_zk()[-1] if server == "stopped" else int(server)
    run.record_action(i, step, "start", None, [f"zk-{index}"])
    run.topology.restart_zk(index)
    run.record_action(i, step, "end", None, [f"zk-{index}"])


def _set_delay(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    links = run.topology.links(step.param("target"))
    run.record_action(i, step, "start", None, links)
    run.topology.set_rtt(step.param("target"), step.param("rtt_ms"), step.param("jitter_ms"))
    run.record_action(i, step, "end", None, links)


def _cut_link(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    links = run.topology.links(step.param("target"))
    run.record_action(i, step, "start", None, links)
    run.topology.cut(step.param("target"), reset=step.param("how") == LinkCut.RESET)
    run.record_action(i, step, "end", None, links)


def _heal_link(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    assert run.topology is not None
    links = run.topology.links(step.param("target"))
    run.record_action(i, step, "start", None, links)
    run.topology.heal(step.param("target"))
    run.record_action(i, step, "end", None, links)


def _stop(run: Run, i: int, step: Step, groups: list[MemberGroup]) -> None:
    for g in groups:
        run.record_action(i, step, "start", g.name, g.live_ids())
        g.stop_all(str(step.action), i)
        run.record_action(i, step, "end", g.name, [])


RunStep = Callable[["Run", int, "Step", "list[MemberGroup]"], None]


@dataclass(frozen=True)
class ActionSpec:
    """What one action is, for everything that reads a timeline."""

    run: RunStep
    label: str
    #: parameter name -> its check and default (``bench.experiment.loading`` validates steps with them)
    params: Mapping[str, Param] = field(default_factory=dict)
    #: the group must reach a newer generation before the step's ``stable`` wait counts
    rebalancing: bool = False
    #: acts on members, so a ``start_members`` step must come first
    needs_members: bool = False
    #: its targets are SIGKILLed at its start: the replay counts them dead from then on
    kills: bool = False
    #: acts on links: the run's members reach the servers through our proxies
    link: bool = False
    #: changes membership by one member (the report's ZooKeeper cost formulas are per such change)
    single_change: bool = False
    #: the action record phases that open a measured episode
    triggers: frozenset[str] = frozenset({"start"})
    #: the label of an episode opened by the action's end
    end_label: str | None = None


ACTIONS: dict[Action, ActionSpec] = {
    Action.START_MEMBERS: ActionSpec(
        _start_members,
        "start members",
        rebalancing=True,
        params={"group": GROUP, "count": Param(positive_int)},  # default: groups.members
    ),
    Action.ADD_MEMBERS: ActionSpec(
        _add_members,
        "scale out",
        rebalancing=True,
        needs_members=True,
        single_change=True,
        params={"group": GROUP, "count": COUNT1},
    ),
    Action.LEAVE_MEMBERS: ActionSpec(
        _leave_members,
        "graceful leave",
        rebalancing=True,
        needs_members=True,
        single_change=True,
        params={"group": GROUP, "count": COUNT1, "pick": Param(choice(Pick), Pick.NEWEST)},
    ),
    Action.KILL_MEMBER: ActionSpec(
        _kill_member,
        "member crash",
        rebalancing=True,
        needs_members=True,
        kills=True,
        single_change=True,
        params={"group": GROUP, "count": COUNT1, "pick": Param(choice(Pick), Pick.RANDOM)},
    ),
    Action.KILL_LEADER: ActionSpec(
        _kill_leader,
        "leader crash",
        rebalancing=True,
        needs_members=True,
        kills=True,
        single_change=True,
        params={"group": GROUP},
    ),
    Action.PAUSE_MEMBER: ActionSpec(
        _pause_member,
        "pause",
        needs_members=True,
        triggers=frozenset({"start", "end"}),
        end_label="resume",
        params={
            "group": GROUP,
            "pick": Param(choice(Pick), Pick.FOLLOWER),
            "seconds": Param(positive_number),
            "sessions": Param(positive_number),  # multiples of the mode's session timeout
        },
    ),
    Action.ROLLING_RESTART: ActionSpec(
        _rolling_restart,
        "rolling restart",
        needs_members=True,
        params={
            "group": GROUP,
            "graceful": Param(boolean, True),
            "between": Param(lambda v: v, "stable"),
        },
    ),
    Action.KILL_COORDINATOR: ActionSpec(
        _kill_coordinator,
        "coordinator crash",
        needs_members=True,
        params={"group": GROUP},
    ),
    Action.STOP_ZK: ActionSpec(
        _stop_zk,
        "ZooKeeper server stop",
        params={"server": Param(lambda v: v, "leader")},
    ),
    Action.RESTART_ZK: ActionSpec(
        _restart_zk,
        "ZooKeeper server restart",
        params={"server": Param(lambda v: v, "stopped")},
    ),
    Action.SET_DELAY: ActionSpec(
        _set_delay,
        "delay change",
        link=True,
        params={
            "target": LINK,
            "rtt_ms": Param(duration, required=True),  # added round trip, half per direction
            "jitter_ms": Param(duration, 0.0),
        },
    ),
    Action.CUT_LINK: ActionSpec(
        _cut_link,
        "link cut",
        link=True,
        params={"target": LINK, "how": Param(choice(LinkCut), LinkCut.BLACKHOLE)},
    ),
    Action.HEAL_LINK: ActionSpec(
        _heal_link,
        "link healed",
        link=True,
        params={"target": LINK},
    ),
    Action.STOP: ActionSpec(
        _stop,
        "stop",
        triggers=frozenset(),
        params={},
    ),
}
#: The action names whose targets the replay counts dead from the action's start.
KILL_ACTIONS = frozenset(str(a) for a, spec in ACTIONS.items() if spec.kills)
