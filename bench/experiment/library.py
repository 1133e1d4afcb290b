"""The scenario library (``bench/experiment/scenarios/``, one file per situation) and the
``rebalance-lab scenarios`` and ``validate`` commands.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from bench.experiment.loading import expand, load_scenario
from bench.experiment.scenario import ScenarioError

LIBRARY_DIR = Path(__file__).with_name("scenarios")


def library() -> dict[str, Path]:
    """The scenarios shipped in ``bench/experiment/scenarios/``, by name (the file stem)."""
    return {p.stem: p for p in sorted(LIBRARY_DIR.glob("*.yaml"))}


def resolve(name_or_path: str) -> Path:
    """A path as given, or the library file of that name; a ScenarioError listing the library
    (closest names first) when it is neither."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path  # meant as a file: load_scenario says if it cannot be read
    names = library()
    if name_or_path in names:
        return names[name_or_path]
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.5)
    listed = ", ".join([*close, *(n for n in names if n not in close)])
    raise ScenarioError(
        name_or_path,
        "",
        f"neither a file nor a library scenario; library scenarios{', closest first' if close else ''}: {listed}",
    )


# -- commands --------------------------------------------------------------------------------------


@click.command("validate")
@click.argument("scenarios", nargs=-1, required=True)
def validate(scenarios: tuple[str, ...]) -> None:
    """Check scenario files (or library names); prints OK or every error of each file."""
    failed = 0
    for name in scenarios:
        try:
            path = resolve(name)
            scenario = load_scenario(path)
        except ScenarioError as exc:
            failed += 1
            for error in exc.errors:
                click.echo(f"ERROR {error.line}")
            continue
        n = len(expand(scenario))
        runs = n * len(scenario.modes) * scenario.repetitions
        click.echo(
            f"OK    {path}: {scenario.name} ({n} scenario(s) x {len(scenario.modes)} modes x "
            f"{scenario.repetitions} repetitions = {runs} runs)"
        )
    if failed:
        raise SystemExit(1)


@click.command("scenarios")
def scenarios() -> None:
    """List the scenario library: name, description, modes."""
    for name, path in library().items():
        try:
            s = load_scenario(path)
        except ScenarioError as exc:
            click.echo(f"{name}\n    INVALID: {exc}\n")
            continue
        modes = ", ".join(str(m) for m in s.modes)
        sweep = "; sweep " + ", ".join(f"{k} {list(v)}" for k, v in s.sweep) if s.sweep else ""
        click.echo(f"{name}\n    {s.description}\n    modes: {modes}; profile {s.profile.name}{sweep}\n")
