# The project image: brokers, members and the bench runner of docker-compose.yml run the same code
# as the local harness. No JRE: ZooKeeper runs from the official zookeeper image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY group_api ./group_api
COPY bench ./bench
COPY coordinator_mode ./coordinator_mode
COPY zk_mode ./zk_mode
# [compose]: the Docker SDK, for the bench service's faults.
RUN pip install '.[compose]'

# The brokers' shared volume and the results mount start out owned by the unprivileged user.
RUN useradd --create-home --uid 1000 lab \
    && mkdir -p /var/lib/rebalance-lab /results \
    && chown lab:lab /var/lib/rebalance-lab /results
USER lab
WORKDIR /home/lab
CMD ["rebalance-lab", "--help"]
