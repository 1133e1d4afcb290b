"""The Java modules that ``java/setup.sh`` builds (``.cache/java/<module>/lib``), and the JVM to run them.

A module is available when Java is installed and its ``lib/`` holds jars; otherwise ``reason`` says
what is missing, for a skip or an error message.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

#: The repository's root: ``java/`` holds the Maven modules, ``.cache/java/`` their builds.
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "java"


@dataclass(frozen=True)
class JavaModule:
    name: str
    classpath: str  # the module's jars, os.pathsep-separated; empty when not built
    available: bool
    reason: str  # why it is not available; empty when it is


def java_binary() -> str | None:
    """The ``java`` launcher on PATH, or None."""
    return shutil.which("java")


def java_module(name: str) -> JavaModule:
    """The built module ``java/<name>``: its classpath, or why it cannot run here."""
    lib = CACHE / name / "lib"
    jars = sorted(lib.glob("*.jar")) if lib.is_dir() else []
    if java_binary() is None:
        return JavaModule(name, "", False, "Java is not installed (java not on PATH)")
    if not jars:
        return JavaModule(name, "", False, f"java/{name} is not built: run make setup (java/setup.sh)")
    return JavaModule(name, ":".join(str(j) for j in jars), True, "")
