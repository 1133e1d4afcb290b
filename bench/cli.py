"""The ``rebalance-lab`` command line. Each subcommand lives in the module that owns its idea.

Subcommands are imported when they run, not up front: a member or broker process must not pay for
pandas and matplotlib (the report's) at start-up, or starting many at once on a small machine would
measure Python's imports instead of a join.
"""

from __future__ import annotations

import logging

import click

from group_api.registry import resolve

#: subcommand -> "module:attribute" of its click command
COMMANDS = {
    "analyze": "bench.analysis.metrics.tables:analyze_command",
    "broker": "coordinator_mode.broker.cli:broker",
    "cluster": "bench.services.cluster:cluster",
    "demo": "bench.experiment.demo:demo",
    "join-cost": "bench.experiment.joincost:join_cost",
    "member": "bench.services.member_host:member",
    "report": "bench.analysis.report.document:report",
    "rtt-slopes": "bench.analysis.slopes:rtt_slopes",
    "run": "bench.experiment.runner:run",
    "scenarios": "bench.experiment.library:scenarios",
    "validate": "bench.experiment.library:validate",
    "validation": "bench.experiment.validation:validation",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        return None if target is None else resolve(target)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.version_option(package_name="rebalance-lab")
def main(verbose: int) -> None:
    """Measure who should elect a consumer group's leader: a group coordinator or ZooKeeper."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kazoo logs every reconnect attempt at WARNING; keep it quieter unless asked.
    if verbose < 2:
        logging.getLogger("kazoo").setLevel(max(level, logging.ERROR))
