# The project image: brokers, members and the bench runner of docker-compose.yml run the same code
# as the local harness. No JRE: ZooKeeper runs from its own image (docker-compose.yml's ZK_IMAGE).
#
# BASE_IMAGE is the official Python image where it can be pulled; compose/setup.sh falls back to a
# Debian base built here (compose/base-image/build.sh), whose python3 is the same 3.11.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Only for installing: the build reaches the package indexes the host is configured for, through
# the CA bundle the host uses (compose/setup.sh passes them when set).
ARG PIP_INDEX_URL
ARG PIP_CERT

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# iptables and iproute2: link faults redirect a member container's connections to the runner's
# proxies (bench/backends/compose.py). The Debian base has them; the Python image gets them here.
RUN if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then \
      apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables iproute2 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv

# The dependencies first, from pyproject.toml alone, so that a change to the sources rebuilds only
# the layer below.
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["compose"]))' >/tmp/requirements.txt \
    && pip install -q -r /tmp/requirements.txt
COPY README.md ./
COPY group_api ./group_api
COPY bench ./bench
COPY coordinator_mode ./coordinator_mode
COPY zk_mode ./zk_mode
RUN pip install -q --no-deps '.[compose]'

# The brokers' volumes (docker-compose.yml mounts broker N's at broker-N, the offsets logs' at
# offsets; a new volume takes the owner of the directory it is mounted on) and the results mount
# start out owned by the unprivileged user.
RUN useradd --create-home --uid 1000 lab \
    && mkdir -p /var/lib/rebalance-lab/broker-1 /var/lib/rebalance-lab/broker-2 /var/lib/rebalance-lab/broker-3 \
       /var/lib/rebalance-lab/offsets /results \
    && chown -R lab:lab /var/lib/rebalance-lab /results
USER lab
WORKDIR /home/lab
CMD ["rebalance-lab", "--help"]
