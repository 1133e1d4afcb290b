"""Statistics over episodes of one kind (repetitions, several groups).

:func:`describe` gives the median with a distribution-free 95 % confidence interval from order
statistics and warns when there are fewer than ``MIN_SAMPLES`` values or the coefficient of
variation exceeds ``MAX_CV``; :func:`aggregate` does it per episode kind.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

CI_LEVEL = 0.95
MIN_SAMPLES = 5
MAX_CV = 0.25

#: Per-episode metrics summarised by :func:`describe`, with their units.
METRICS = {
    "detection_ms": "ms",
    "convergence_ms": "ms",
    "unowned_partition_s": "partition-s",
    "generations": "generations",
    "partitions_revoked": "partitions",
    "partitions_moved": "partitions",
    "zk_reads": "requests",
    "zk_writes": "znode changes",
    "zk_watch_notifications": "notifications",
    "broker_requests": "requests",
}


# -- statistics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    n: int
    median: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float | None  # the interval's actual coverage (order statistics give discrete levels)
    min: float | None
    max: float | None
    q1: float | None
    q3: float | None
    cv: float | None  # sample standard deviation / mean
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _binom_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Distribution-free CI for the median: order statistics x_(k), x_(n+1-k) with the largest k whose
    coverage 1 - 2 P(Bin(n, 1/2) <= k-1) is still >= level. With too few values for ``level`` this
    returns (min, max) and its smaller coverage."""
    xs = sorted(values)
    n = len(xs)
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _binom_cdf(k, n) >= level:
        k += 1
    coverage = 1 - 2 * _binom_cdf(k - 1, n)
    return xs[k - 1], xs[n - k], coverage


def describe(values: Iterable[float | None]) -> Stats:
    """Median, its 95 % CI, quartiles and warnings over the non-missing values."""
    xs = [float(v) for v in values if not pd.isna(v)]
    n = len(xs)
    if n == 0:
        return Stats(0, None, None, None, None, None, None, None, None, None, ("no values",))
    arr = np.array(xs)
    low, high, coverage = median_ci(xs)
    mean = float(arr.mean())
    cv = float(arr.std(ddof=1) / mean) if n > 1 and mean > 0 else (0.0 if n > 1 else None)
    warnings = []
    if n < MIN_SAMPLES:
        interval = f": the min-max interval covers {coverage:.0%}" if n > 1 else ""
        warnings.append(f"only {n} value(s), want >= {MIN_SAMPLES}{interval}")
    if cv is not None and cv > MAX_CV:
        warnings.append(f"values disagree: CV {cv:.0%} > {MAX_CV:.0%}")
    return Stats(
        n=n,
        median=float(np.median(arr)),
        ci_low=low,
        ci_high=high,
        ci_level=round(coverage, 4),
        min=float(arr.min()),
        max=float(arr.max()),
        q1=float(np.percentile(arr, 25)),
        q3=float(np.percentile(arr, 75)),
        cv=None if cv is None else round(cv, 4),
        warnings=tuple(warnings),
    )


#: Rows with the same values here are repetitions of one measurement.
EPISODE_KEY = ("scenario", "mode", "variant", "step", "action", "phase")


def aggregate(rebalances: pd.DataFrame, keys: Sequence[str] = EPISODE_KEY) -> pd.DataFrame:
    """One row per (key, metric) with :class:`Stats` columns; over runs, groups and repetitions."""
    rows = []
    if rebalances.empty:
        return pd.DataFrame(columns=[*keys, "metric", "unit", *Stats.__dataclass_fields__])
    for key, frame in rebalances.groupby(list(keys), dropna=False, sort=True):
        for metric, unit in METRICS.items():
            if metric not in frame:
                continue
            stats = describe(frame[metric].tolist())
            if stats.n == 0:
                continue
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "metric": metric,
                    "unit": unit,
                    **stats.to_dict(),
                    "runs": int(frame["run_id"].nunique()) if "run_id" in frame else None,
                }
            )
    return pd.DataFrame(rows)
