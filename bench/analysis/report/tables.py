"""The report's tables: the headline summary (one row per quantity and series) and its Markdown and
HTML renderings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.analysis.metrics.stats import describe
from bench.analysis.report.load import Results
from bench.analysis.report.style import SERIES_ORDER, series_order, with_triggers
from bench.experiment.history import RunState
from bench.services.kafka_config import KAFKA_MODE


@dataclass(frozen=True)
class Quantity:
    """How a table shows one quantity: one name and one unit, wherever it appears."""

    name: str
    unit: str  # "" for counts
    scale: float = 1.0  # from the unit of its rebalances.csv column to ``unit``
    digits: int = 2

    @property
    def header(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def format(self, value: float | None) -> str:
        return _fmt(None if value is None else value * self.scale, self.digits)


#: Every quantity the report's summary and the demo's terminal table show, by its rebalances.csv
#: column: a rebalance's durations in seconds, a member's join in milliseconds.
QUANTITIES = {
    "detection_ms": Quantity("detection", "s", 1e-3),
    # detection over the session timeout the run's members had: a crash is noticed after about one
    "detection_sessions": Quantity("detection", "× session"),
    "convergence_ms": Quantity("convergence", "s", 1e-3),
    "unowned_partition_s": Quantity("unowned", "partition·s"),
    # eager against incremental: rounds per episode, and what members revoked against what moved
    "generations": Quantity("rounds", "", digits=0),
    "partitions_revoked": Quantity("revoked", "", digits=0),
    "partitions_moved": Quantity("moved", "", digits=0),
    "join_ms": Quantity("join median / max / span", "ms", digits=0),
    "zk_reads": Quantity("zk reads", "", digits=0),
    "zk_writes": Quantity("zk writes", "", digits=0),
    "broker_requests": Quantity("broker requests", "", digits=0),
    "durable_writes": Quantity("durable writes", "", digits=0),
}


#: The column that names each row's timing profile: what the members of those runs ran with.
TIMING_HEADER = "timing (session / heartbeat / commit s)"


# -- tables ----------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.0f}"


_EPISODE_KEY = ["run_id", "group", "step", "phase"]


def _episode_keys(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[_EPISODE_KEY])


def episode_durable_writes(ledger: pd.DataFrame) -> pd.Series:
    """Per episode, the durable writes of every coordination service (``coordination_load.csv``):
    ZooKeeper's znode changes, or the records appended to ``__consumer_offsets`` by leaders and
    followers; empty without a ledger."""
    if ledger.empty:
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=_EPISODE_KEY))
    episodes = ledger[ledger["kind"] == "episode"]
    return episodes.groupby(_EPISODE_KEY)["durable_writes"].sum(min_count=1)


def summary_table(res: Results) -> pd.DataFrame:
    """Per scenario, trigger and mode/variant: medians with CIs, outcomes and warnings."""
    if res.rebalances.empty:
        return pd.DataFrame()
    data = with_triggers(res.rebalances)
    durable = episode_durable_writes(res.ledger)
    rows = []
    for (scenario, trigger, series), frame in data.groupby(["scenario", "trigger", "series"], sort=False):
        q = QUANTITIES
        conv = describe((frame["convergence_ms"] * q["convergence_ms"].scale).tolist())
        det = describe((frame["detection_ms"] * q["detection_ms"].scale).tolist())
        warns = sorted({w for st in (conv, det) for w in st.warnings if st.n})
        outcomes = frame["outcome"].value_counts()
        joins = frame["join_ms_median"].notna().any() if "join_ms_median" in frame else False
        rows.append(
            {
                "scenario": scenario,
                "trigger": trigger,
                "mode/variant": series,
                "runs": frame["run_id"].nunique(),
                "not completed": frame.loc[frame["run_state"] != RunState.COMPLETED, "run_id"].nunique()
                if "run_state" in frame
                else 0,
                "episodes": len(frame),
                "converged": f"{outcomes.get('converged', 0)}/{len(frame)}",
                TIMING_HEADER: ", ".join(sorted(set(frame["timing"].fillna("–"))))
                if "timing" in frame
                else "–",
                q["detection_ms"].header: _fmt(det.median),
                q["detection_sessions"].header: q["detection_sessions"].format(
                    (frame["detection_ms"] / frame["session_timeout_ms"]).median()
                    if "session_timeout_ms" in frame
                    else None
                ),
                f"{q['convergence_ms'].header} [95% CI]": f"{_fmt(conv.median)} [{_fmt(conv.ci_low)}, "
                f"{_fmt(conv.ci_high)}]"
                if conv.n
                else "–",
                q["unowned_partition_s"].header: q["unowned_partition_s"].format(
                    frame["unowned_partition_s"].median()
                ),
                **{
                    q[c].header: q[c].format(frame[c].median() if c in frame else None)
                    for c in ("generations", "partitions_revoked", "partitions_moved")
                },
                # per joining member, join start -> first assignment (median, max), and first join
                # out -> all of them assigned (span): medians over episodes, the max's max
                q["join_ms"].header: " / ".join(
                    q["join_ms"].format(v)
                    for v in (
                        frame["join_ms_median"].median(),
                        frame["join_ms_max"].max(),
                        frame["join_span_ms"].median(),
                    )
                )
                if joins
                else "–",
                **{
                    q[c].header: q[c].format(frame[c].median())
                    for c in ("zk_reads", "zk_writes", "broker_requests")
                },
                q["durable_writes"].header: q["durable_writes"].format(
                    durable.reindex(_episode_keys(frame)).median()
                ),
                "warnings": "; ".join(warns),
                "_order": frame["step"].min(),
            }
        )
    table = pd.DataFrame(rows)
    if not res.include_failed:
        table = table.drop(columns="not completed")
    table["_series"] = table["mode/variant"].map(lambda s: series_order(list(SERIES_ORDER) + [s]).index(s))
    return table.sort_values(["scenario", "_order", "trigger", "_series"]).drop(columns=["_order", "_series"])


#: The ledger's cost columns (``coordination_load.csv``) and how the ledger table heads them.
LEDGER_COSTS = {
    "requests": "requests",
    "bytes_in": "bytes in",
    "bytes_out": "bytes out",
    "durable_writes": "durable writes",
    "fsyncs": "fsyncs",
    "replication_messages": "repl msgs",
    "replication_bytes": "repl bytes",
}
#: The ledger table's label for a design's rates over steady windows.
IDLE = "idle, per second"


def ledger_costs(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every coordination service of a design summed: one row per episode (its costs), and one per
    steady window (its costs per second). Each service has its own reading span, so the rows of one
    episode are matched by what they measure (run, group, step, phase), a steady window by its rank
    in the run. A cost no service of the row measured stays empty (``min_count``), never 0."""
    costs = [c for c in LEDGER_COSTS if c in ledger]
    keys = ["scenario", "family", "scenario_members", "series", "run_id"]
    # Real Kafka's own costs are read over JMX (broker_load.csv, `rebalance-lab validation`): its
    # ledger rows hold only the ZooKeeper side, which would read as a design that costs nothing.
    ledger = ledger[ledger["mode"] != KAFKA_MODE]
    ledger = ledger.assign(members=ledger["members"].fillna(0))
    episodes = (
        ledger[ledger["kind"] == "episode"]
        .groupby([*keys, "group", "step", "action", "phase", "members"])[costs]
        .sum(min_count=1)
        .reset_index()
    )
    steady = ledger[(ledger["kind"] == "steady") & (ledger["duration_s"] > 0)]
    steady = steady.assign(
        window=steady.groupby(["run_id", "service"])["start_s"].rank(method="first"),
        **{c: steady[c] / steady["duration_s"] for c in costs},
    )
    steady = steady.groupby([*keys, "window", "members"])[costs].sum(min_count=1).reset_index()
    return episodes, steady


