"""The validation table: our coordinator beside real Kafka 3.9, with the same members and profile.

For each pair of targets with the same members (:data:`PAIRS`: our members on our brokers and on
Kafka 3.9, the Java consumer on both), each situation (the episode's action) and group size, the
median over episodes of: detection and convergence (``rebalances.csv``), requests per group API
(``broker_load.csv``; real Kafka's also hold replication and controller traffic, so only the group
APIs of :data:`GROUP_APIS` are compared), records appended to ``__consumer_offsets`` (real Kafka's
``append:__consumer_offsets`` row, leader appends; ours: the ``group_coordinator`` row of
``coordination_load.csv``, records appended as partition leaders; not counted where absent) and
ZooKeeper reads and writes in the brokers' namespace (``zk_load.csv``: ``kafka`` for ours,
``realkafka`` for 3.9). Each figure gets the ratio ours/real and a flag when it is off by more than
:data:`FLAG_ABOVE`. :func:`compare` is the computation, pure; :func:`load_medians` reads the runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.services.jolokia import OFFSETS_ROW

#: (ours, real Kafka): the same members on our brokers and on Kafka 3.9
PAIRS: tuple[tuple[str, str], ...] = (
    ("coordinator/classic", "kafka/3.9-classic"),
    ("coordinator/java", "kafka/3.9-java"),
)
#: The group APIs whose request counts are compared (every broker's, summed).
GROUP_APIS = (
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "OffsetCommit",
    "OffsetFetch",
    "LeaveGroup",
    "FindCoordinator",
    "Metadata",
)
#: The table's metrics, in its order
METRICS = ("detection_s", "convergence_s", *GROUP_APIS, "offsets records appended", "zk reads", "zk writes")
#: |ratio - 1| above this is flagged
FLAG_ABOVE = 0.15
#: The brokers' ZooKeeper namespace per target family (``zk_load.csv``'s ``namespace``).
BROKER_NAMESPACE = {"coordinator": "kafka", "kafka": "realkafka"}
NOT_COUNTED = "n/a (not counted)"
COLUMNS = ["situation", "members", "clients", "metric", "ours", "real", "ratio", "flag", "episodes"]


def ratio(ours: float | None, real: float | None) -> float | None:
    """ours / real; 1 when both are 0, infinite when only real is 0, None when either is missing."""
    if ours is None or real is None or (isinstance(ours, float) and math.isnan(ours)):
        return None
    if isinstance(real, float) and math.isnan(real):
        return None
    if real == 0:
        return 1.0 if ours == 0 else math.inf
    return ours / real


def flagged(r: float | None) -> bool:
    return r is not None and abs(r - 1) > FLAG_ABOVE


def compare(medians: pd.DataFrame) -> pd.DataFrame:
    """``medians``: one row per (situation, members, target, metric) with ``value`` (None or NaN: not
    counted) and ``episodes``. Returns one row per pair of :data:`PAIRS`, situation, size and metric
    with both values, the ratio and the flag (:data:`COLUMNS`); a metric one side lacks is shown with
    the other's value, no ratio and no flag."""
    rows = []
    for ours_target, real_target in PAIRS:
        ours_rows = medians[medians["target"] == ours_target]
        real_rows = medians[medians["target"] == real_target]
        keys = ["situation", "members", "metric"]
        joined = ours_rows.merge(real_rows, on=keys, how="outer", suffixes=("_ours", "_real"))
        for _, row in joined.iterrows():
            ours = _number(row["value_ours"])
            real = _number(row["value_real"])
            r = ratio(ours, real)
            episodes = [_number(row[c]) for c in ("episodes_ours", "episodes_real")]
            rows.append(
                {
                    "situation": row["situation"],
                    "members": int(row["members"]),
                    "clients": ours_target.split("/", 1)[1],
                    "metric": row["metric"],
                    "ours": ours,
                    "real": real,
                    "ratio": r,
                    "flag": flagged(r),
                    "episodes": "/".join("–" if e is None else str(int(e)) for e in episodes),
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    # the situations in timeline order, the metrics as the docstring lists them
    order = {m: i for i, m in enumerate(METRICS)}
    situations = {s: i for i, s in enumerate(dict.fromkeys(medians["situation"]))}
    return table.sort_values(
        ["clients", "members", "situation", "metric"],
        key=lambda c: (
            c.map(situations) if c.name == "situation" else c.map(order) if c.name == "metric" else c
        ),
        kind="stable",
    ).reset_index(drop=True)


def _number(value: object) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)  # type: ignore[arg-type]


def _frames(out: Path, name: str) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in sorted(out.glob(f"**/{name}")) if p.stat().st_size]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _completed_runs(out: Path) -> set[str]:
    runs = set()
    for path in out.glob("**/summary.json"):
        summary = json.loads(path.read_text())
        if summary.get("status", {}).get("state") == "completed":
            runs.add(summary.get("run_id"))
    return runs


