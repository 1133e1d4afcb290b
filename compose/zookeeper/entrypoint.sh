#!/usr/bin/env bash
# zoo.cfg from the official zookeeper image's variables, then one QuorumPeerMain in the foreground
# (so SIGTERM from `docker stop` reaches the JVM). Debian's jars as bench/services/zookeeper.py uses
# them; the same JVM options as the local launcher's.
set -euo pipefail
CONF=/conf/zoo.cfg
DATA=${ZOO_DATA_DIR:-/data}
{
  echo "dataDir=$DATA"
  echo "dataLogDir=${ZOO_DATA_LOG_DIR:-/datalog}"
  echo "tickTime=${ZOO_TICK_TIME:-2000}"
  echo "initLimit=${ZOO_INIT_LIMIT:-5}"
  echo "syncLimit=${ZOO_SYNC_LIMIT:-2}"
  echo "autopurge.snapRetainCount=${ZOO_AUTOPURGE_SNAPRETAINCOUNT:-3}"
  echo "autopurge.purgeInterval=${ZOO_AUTOPURGE_PURGEINTERVAL:-0}"
  echo "maxClientCnxns=${ZOO_MAX_CLIENT_CNXNS:-60}"
  echo "standaloneEnabled=${ZOO_STANDALONE_ENABLED:-true}"
  echo "admin.enableServer=${ZOO_ADMINSERVER_ENABLED:-true}"
  echo "4lw.commands.whitelist=${ZOO_4LW_COMMANDS_WHITELIST:-srvr}"
  if [ -z "${ZOO_SERVERS:-}" ]; then
    echo "clientPort=2181"
    echo "server.1=localhost:2888:3888;2181"
  else
    for server in $ZOO_SERVERS; do echo "$server"; done
  fi
  for setting in ${ZOO_CFG_EXTRA:-}; do echo "$setting"; done
} >"$CONF"
echo "${ZOO_MY_ID:-1}" >"$DATA/myid"

share=/usr/share/java
classpath=$share/zookeeper.jar:$share/slf4j-simple.jar
for optional in netty-codec netty-resolver netty-transport-native-unix-common servlet-api; do
  if [ -f "$share/$optional.jar" ]; then classpath=$classpath:$share/$optional.jar; fi
done
exec java -cp "$classpath" -Xmx256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
  -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
  ${JVMFLAGS:-} org.apache.zookeeper.server.quorum.QuorumPeerMain "$CONF"
