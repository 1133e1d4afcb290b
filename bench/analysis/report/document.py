"""``rebalance-lab report DIR...``: figures and tables from every run directory below the given dirs.

Writes ``report.html`` (self-contained: figures embedded as base64 PNG), ``report.md`` with the
same content and its figures as files under ``figures/``. Runs that failed or were aborted come
first in both documents, then check failures; the failed runs stay out of every figure and
statistic unless asked for (``--include-failed``). Loading is :mod:`~bench.analysis.report.load`,
the figures :mod:`~bench.analysis.report.figures`, the tables :mod:`~bench.analysis.report.tables`.
"""

from __future__ import annotations

import base64
import html
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd

from bench.analysis.metrics.tables import find_runs
from bench.analysis.report.figures import Figure, Skipped, all_figures
from bench.analysis.report.load import Results, load_results
from bench.analysis.report.style import plural, series_order
from bench.analysis.report.tables import IDLE, html_table, ledger_table, md_table, summary_table

log = logging.getLogger(__name__)


# -- documents -------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
figure { margin: 1.5em 0 2.5em; } figure img { max-width: 100%; }
figcaption { font-size: 13px; color: #444; max-width: 1000px; }
.fail { background: #fdecea; border-left: 4px solid #c62828; padding: 0.6em 1em; }
.pass { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: 0.6em 1em; }
.skipped { color: #666; font-size: 13px; }
details summary { cursor: pointer; color: #444; margin: 0.3em 0; }
"""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    figures: tuple[Path, ...]


@dataclass
class _Document:
    """Builds the Markdown and the HTML version side by side, from the same calls."""

    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.md.append(f"\n{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str | None = None) -> None:
        self.md.append(f"{text}\n")
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{html.escape(text).replace('**', '')}</p>")

    def table(self, frame: pd.DataFrame, folded: str | None = None) -> None:
        """A table; ``folded`` puts it behind a summary line in HTML (long lists)."""
        self.md.append((f"**{folded}:**\n\n" if folded else "") + md_table(frame))
        table = html_table(frame)
        self.html.append(
            f"<details><summary>{html.escape(folded)}</summary>{table}</details>" if folded else table
        )

    def figure(self, fig: Figure, path: Path) -> None:
        self.md.append(f"### {fig.title}\n\n![{fig.title}](figures/{path.name})\n\n{fig.caption}\n")
        b64 = base64.b64encode(fig.png).decode("ascii")
        self.html.append(
            f'<figure><h3>{html.escape(fig.title)}</h3><img alt="{html.escape(fig.title)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(fig.caption)}</figcaption></figure>'
        )

    def bullets(self, items: Sequence[str], css: str | None = None) -> None:
        self.md.append("".join(f"- {i}\n" for i in items))
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<ul{cls}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def write(self, md_path: Path, html_path: Path) -> None:
        md_path.write_text("\n".join(self.md))
        html_path.write_text(
            '<!doctype html><html><head><meta charset="utf-8"><title>rebalance-lab report</title>'
            f"<style>{_CSS}</style></head><body>{''.join(self.html)}</body></html>\n"
        )


def _failure_overview(failures: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (scenario, series, check), frame in failures.groupby(
        ["scenario", "mode/variant", "check"], sort=True
    ):
        rows.append(
            {
                "scenario": scenario,
                "mode/variant": series,
                "check": check,
                "failures": len(frame),
                "runs": frame["run"].nunique(),
                "example": frame["message"].iloc[0],
            }
        )
    return pd.DataFrame(rows)


def _incomplete_section(doc: _Document, res: Results) -> None:
    """First in the report: runs whose numbers are no measurement, and whether they were left out."""
    doc.heading(2, "Runs that did not complete")
    kept = (
        "They are INCLUDED in the figures and statistics below (--include-failed); the summary's "
        "'not completed' column counts them per row."
        if res.include_failed
        else "Their numbers are left out of every figure, statistic and check below "
        "(rebalance-lab report --include-failed takes them in)."
    )
    doc.para(f"**{plural(len(res.incomplete), 'run')} failed or aborted.** {kept}", css="fail")
    rows = [
        {
            "run": s["run_id"],
            "scenario": s["scenario"],
            "mode/variant": f"{s['mode']}/{s['variant']}",
            "status": s["status"]["state"],
            "reason": s["status"]["reason"],
        }
        for s in res.incomplete
    ]
    doc.table(pd.DataFrame(rows))


def _checks_section(doc: _Document, res: Results) -> None:
    doc.heading(2, "Checks")
    failures = res.failures
    if not res.summaries:
        doc.para("**No completed run: nothing was measured or checked.**", css="fail")
    elif failures.empty:
        checked = plural(len(res.summaries), "run") + (
            " (failed ones included)" if res.include_failed else ""
        )
        doc.para(
            f"**All {checked} passed the checks**: no partition owned twice, every partition owned "
            "whenever a group was stable, at most one leader per generation, no committed offset lost.",
            css="pass",
        )
    else:
        doc.para(
            f"**FAILED: {len(failures)} check failure(s) in {failures['run'].nunique()} run(s).**", css="fail"
        )
        doc.table(_failure_overview(failures))
        doc.table(failures, folded=f"All {len(failures)} failures")


def write_report(res: Results, out: Path) -> ReportFiles:
    """The report's sections in reading order (68 lines: the table of contents of the document;
    each section's content comes from :mod:`figures` and :mod:`tables`)."""
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    items = all_figures(res)
    figures = [f for f in items if isinstance(f, Figure)]
    skipped = [f for f in items if isinstance(f, Skipped)]
    paths = []
    for f in figures:
        path = fig_dir / f"{f.name}.png"
        path.write_bytes(f.png)
        paths.append(path)

    doc = _Document()
    data = res.rebalances
    scenarios = sorted(data["scenario"].unique()) if not data.empty else []
    series = series_order(list(data["series"].unique())) if not data.empty else []
    doc.heading(1, "rebalance-lab report")
    not_completed = f", {len(res.incomplete)} failed or aborted" if res.incomplete else ""
    doc.para(
        f"{plural(res.completed, 'completed run')}{not_completed} from {', '.join(str(r) for r in res.roots)}; "
        f"{len(scenarios)} scenario(s) measured; modes/variants: {', '.join(series) or 'none'}. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}."
    )
    if res.incomplete:
        _incomplete_section(doc, res)
    _checks_section(doc, res)

    doc.heading(2, "Figures")
    for f, path in zip(figures, paths, strict=True):
        doc.figure(f, path)
    if skipped:
        doc.heading(3, "Not drawn")
        doc.bullets([f"{s.title}: {s.reason}" for s in skipped], css="skipped")

    table = summary_table(res)
    doc.heading(2, "Summary")
    doc.para(
        "Medians over episodes (runs × groups); the 95 % CI is the median's, from order statistics. "
        "Warnings mark numbers to distrust. Column definitions: the README of rebalance-lab, section 'Results'."
    )
    if table.empty:
        doc.para("No episodes.")
    else:
        points = table["scenario"].isin(data.loc[data["scenario"] != data["family"], "scenario"])
        doc.table(table[~points])
        if points.any():
            doc.heading(3, "Sweep points")
            doc.table(
                table[points], folded=f"{int(points.sum())} rows, one per sweep point, trigger and mode"
            )

    ledger = ledger_table(res)
    doc.heading(2, "Coordination ledger")
    doc.para(
        "What every coordination service of each design served and wrote (coordination_load.csv, "
        "summed over its services): the median over a trigger's episodes per rebalance, and the median "
        f"rate over steady windows ('{IDLE}'); n is how many episodes or windows a row rests on (with "
        "n = 1, one value: no spread). Real Kafka's own costs are read over JMX and left out here."
    )
    if ledger.empty:
        doc.para("No ledger rows.")
    else:
        doc.table(ledger)

    kept = res.summaries + ([] if res.include_failed else res.incomplete)
    problems = [f"{s['run_id']}: {p}" for s in kept for p in s.get("problems", [])]
    if problems:
        doc.heading(2, "Problems reading the runs")
        doc.bullets(problems)
    harness = [f"{s['run_id']}: {p}" for s in kept for p in s.get("harness_problems", [])]
    if harness:
        doc.heading(2, "Harness problems")
        doc.para(
            "What the harness got wrong, apart from the designs' checks: each escalation is recorded "
            "as a kill at the moment it happened, so the checks above count those members dead from then on."
        )
        doc.bullets(harness)
    files = ReportFiles(out / "report.html", out / "report.md", tuple(paths))
    doc.write(files.markdown, files.html)
    return files


def build_report(dirs: Sequence[Path], out: Path, include_failed: bool = False) -> ReportFiles:
    return write_report(load_results(dirs, include_failed), out)


#: Exit code of ``report`` when there is nothing to report (as for a usage error).
EXIT_NO_RUNS = 2


@click.command("report")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write report.html, report.md and figures/ (default: DIR/report for the first DIR).",
)
@click.option(
    "--include-failed",
    is_flag=True,
    help="Count failed and aborted runs in the figures and statistics too (they are always listed first).",
)
def report(dirs: tuple[Path, ...], out: Path | None, include_failed: bool) -> None:
    """Build an HTML and a Markdown report from every run directory below DIRS.

    Exits 0 once the report is written (whatever the runs say: the report puts failures first),
    2 when there is no run directory below DIRS.
    """
    if not find_runs(dirs):
        error = click.ClickException(
            f"no run directories (with events.jsonl) below {', '.join(map(str, dirs))}"
        )
        error.exit_code = EXIT_NO_RUNS
        raise error
    files = build_report(dirs, out or dirs[0] / "report", include_failed)
    click.echo(f"report: {files.html}\nmarkdown: {files.markdown} ({len(files.figures)} figures)")
