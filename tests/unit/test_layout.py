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


# -- the whole graph: no cycles, and the edges the design allows ---------------------------------

PACKAGES = ("group_api", "bench", "coordinator_mode", "zk_mode")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from a import b`` counts ``a.b`` when that
    is a module, else ``a``), read from every file of ``packages`` under ``root``."""
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(p, root) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        edges: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                candidates = [[alias.name] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = next(iter(imported_modules_of(node, path, root)), "")
                candidates = [[f"{base}.{alias.name}", base] for alias in node.names]
            else:
                continue
            for options in candidates:
                found = next((name for name in options if name in modules), None)
                if found is None:  # ``import a.b.c`` of a module or package: its longest known prefix
                    parts = options[-1].split(".")
                    found = next(
                        (
                            ".".join(parts[:i])
                            for i in range(len(parts), 0, -1)
                            if ".".join(parts[:i]) in modules
                        ),
                        None,
                    )
                if found is not None:
                    edges.add(found)
        me = module_name(path, root)
        graph[me] = edges - {me}
    return graph


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``: an import there names a type for the
    checker and never runs, so it ties no module to another at run time."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def imported_modules_of(node: ast.ImportFrom, path: Path, root: Path) -> set[str]:
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    if not node.level:
        return {node.module or ""}
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return {".".join([*base, node.module]) if node.module else ".".join(base)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert not cycles(module_graph()), cycles(module_graph())


def test_a_cycle_is_seen(tmp_path: Path) -> None:
    """The check can fail: two modules that import each other, one of them lazily."""
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from bench import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    (pkg / "c.py").write_text("import bench.a\n")
    assert cycles(module_graph(tmp_path, ("bench",))) == [["bench.a", "bench.b"]]


#: What the harness may import of each mode: the server side it launches (brokers, their config and
#: metadata), the hash that places groups, and the catalogs it provisions. A mode's members it
#: reaches only through ``group_api.registry``'s import strings.
HARNESS_MAY_IMPORT = (
    "coordinator_mode.broker",
    "coordinator_mode.hashing",
    "coordinator_mode.group.config",
    "zk_mode.catalog",
)


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    """Edges the design rules out, over the whole graph."""
    bad = []
    for module, edges in graph.items():
        for edge in edges:
            top, target_top = module.split(".")[0], edge.split(".")[0]
            if top == "bench" and target_top in MODES and not allowed(edge, HARNESS_MAY_IMPORT):
                bad.append(f"{module} -> {edge}: the harness reaches members through the registry")
            elif top in MODES and target_top not in (top, "group_api"):
                bad.append(f"{module} -> {edge}: a mode uses only group_api and itself")
            elif top == "group_api" and target_top != "group_api":
                bad.append(f"{module} -> {edge}: group_api stands alone")
            elif module.startswith("coordinator_mode.client") and allowed(
                edge, ("coordinator_mode.group", "coordinator_mode.broker")
            ):
                bad.append(f"{module} -> {edge}: our consumer and the coordinator share no code")
    return sorted(bad)


def test_no_forbidden_edges() -> None:
    assert not forbidden_edges(module_graph())


def test_a_forbidden_edge_is_seen(tmp_path: Path) -> None:
    """The harness importing a mode's member module directly, and a mode importing the harness."""
    for pkg in ("bench", "zk_mode", "coordinator_mode", "coordinator_mode/client", "group_api"):
        (tmp_path / pkg).mkdir(parents=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "zk_mode" / "member.py").write_text("from bench import runner\n")
    (tmp_path / "zk_mode" / "catalog.py").write_text("")
    (tmp_path / "bench" / "runner.py").write_text("from zk_mode.catalog import x\nimport zk_mode.member\n")
    (tmp_path / "coordinator_mode" / "client" / "member.py").write_text("from group_api import x\n")
    assert forbidden_edges(module_graph(tmp_path)) == [
        "bench.runner -> zk_mode.member: the harness reaches members through the registry",
        "zk_mode.member -> bench.runner: a mode uses only group_api and itself",
    ]
