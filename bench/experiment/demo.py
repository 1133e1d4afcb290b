"""``rebalance-lab demo``: the compact suite behind ``make demo``, its report and a headline table.

Two scenarios from the library: ``demo`` (a group of eight through cold start, scale out, a member
crash and a leader crash, under the ``fast`` profile, in both modes and every zk_mode variant) and
``cold-start`` under ``kafka-defaults`` for the coordinator and the chain variant, which shows
the broker's initial rebalance delay; and ``demo-sweep``, one join into 4, 16 and 64 members for the
coordinator, chain and herd under ``fast``, so the report draws how each design's coordination
ledger grows with the group. The headline table is the ledger's, the latency table follows it. ``demo`` also lists real Kafka 3.9 (``kafka/3.9-classic``, our
members on it) as the reference row; where its jars are not built (no Java 17 or Maven) it is left
out with the reason, as ``run`` does. One repetition each: the demo shows the shape of the answer
in a few minutes; ``rebalance-lab run`` with repetitions gives confidence intervals.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import pandas as pd

from bench.analysis.report.document import write_report
from bench.analysis.report.load import Results, load_results
from bench.analysis.report.tables import QUANTITIES, TIMING_HEADER, ledger_table, summary_table
from bench.backends import TARGETS, TargetError, backend_for, check_target
from bench.experiment.history import RunState
from bench.experiment.library import resolve
from bench.experiment.loading import expand, load_scenario
from bench.experiment.runner import (
    EXIT_ABORTED,
    RunAborted,
    RunCounter,
    console_progress,
    count_runs,
    run_scenarios,
    without_unbuilt_java_members,
    without_unbuilt_kafka,
)
from bench.experiment.scenario import Scenario
from bench.services.kafka_config import KAFKA_MODE

#: (library scenario, the mode/variants to run; None = all it lists)
SUITE: tuple[tuple[str, list[tuple[str, str]] | None], ...] = (
    ("demo", None),
    ("cold-start", [("coordinator", "classic"), ("zk", "chain")]),
    ("demo-sweep", None),
)


def suite_plan(
    chosen: Sequence[tuple[str, list[tuple[str, str]] | None]], target: str, say: Callable[[str], None]
) -> list[tuple[Scenario, list[tuple[str, str]]]]:
    """Each scenario of ``chosen`` with the mode/variants to run (None: all it lists), less what
    cannot run here, each left out with the reason: real-Kafka targets whose jars are not built,
    Java members without java/member, and real Kafka on ``--target compose`` (its image has no Java)."""
    plan = []
    for name, targets in chosen:
        for sc in expand(load_scenario(resolve(name))):
            wanted = targets or [(m.mode, m.variant) for m in sc.modes]
            if target != "local":
                for mode, variant in wanted:
                    if mode == KAFKA_MODE:
                        say(f"skipping {sc.name} [{mode}/{variant}]: real Kafka runs on --target local only")
                wanted = [(mode, variant) for mode, variant in wanted if mode != KAFKA_MODE]
            if wanted:
                plan.append((sc, wanted))
    return without_unbuilt_java_members(without_unbuilt_kafka(plan, say), say)


def headline(res: Results) -> pd.DataFrame:
    """The ledger's table (:func:`~bench.analysis.report.tables.ledger_table`): what each design's
    coordination services served and wrote per rebalance and per idle second, the report's
    "Coordination ledger" table."""
    return ledger_table(res)


def latency_headline(res: Results) -> pd.DataFrame:
    """The report's summary table, cut to the figures a reader looks for first: the same names and
    units as the report, and like it without the failed or aborted runs; sweep points are left to
    the report (its "Sweep points" and figures)."""
    table = summary_table(res)
    if table.empty:
        return table
    data = res.rebalances
    table = table[~table["scenario"].isin(data.loc[data["scenario"] != data["family"], "scenario"])]
    q = QUANTITIES
    columns = [
        "scenario",
        "trigger",
        "mode/variant",
        "converged",
        TIMING_HEADER,
        q["detection_ms"].header,
        q["detection_sessions"].header,
        f"{q['convergence_ms'].header} [95% CI]",
        *(q[c].header for c in ("unowned_partition_s", "zk_reads", "zk_writes", "broker_requests")),
    ]
    return table[columns]


def format_headline(table: pd.DataFrame) -> str:
    return "(no episodes measured)" if table.empty else table.to_string(index=False)


def checks_summary(out: Path) -> list[str]:
    """Checker failures of every run, one line each (empty when every check passed)."""
    lines = []
    for path in sorted(out.glob("**/summary.json")):
        summary = json.loads(path.read_text())
        checks = summary.get("checks") or {}
        completed = summary.get("status", {}).get("state") == RunState.COMPLETED
        if completed and not checks.get("passed", True):  # a failed run is reported as such
            counts = ", ".join(f"{k}: {v}" for k, v in checks.get("failure_counts", {}).items())
            lines.append(
                f"{summary.get('scenario')} {summary.get('mode')}/{summary.get('variant')}: {counts}"
            )
    return lines


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default: results/demo-<time>.",
)
@click.option(
    "--scenario",
    "scenario_names",
    multiple=True,
    help="Instead of the demo suite: these scenarios (library names or files), every mode they list.",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default="local",
    show_default=True,
    help="Where servers and members run (compose: from the bench service, as `run --target compose`).",
)
def demo(out: Path | None, scenario_names: tuple[str, ...], target: str) -> None:
    """Both modes and every zk variant through cold start, scale out and crashes; then the report."""
    started = time.monotonic()
    out = out or Path("results") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        check_target(target)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    backend = backend_for(target)
    progress = console_progress()
    failed: list[tuple[str, str]] = []
    chosen = tuple((name, None) for name in scenario_names) or SUITE
    plan = suite_plan(chosen, target, lambda line: click.echo(line, err=True))
    counter = RunCounter(sum(count_runs([sc], 1, targets) for sc, targets in plan))
    try:
        for sc, targets in plan:
            _, f = run_scenarios([sc], out, 1, progress, targets, backend, counter=counter)
            failed += f
    except RunAborted as abort:
        click.echo(
            f"Aborted by the user (Ctrl-C); {abort.interrupted} is marked aborted (error.txt).", err=True
        )
        raise SystemExit(EXIT_ABORTED) from None
    progress("building the report")
    results = load_results([out])
    report = write_report(results, out / "report")
    click.echo("")
    click.echo("Coordination ledger, per rebalance and per idle second (coordination_load.csv):")
    click.echo(format_headline(headline(results)))
    click.echo("")
    click.echo("Latency (the report's summary):")
    click.echo(format_headline(latency_headline(results)))
    click.echo("")
    for line in checks_summary(out):
        click.echo(f"CHECK FAILED {line}")
    for label, reason in failed:
        click.echo(f"RUN FAILED {label}: {reason}")
    minutes, seconds = divmod(time.monotonic() - started, 60)
    click.echo(f"demo took {int(minutes)} min {seconds:.0f} s")
    click.echo(f"report: {report.html} (and {report.markdown.name} beside it)")
    if failed:
        raise SystemExit(1)
