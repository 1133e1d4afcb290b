"""The import boundaries the design rests on, read from the source (``ast``), not from conventions.

``group_api`` is the one thing both modes share, so it must stay standard-library only; the modes may
use nothing else of the harness and nothing of each other, or a comparison of the two designs would
quietly share code paths.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODES = ("zk_mode", "coordinator_mode")


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (lazy imports count too)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if node.module:
                    names.add(".".join([*base, node.module]))
                else:  # ``from .. import x``: x is the module
                    names.update(".".join([*base, alias.name]) for alias in node.names)
            else:
                names.add(node.module or "")
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("path", sources("group_api"), ids=lambda p: p.name)
def test_group_api_is_standard_library_only(path: Path) -> None:
    foreign = {
        name
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names and not name.startswith("group_api")
    }
    assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


@pytest.mark.parametrize("mode", MODES)
def test_modes_import_only_group_api_and_not_each_other(mode: str) -> None:
    other = next(m for m in MODES if m != mode)
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources(mode)
        for name in imported_modules(path)
        if (name.split(".")[0] == "bench" and not name.startswith("group_api"))
        or name.split(".")[0] in (other, "tests")
    }
    assert not offending, sorted(offending)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The walk finds lazy and relative imports, so the tests above can fail."""
    probe = tmp_path / "zk_mode" / "election.py"
    probe.parent.mkdir()
    probe.write_text("def f():\n    from bench.process import freeze\n    from .. import bench\n")
    assert imported_modules(probe, tmp_path) == {"bench.process", "bench"}
    probe.write_text("from .paths import ZkPaths\nimport coordinator_mode.group\n")
    assert imported_modules(probe, tmp_path) == {"zk_mode.paths", "coordinator_mode.group"}


@pytest.mark.parametrize("command", ["member", "broker"])
def test_member_and_broker_processes_do_not_load_the_analysis_stack(command: str) -> None:
    """The runner starts many of these at once; pandas and matplotlib would cost each ~1.5 s of CPU."""
    probe = (
        "import sys; from bench.cli import main; import click; "
        f"main.get_command(click.Context(main), {command!r}); "
        "import group_api.registry as r; [r.factory(m) for m in r.MODES]; "
        "print(sorted({'pandas', 'matplotlib', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
