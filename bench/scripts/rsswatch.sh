#!/bin/bash
# rsswatch.sh BIN HOME SECS EVERY: runs keytool proxy on HOME for SECS
# seconds and prints its VmRSS and CPU ticks (user + system, in clock
# ticks: 100 a second) every EVERY seconds — a periodic rescan shows as a
# step in both. docs/benchmarks.md, "The periodic rescan at a million files".
set -u
err=$(mktemp)
trap 'rm -f "$err"' EXIT
BIN=$1; H=$2; SECS=$3; EVERY=$4
"$BIN" -H "$H" proxy --listen 127.0.0.1:0 --target 127.0.0.1:9 2>"$err" &
P=$!
t=0
while [ "$t" -le "$SECS" ]; do
  rss=$(grep VmRSS /proc/"$P"/status | awk '{print $2}')
  cpu=$(awk '{print $14+$15}' /proc/"$P"/stat)
  echo "t=$t rss=${rss}KB cpu_ticks=$cpu"
  sleep "$EVERY"; t=$((t+EVERY))
done
grep VmHWM /proc/"$P"/status
kill "$P"; wait "$P" 2>/dev/null