def ledger_table(res: Results) -> pd.DataFrame:
    """The ledger's headline: per scenario (sweep point) and design, the median over episodes of
    each trigger of what every coordination service served and wrote per rebalance, and the median
    rate over steady windows (``IDLE``); ``n`` says how many episodes or windows each rests on."""
    if res.ledger.empty or "service" not in res.ledger:
        return pd.DataFrame()
    episodes, steady = ledger_costs(res.ledger)
    timing: dict[str, str] = {}
    if not res.rebalances.empty and "timing" in res.rebalances:
        timing = res.rebalances.drop_duplicates("run_id").set_index("run_id")["timing"].to_dict()
    episodes = with_triggers(episodes) if not episodes.empty else episodes.assign(trigger=[])
    if episodes.empty and steady.empty:
        return pd.DataFrame()
    rows = []
    for frame in (episodes, steady.assign(trigger=IDLE, step=float("inf"))):
        for (scenario, trigger, series), group in frame.groupby(
            ["scenario", "trigger", "series"], sort=False
        ):
            rows.append(
                {
                    "scenario": scenario,
                    "trigger": trigger,
                    "mode/variant": series,
                    "members": _fmt(group["members"].median(), 0),
                    TIMING_HEADER: ", ".join(sorted({timing.get(r, "–") for r in group["run_id"]})),
                    "n": len(group),
                    **{
                        header: _fmt(group[c].median(), 1 if trigger == IDLE else 0)
                        for c, header in LEDGER_COSTS.items()
                        if c in group
                    },
                    "_family": group["family"].iloc[0],
                    "_size": group["scenario_members"].iloc[0],
                    "_order": group["step"].min(),
                    "_series": series_order(list(SERIES_ORDER) + [series]).index(series),
                }
            )
    table = pd.DataFrame(rows)
    order = ["_family", "_size", "scenario", "_order", "trigger", "_series"]
    return table.sort_values(order).drop(columns=[c for c in order if c.startswith("_")])


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines) + "\n"


def html_table(frame: pd.DataFrame) -> str:
    return "<p><em>none</em></p>" if frame.empty else frame.to_html(index=False, escape=True, border=0)
