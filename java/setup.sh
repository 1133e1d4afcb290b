#!/usr/bin/env bash
# Builds every Maven module java/<name>/pom.xml into .cache/java/<name>/: its dependency jars in
# lib/ and, for a module with packaging jar and a src/ folder, its own jar there too. `make setup`
# runs it; a module is rebuilt only when its pom or sources are newer than its last build.
# Without Java or Maven it says so and exits 0: the Java members' tests then skip, naming why.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=.cache/java

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "java/setup.sh: Java or Maven not found; the Java members (java/*) are not built"
  exit 0
fi

for pom in java/*/pom.xml; do
  module=$(basename "$(dirname "$pom")")
  out="$CACHE/$module"
  stamp="$out/.built"
  if [ -f "$stamp" ] && [ -z "$(find "$(dirname "$pom")" -newer "$stamp" -not -path '*/target/*' -type f -print -quit)" ]; then
    continue
  fi
  echo "java/setup.sh: building java/$module"
  rm -rf "$out"
  mkdir -p "$out/lib"
  mvn -q -B -Dstyle.color=never -f "$pom" -DskipTests package dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$PWD/$out/lib"
  if grep -q '<packaging>jar</packaging>' "$pom" && [ -d "java/$module/src" ]; then
    cp "java/$module"/target/*.jar "$out/lib/"
  fi
  touch "$stamp"
done
