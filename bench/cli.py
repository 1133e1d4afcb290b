"""The ``rebalance-lab`` command line. Each subcommand lives in the module that owns its idea."""

from __future__ import annotations

import logging

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.version_option(package_name="rebalance-lab")
def main(verbose: int) -> None:
    """Measure who should elect a consumer group's leader: a group coordinator or ZooKeeper."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kazoo logs every reconnect attempt at WARNING; keep it quieter unless asked.
    if verbose < 2:
        logging.getLogger("kazoo").setLevel(max(level, logging.ERROR))


def _register() -> None:
    from bench.cluster import cluster
    from bench.demo import demo
    from bench.joincost import join_cost
    from bench.membercli import member
    from bench.metrics import analyze_command
    from bench.report import report
    from bench.runner import run
    from bench.scenario import scenarios, validate
    from coordinator_mode.cli import broker

    for command in (
        analyze_command,
        broker,
        cluster,
        demo,
        join_cost,
        member,
        report,
        run,
        scenarios,
        validate,
    ):
        main.add_command(command)


_register()