def load_medians(out: Path) -> pd.DataFrame:
    """The per-episode figures of every completed run below ``out``, as medians per situation, size,
    target and metric (the input of :func:`compare`)."""
    rebalances = _frames(out, "rebalances.csv")
    if rebalances.empty:
        return pd.DataFrame(columns=["situation", "members", "target", "metric", "value", "episodes"])
    rebalances = rebalances[rebalances["run_id"].isin(_completed_runs(out))]
    keys = ["run_id", "group", "step"]
    episodes = rebalances[[*keys, "action", "scenario_members", "mode", "variant"]].copy()
    episodes["detection_s"] = rebalances["detection_ms"] / 1000
    episodes["convergence_s"] = rebalances["convergence_ms"] / 1000

    load = _frames(out, "broker_load.csv")
    if not load.empty:
        load = load[load["kind"] == "episode"]
        counts = load.pivot_table(index=keys, columns="api", values="requests", aggfunc="sum")
        for api in GROUP_APIS:
            episodes[api] = _lookup(episodes, counts, keys, api, fill=0.0)
        episodes["offsets records appended"] = _lookup(episodes, counts, keys, OFFSETS_ROW, fill=None)
    ledger = _frames(out, "coordination_load.csv")
    if not ledger.empty:
        # ours: what the coordinators appended to __consumer_offsets as partition leaders (the
        # ledger's group_coordinator durable_writes), the leader appends Kafka's MessagesInPerSec counts
        mine = ledger[(ledger["kind"] == "episode") & (ledger["service"] == "group_coordinator")]
        appended = mine.groupby(keys)[["durable_writes"]].sum()
        pick = episodes["mode"] == "coordinator"
        got = _lookup(episodes, appended, keys, "durable_writes", fill=None)
        episodes.loc[pick, "offsets records appended"] = got[pick]

    zk = _frames(out, "zk_load.csv")
    if not zk.empty:
        zk = zk[zk["kind"] == "episode"]
        for family, namespace in BROKER_NAMESPACE.items():
            mine = zk[zk["namespace"] == namespace]
            sums = mine.groupby(keys)[["reads", "writes"]].sum()
            pick = episodes["mode"] == family
            for column in ("reads", "writes"):
                got = _lookup(episodes, sums, keys, column, fill=0.0)
                episodes.loc[pick, f"zk {column}"] = got[pick]

    metrics = [
        c for c in episodes.columns if c not in {*keys, "action", "scenario_members", "mode", "variant"}
    ]
    episodes["target"] = episodes["mode"] + "/" + episodes["variant"]
    long = episodes.melt(
        id_vars=["action", "scenario_members", "target"], value_vars=metrics, var_name="metric"
    )
    grouped = long.groupby(["action", "scenario_members", "target", "metric"], sort=False)["value"]
    # episodes: how many had the figure (a metric no episode counted has 0 and a NaN median)
    medians = grouped.agg(["median", "count"]).reset_index()
    return medians.rename(
        columns={"action": "situation", "scenario_members": "members", "median": "value", "count": "episodes"}
    )


def _lookup(
    episodes: pd.DataFrame, table: pd.DataFrame, keys: list[str], column: str, fill: float | None
) -> pd.Series:
    if column not in table.columns:
        return pd.Series([fill] * len(episodes), index=episodes.index, dtype="float64")
    values = table[column]
    index = pd.MultiIndex.from_frame(episodes[keys])
    found = values.reindex(index).to_numpy()
    series = pd.Series(found, index=episodes.index, dtype="float64")
    return series if fill is None else series.fillna(fill)


def _fmt(value: float | None, metric: str) -> str:
    if value is None or math.isnan(value):
        return NOT_COUNTED if metric == "offsets records appended" else "–"
    return f"{value:.2f}" if metric.endswith("_s") else f"{value:g}"


def format_table(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table, a flagged row marked with ⚑."""
    header = "| situation | members | clients | metric | ours | real 3.9 | ours/real | flag | episodes |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        r = (
            "–"
            if row.ratio is None or math.isnan(row.ratio)
            else ("∞" if math.isinf(row.ratio) else f"{row.ratio:.2f}")
        )
        lines.append(
            f"| {row.situation} | {row.members} | {row.clients} | {row.metric} | {_fmt(row.ours, row.metric)} "
            f"| {_fmt(row.real, row.metric)} | {r} | {'⚑' if row.flag else ''} | {row.episodes} |"
        )
    return "\n".join(lines)


def write_validation(out: Path) -> tuple[Path, Path, pd.DataFrame]:
    """``validation.csv`` and ``validation.md`` in ``out`` from the runs below it."""
    table = compare(load_medians(out))
    csv_path, md_path = out / "validation.csv", out / "validation.md"
    table.to_csv(csv_path, index=False)
    flagged_rows = int(table["flag"].sum()) if not table.empty else 0
    note = (
        f"Medians over episodes (the episodes column: ours/real). ⚑: |ours/real - 1| > {FLAG_ABOVE:.0%} "
        f"({flagged_rows} of {len(table)}). Requests are every broker's of the episode, group APIs only; "
        f"ZooKeeper reads and writes are the brokers' namespace. Records appended: to __consumer_offsets "
        f"as partition leader (Kafka: MessagesInPerSec; ours: coordination_load.csv).\n\n"
    )
    md_path.write_text("# Our coordinator against Kafka 3.9\n\n" + note + format_table(table) + "\n")
    return csv_path, md_path, table
