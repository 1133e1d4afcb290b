"""``rebalance-lab validation``: our coordinator against real Kafka 3.9, the same members and profile.

Runs the library scenarios of :data:`SUITE` (``validation``: the demo's situations, three
repetitions; ``validation-sweep``: a cold start and a join at 4, 16 and 64 members, one) on
``coordinator/classic`` and ``coordinator/java`` (our brokers) and ``kafka/3.9-classic`` and
``kafka/3.9-java`` (the same members on Kafka 3.9), then writes the table of
:mod:`bench.analysis.report.validation` (``validation.md``, ``validation.csv``). Targets that cannot
run here (no Java 17 or Maven) are left out with the reason, as ``run`` does; their rows then have
one side only. The name is not ``validate``: that command checks scenario files.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

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

#: (library scenario, repetitions by default)
SUITE: tuple[tuple[str, int], ...] = (("validation", 3), ("validation-sweep", 1))


@click.command("validation")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default: results/validation-<time>.",
)
@click.option(
    "--repeat", type=click.IntRange(min=1), default=None, help="Repetitions of the situations (default 3)."
)
@click.option(
    "--sweep-repeat", type=click.IntRange(min=1), default=None, help="Repetitions of the sweep (default 1)."
)
@click.option(
    "--scenario",
    "scenario_names",
    multiple=True,
    help="Instead of the suite: these scenarios (library names or files), each run --repeat times.",
)
def validation(
    out: Path | None, repeat: int | None, sweep_repeat: int | None, scenario_names: tuple[str, ...]
) -> None:
    """Our coordinator beside real Kafka 3.9 (our members and Java members); writes validation.md."""
    from bench.analysis.report.validation import format_table, write_validation

    started = time.monotonic()
    out = out or Path("results") / f"validation-{time.strftime('%Y%m%d-%H%M%S')}"
    if scenario_names:
        suite = tuple((name, repeat or 1) for name in scenario_names)
    else:
        (situations, r1), (sweep, r2) = SUITE
        suite = ((situations, repeat or r1), (sweep, sweep_repeat or r2))

    def say(line: str) -> None:
        click.echo(line, err=True)

    runs = []
    for name, times in suite:
        for sc in expand(load_scenario(resolve(name))):
            kept = without_unbuilt_java_members(
                without_unbuilt_kafka([(sc, [(m.mode, m.variant) for m in sc.modes])], say), say
            )
            runs += [(s, targets, times) for s, targets in kept]
    progress = console_progress()
    counter = RunCounter(sum(count_runs([sc], times, targets) for sc, targets, times in runs))
    failed: list[tuple[str, str]] = []
    try:
        for sc, targets, times in runs:
            _, f = run_scenarios([sc], out, times, progress, targets, counter=counter)
            failed += f
    except RunAborted as abort:
        click.echo(
            f"Aborted by the user (Ctrl-C); {abort.interrupted} is marked aborted (error.txt).", err=True
        )
        raise SystemExit(EXIT_ABORTED) from None
    progress("building the validation table")
    csv_path, md_path, table = write_validation(out)
    click.echo(format_table(table))
    for label, reason in failed:
        click.echo(f"RUN FAILED {label}: {reason}")
    minutes, seconds = divmod(time.monotonic() - started, 60)
    click.echo(f"validation took {int(minutes)} min {seconds:.0f} s")
    click.echo(f"table: {md_path} (and {csv_path.name} beside it)")
    if failed:
        raise SystemExit(1)
