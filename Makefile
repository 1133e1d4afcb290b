# rebalance-lab: `make demo` runs the main job, `make test` runs the tests. Both run `setup` first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ZK_JAR := /usr/share/java/zookeeper.jar
# The compose images' choice (compose.env), dockerd's pid file and log.
STATE_DIR := $(CURDIR)/.state

.PHONY: setup system-deps java test test-fast demo lint clean compose-setup compose-demo compose-down

setup: system-deps $(STAMP) java

# Debian's ZooKeeper (jars only, no service), a headless JDK and Maven (the Java members, java/),
# installed only when missing.
system-deps:
	@if [ ! -f "$(ZK_JAR)" ] || ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then \
	  echo "installing Debian's zookeeper package, a headless JDK and Maven"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    zookeeper default-jdk-headless maven >/dev/null; \
	fi

# The real-Kafka targets' jars and the Java members (Maven), when Java 17 and Maven are present;
# java/setup.sh says plainly when they are not, and those targets are then skipped.
java:
	@bash java/setup.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

# Two workers, each taking whole test files (--dist loadfile keeps a file's module-scoped clusters
# in one process): most tests wait on sessions and heartbeats, not on the CPU.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

# The unit tests only (tests/unit: no servers, sockets or clusters), with fewer Hypothesis examples
# (the "fast" profile, tests/conftest.py): under 30 s.
test-fast: setup
	$(BIN)/python -m pytest -q -m unit tests/unit --hypothesis-profile=fast $(PYTEST_ARGS)

demo: setup
	$(BIN)/rebalance-lab demo

# Docker experiments (README, "Experiments in docker compose"): the engine, Compose and the images,
# each only when missing; dockerd is started when none answers. `compose-down` brings the demo's
# project down (with its volumes) and stops dockerd only if compose-setup started it.
compose-setup: setup
	STATE_DIR=$(STATE_DIR) compose/setup.sh

compose-demo: compose-setup
	STATE_DIR=$(STATE_DIR) compose/demo.sh

compose-down:
	STATE_DIR=$(STATE_DIR) compose/demo.sh down
	STATE_DIR=$(STATE_DIR) compose/engine.sh stop

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) results .state
