#!/usr/bin/env bash
# Builds every Maven module java/<module>/pom.xml into .cache/java/<module>/: its runtime jars in
# lib/ (mvn dependency:copy-dependencies) and, for a module that builds its own jar (packaging jar
# and a src/ folder), that jar too. Idempotent: a module is rebuilt only when its pom (or src/)
# changed since the stamp of its last build. Without Java 17 and Maven it says so and exits 0: the
# real-Kafka targets and the Java members are then skipped, everything else works as before.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${REBALANCE_LAB_JAVA_CACHE:-.cache/java}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1 \
  || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  echo "Java 17 and Maven not found: the real-Kafka targets and the Java members are skipped"
  exit 0
fi

# What a module's build depends on: its pom, and its sources when it has any.
module_hash() {
  local dir=$1
  {
    cat "$dir/pom.xml"
    if [ -d "$dir/src" ]; then find "$dir/src" -type f -print0 | sort -z | xargs -0 cat; fi
  } | sha256sum | cut -d' ' -f1
}

status=0
for pom in java/*/pom.xml; do
  [ -f "$pom" ] || continue
  dir=$(dirname "$pom")
  module=$(basename "$dir")
  out="$CACHE/$module"
  hash=$(module_hash "$dir")
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$hash" ]; then
    continue
  fi
  echo "building java module $module into $out"
  tmp="$CACHE/.$module.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp/lib"
  packaging=$(sed -n 's:.*<packaging>\(.*\)</packaging>.*:\1:p' "$pom" | head -1)
  goals=(dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$PWD/$tmp/lib")
  builds_jar=false
  if [ "${packaging:-jar}" = jar ] && [ -d "$dir/src" ]; then
    builds_jar=true
    goals=(package -DskipTests "${goals[@]}")
  fi
  if ! mvn -q -B -Dstyle.color=never -f "$pom" "${goals[@]}"; then
    echo "java module $module failed to build (see the Maven output above)" >&2
    rm -rf "$tmp"
    status=1
    continue
  fi
  if $builds_jar; then
    find "$dir/target" -maxdepth 1 -name '*.jar' ! -name '*-sources.jar' ! -name '*-javadoc.jar' \
      -exec cp {} "$tmp/lib/" \;
  fi
  echo "$hash" >"$tmp/.stamp"
  rm -rf "$out" && mv "$tmp" "$out"
done
exit $status
