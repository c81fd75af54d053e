#!/bin/bash
# skipped.sh N BIN...: the commands on a home whose authorized_keys.d holds
# N files that do not parse, each BIN in turn on a fresh copy of it (wall
# and user CPU seconds, peak RSS). docs/benchmarks.md, "Thousands of
# skipped files". Each BIN is a keytool binary; the first one builds the
# home and the keys.
set -u
N=$1; shift
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
"$1" -H "$w/h0" gen >/dev/null
for k in a b; do "$1" -H "$w/$k" gen >/dev/null; "$1" -H "$w/$k" pub >"$w/$k.json"; done
mkdir -p "$w/h0/authorized_keys.d"
(cd "$w/h0/authorized_keys.d" && for i in $(seq 1 "$N"); do echo '{bad' >"b$i.json"; done)
for bin in "$@"; do
  rm -rf "$w/h" && cp -a "$w/h0" "$w/h"
  for cmd in "authorize --name a $w/a.json" "authorize --name b $w/b.json" "authorize --remove a" "list" "list --json"; do
    /usr/bin/time -f "$(basename "$bin") $cmd: %e s wall, %U s user, %M KB" "$bin" -H "$w/h" $cmd >/dev/null 2>"$w/err" || true
    tail -1 "$w/err" | sed "s|$w/||g"
  done
done
