"""Where the Java side of the harness lives: the Maven modules ``java/<module>/`` that ``make setup``
(``java/setup.sh``) builds into ``.cache/java/<module>/lib/``.

The API is small on purpose, shared by every launcher of a Java process (real Kafka brokers, the
Java members)::

    module = java_module("kafka-3.9")
    if not module.available:
        pytest.skip(module.reason)
    command = [java_binary(), "-cp", module.classpath, "kafka.Kafka", "server.properties"]

``REBALANCE_LAB_JAVA_CACHE`` moves the cache (the same variable ``java/setup.sh`` reads).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Java 17 is what the pinned Kafka releases and the Java members are built and run with.
MIN_JAVA = 17


class JavaUnavailable(RuntimeError):
    """A Java module cannot run here; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("REBALANCE_LAB_JAVA_CACHE") or ROOT / ".cache" / "java")


@cache
def _java_problem() -> str | None:
    """Why no usable ``java`` is on PATH (None: there is one)."""
    java = shutil.which("java")
    if java is None:
        return "no java on PATH"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < MIN_JAVA:
        return f"java on PATH is not Java {MIN_JAVA}+ ({(out.stderr or out.stdout).splitlines()[:1]})"
    return None


def java_binary() -> str:
    """The ``java`` to run (Java 17+); :class:`JavaUnavailable` when there is none."""
    problem = _java_problem()
    if problem is not None:
        raise JavaUnavailable(f"{problem}: install Java {MIN_JAVA} and Maven, then `make setup`")
    return str(shutil.which("java"))


@dataclass(frozen=True)
class JavaModule:
    """One built Maven module: its jars, and whether it can run here (``reason`` when not)."""

    name: str
    lib: Path
    jars: tuple[Path, ...]
    reason: str | None  # None: available

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def classpath(self) -> str:
        """Every jar of the module, for ``java -cp``; :class:`JavaUnavailable` when not available."""
        if self.reason is not None:
            raise JavaUnavailable(self.reason)
        return os.pathsep.join(str(j) for j in self.jars)

    def jar(self, prefix: str) -> Path:
        """The module's one jar whose name starts with ``prefix`` (e.g. the Jolokia agent)."""
        hits = [j for j in self.jars if j.name.startswith(prefix)]
        if len(hits) != 1:
            raise JavaUnavailable(f"{self.lib}: expected one {prefix}*.jar, found {[j.name for j in hits]}")
        return hits[0]


def java_module(name: str) -> JavaModule:
    """The module ``java/<name>/`` as ``java/setup.sh`` built it into ``.cache/java/<name>/lib``."""
    lib = cache_dir() / name / "lib"
    jars = tuple(sorted(lib.glob("*.jar"))) if lib.is_dir() else ()
    reason = _java_problem()
    if reason is not None:
        reason = f"Java {MIN_JAVA} and Maven not found ({reason}): the real-Kafka targets and the Java members are skipped"
    elif not (ROOT / "java" / name / "pom.xml").is_file():
        reason = f"no Maven module java/{name}/pom.xml"
    elif not jars:
        reason = f"java module {name} is not built ({lib} has no jars): run `make setup` (Java 17 and Maven)"
    return JavaModule(name, lib, jars, reason)
