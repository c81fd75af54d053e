#!/bin/bash
# firstrss.sh BIN HOME: keytool proxy's first start on HOME (its .index
# removed first, so the full load writes it): the time to the identity
# line and to the index's head, then VmHWM and VmRSS 3 s later.
# docs/benchmarks.md, "keytool proxy's own resident set". HOME is changed
# (its index is removed and written again); it must hold 1,000 files or
# more (keydir.IndexMinFiles), else no index is written and this waits.
set -u
err=$(mktemp)
trap 'rm -f "$err"' EXIT
BIN=$1; H=$2
rm -rf "$H/.index"
"$BIN" -H "$H" proxy --listen 127.0.0.1:0 --target 127.0.0.1:9 2>"$err" &
P=$!
t0=$(date +%s.%N)
until grep -q "msg=identity" "$err" 2>/dev/null; do sleep 0.2; done
t1=$(date +%s.%N)
until ls "$H"/.index/*/head >/dev/null 2>&1; do sleep 0.2; done
t2=$(date +%s.%N)
sleep 3
echo "$(basename "$BIN") identity $(echo "$t1-$t0"|bc)s index $(echo "$t2-$t0"|bc)s $(grep -E 'VmRSS|VmHWM' /proc/"$P"/status | tr -s ' \n' ' ')"
kill "$P"; wait "$P" 2>/dev/null
