"""``rebalance-lab demo``: the compact suite behind ``make demo``, its report and a headline table.

Two scenarios from the library: ``demo`` (a group of eight through cold start, scale out, a member
crash and a leader crash, under the ``fast`` profile, in both modes and every zk_mode variant) and
``cold-start`` under ``kafka-defaults`` for the coordinator and the chain variant, which shows
the broker's initial rebalance delay. One repetition each: the demo shows the shape of the answer
in a few minutes; ``rebalance-lab run`` with repetitions gives confidence intervals.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pandas as pd

from bench.runner import RunCounter, console_progress, count_runs, run_scenarios
from bench.scenario import expand, load_scenario, resolve

#: (library scenario, the mode/variants to run; None = all it lists)
SUITE: tuple[tuple[str, list[tuple[str, str]] | None], ...] = (
    ("demo", None),
    ("cold-start", [("coordinator", "classic"), ("zk", "chain")]),
)

_TRIGGERS = {
    ("demo", "start_members"): "cold start",
    ("demo", "add_members"): "scale out",
    ("demo", "kill_member"): "member crash",
    ("demo", "kill_leader"): "leader crash",
    ("cold-start", "start_members"): "cold start (kafka-defaults)",
}


def headline(out: Path) -> pd.DataFrame:
    """One row per (situation, mode/variant): the figures a reader looks for first."""
    frames = []
    for path in sorted(out.glob("**/rebalances.csv")):
        try:
            frames.append(pd.read_csv(path))
        except pd.errors.EmptyDataError:
            continue  # a run that failed before its first episode
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df = df[df["phase"] == "start"]
    df["situation"] = [
        _TRIGGERS.get((s, a), f"{s}: {a}") for s, a in zip(df["family"], df["action"], strict=True)
    ]
    df["target"] = df["mode"] + "/" + df["variant"]
    order = {label: i for i, label in enumerate(_TRIGGERS.values())}
    df = df.sort_values(
        ["situation", "target"], key=lambda col: col.map(order) if col.name == "situation" else col
    )
    table = (
        df.groupby(["situation", "target"], sort=False)
        .agg(
            converge_ms=("convergence_ms", "median"),
            detect_ms=("detection_ms", "median"),
            unowned_partition_s=("unowned_partition_s", "median"),
            zk_reads=("zk_reads", "median"),
            zk_writes=("zk_writes", "median"),
            broker_requests=("broker_requests", "median"),
        )
        .reset_index()
    )
    return table


def format_headline(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no episodes measured)"
    shown = table.copy()
    for col in ("converge_ms", "detect_ms", "zk_reads", "zk_writes", "broker_requests"):
        shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}")
    shown["unowned_partition_s"] = shown["unowned_partition_s"].map(
        lambda v: "-" if pd.isna(v) else f"{v:.1f}"
    )
    return shown.to_string(index=False)


def checks_summary(out: Path) -> list[str]:
    """Checker failures of every run, one line each (empty when every check passed)."""
    lines = []
    for path in sorted(out.glob("**/summary.json")):
        summary = json.loads(path.read_text())
        checks = summary.get("checks") or {}
        if not checks.get("passed", True):
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
def demo(out: Path | None) -> None:
    """Both modes and every zk variant through cold start, scale out and crashes; then the report."""
    from bench.report import build_report

    started = time.monotonic()
    out = out or Path("results") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    progress = console_progress()
    failed: list[tuple[str, str]] = []
    suite = [(expand(load_scenario(resolve(name))), targets) for name, targets in SUITE]
    counter = RunCounter(sum(count_runs(scenarios, 1, targets) for scenarios, targets in suite))
    for scenarios, targets in suite:
        _, f = run_scenarios(scenarios, out, 1, progress, targets, counter=counter)
        failed += f
    progress("building the report")
    report = build_report([out], out / "report")
    click.echo("")
    click.echo(format_headline(headline(out)))
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
