#!/usr/bin/env bash
# Copy the Kafka broker's runtime jars from Maven Central (via ~/.m2) into .local/kafka/libs.
# Re-copies only when deploy/kafka/pom.xml changed since the last copy (its hash is kept beside the jars).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

POM="$ROOT/deploy/kafka/pom.xml"
STAMP="$KAFKA_LIBS/.pom.sha256"
want="$(sha256sum "$POM" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    exit 0
fi
command -v java >/dev/null || die "java not found: install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven)"
say "copying Kafka jars into $KAFKA_LIBS (first time: a few tens of MB from Maven Central)"
tmp="$KAFKA_HOME/libs.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
# Swap in one step so a broker never starts from a half-copied folder.
rm -rf "$KAFKA_LIBS"
mv "$tmp" "$KAFKA_LIBS"
echo "$want" >"$STAMP"
say "$(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ready"
