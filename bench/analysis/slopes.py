"""Round-trip slopes: how many round trips each design's reaction waits for, measured.

From the ``rebalances.csv`` of a sweep over injected round-trip time (``rtt-sweep``), it fits
``convergence_ms = a + k * rtt_ms`` by least squares per design, variant and action; ``k`` is the
number of round trips on the measured critical path. ``rebalance-lab rtt-slopes RESULTS_DIR`` prints
``k`` beside the floor the cost model (:mod:`bench.model`) counts on the code path, and their ratio.
Only converged episodes count; a crash's convergence waits out the session timeout, so its ``k``
is noise around the floor of the reaction after the detection (the README says so); the standard
error of each ``k`` says how much to trust it.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click

from bench.model import EVENT_OF_ACTION, critical_path


@dataclass(frozen=True)
class Slope:
    mode: str
    variant: str
    action: str
    points: int
    intercept_ms: float
    round_trips: float  # k, fitted
    stderr: float  # the fit's standard error of k (NaN below three points)


def fit(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``y = a + k x``; (a, k), NaN when x does not vary."""
    a, k, _ = fit_with_error(points)
    return a, k


def fit_with_error(points: Iterable[tuple[float, float]]) -> tuple[float, float, float]:
    """(a, k, standard error of k) of the least-squares line."""
    pts = list(points)
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return my, math.nan, math.nan
    k = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - k * mx
    if n < 3:
        return a, k, math.nan
    residuals = sum((y - a - k * x) ** 2 for x, y in pts)
    return a, k, math.sqrt(residuals / (n - 2) / sxx)


def slopes(results: Path) -> list[Slope]:
    """One slope per (mode, variant, action) over every ``rebalances.csv`` under ``results``."""
    points: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(results.rglob("rebalances.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("outcome") == "converged" and row.get("convergence_ms") and row.get("rtt_ms"):
                    key = (row["mode"], row["variant"], row["action"])
                    points[key].append((float(row["rtt_ms"]), float(row["convergence_ms"])))
    out = []
    for (mode, variant, action), pts in sorted(points.items()):
        a, k, se = fit_with_error(pts)
        out.append(Slope(mode, variant, action, len(pts), a, k, se))
    return out


def format_slopes(rows: list[Slope]) -> str:
    head = f"{'design/variant':<26}{'event':<12}{'points':>7}{'a ms':>9}{'k RTTs':>9}{'± se':>7}{'floor':>8}{'k/floor':>9}"
    lines = [head, "-" * len(head)]
    for s in rows:
        event = EVENT_OF_ACTION.get(s.action, s.action)
        floor = critical_path(s.mode, s.variant, event)
        ratio = s.round_trips / floor if floor else math.nan
        floor_cell = f"{floor:>8.1f}" if floor is not None else f"{'-':>8}"
        lines.append(
            f"{s.mode + '/' + s.variant:<26}{event:<12}{s.points:>7}{s.intercept_ms:>9.0f}"
            f"{s.round_trips:>9.1f}{s.stderr:>7.1f}{floor_cell}{ratio:>9.2f}"
        )
    return "\n".join(lines)


@click.command("rtt-slopes")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rtt_slopes(results: Path) -> None:
    """Fit convergence = a + k x RTT per design, variant and event over a round-trip sweep's run
    directories (e.g. ``rebalance-lab run rtt-sweep``), beside the model's critical-path floor."""
    rows = slopes(results)
    if not rows:
        raise click.ClickException(f"no converged episodes with an rtt_ms under {results}")
    click.echo(format_slopes(rows))
