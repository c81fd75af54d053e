#!/bin/bash
# manyofone.sh N BIN...: homes holding N of one thing — N files of one key,
# one pin of N addresses, N invitations, a file of N keys to revoke, N
# files of a key each and a JWK Set of N named members (N/4 and N/10 of
# them removed by one command), N pins of an address each (N/4 of them
# unpinned by one command, and N/10 of the one pin's addresses), a list
# of N revoked keys (N/100 of them lifted by one command), N/4 keys
# removed by fingerprint from N files of a key each and from N pins, with
# the admin index current and without one (every file read) — and
# the command on each that was quadratic in N, for each BIN in turn on a
# fresh copy (wall and user CPU seconds, peak RSS; 300 s at most each),
# saying where a binary's output or the files it leaves differ from the
# first one's.
# docs/benchmarks.md, "Many of one thing". Each BIN is a keytool binary;
# the first one makes the homes. Needs python3.
set -u
N=$1; shift
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
K=$1
python3 - "$w" "$N" <<'EOF'
import base64, hashlib, json, os, sys
w, n = sys.argv[1], int(sys.argv[2])
def key(i, salt):
    x = hashlib.sha256(salt + i.to_bytes(8, 'big')).digest()
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(x).rstrip(b'=').decode()}
def write(path, obj, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)
    os.chmod(path, mode)
for i in range(n):  # one key copied into n files
    write(f"{w}/same/authorized_keys.d/c{i:07d}.json", key(1, b'same'))
pin = key(0, b'pin')  # one pin of n addresses
pin["address"] = [f"a{i}.example.org:443" for i in range(n)]
write(f"{w}/pin/trusted_hosts.d/many.json", pin)
write(f"{w}/batch.json", {"keys": [key(i, b'batch') for i in range(n)]})  # n keys to revoke
for i in range(n):  # n files of a key each, named n{i}
    write(f"{w}/names/authorized_keys.d/n{i:07d}.json", key(i, b'names'))
write(f"{w}/set/authorized_keys.d/fleet.json", {"keys": [dict(key(i, b'set'), name=f"m{i:07d}") for i in range(n)]})
for i in range(n):  # n pins of an address each
    write(f"{w}/hosts/trusted_hosts.d/h{i:07d}.json", dict(key(i, b'hosts'), address=[f"h{i}.example.org:443"]))
write(f"{w}/revset/revoked_keys.json", {"keys": [key(i, b'revset') for i in range(n)]})  # a list of n revoked keys
EOF
for h in same pin inv rev names set hosts revset; do "$K" -H "$w/$h" gen >/dev/null; done
"$K" -H "$w/inv" invite --name template --address 127.0.0.1:1 >/dev/null 2>&1
python3 - "$w/inv/invites.d" "$N" <<'EOF'
import base64, hashlib, json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
t = json.load(open(f"{d}/template.json"))
os.remove(f"{d}/template.json")
for i in range(n):  # n invitations: half pending, half expired, a fifth used
    v = dict(t, name=f"c{i:07d}", secret_sha256=base64.urlsafe_b64encode(hashlib.sha256(b'%d' % i).digest()).rstrip(b'=').decode())
    if i % 2:
        v["expires"], v["created"] = "2020-01-01T00:00:00Z", "2019-12-31T00:00:00Z"
    p = os.path.join(d, "used" if i % 5 == 0 else "", v["name"] + ".json")
    with open(p, "w") as f:
        json.dump(v, f)
    os.chmod(p, 0o600)
EOF
fp=$("$K" -H "$w/same" authorize --list --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["fingerprint"])')
names=$(for i in $(seq $((N / 4))); do printf -- '--remove n%07d ' "$i"; done)
members=$(for i in $(seq $((N / 10))); do printf -- '--remove m%07d ' "$i"; done)
hosts=$(for i in $(seq $((N / 4))); do printf -- '--remove h%d.example.org:443 ' "$i"; done)
addrs=$(for i in $(seq $((N / 10))); do printf -- '--remove a%d.example.org:443 ' "$i"; done)
# The last N/4 keys of each, by fingerprint (the first N/4 go by name or address).
afps=$("$K" -H "$w/names" authorize --list --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join("--remove " + e["fingerprint"] for e in json.load(sys.stdin)[-int(sys.argv[1]):]))' $((N / 4)))
hfps=$("$K" -H "$w/hosts" trust-host --list --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join("--remove " + e["fingerprint"] for e in json.load(sys.stdin)[-int(sys.argv[1]):]))' $((N / 4)))
lifts=$("$K" -H "$w/revset" revoke --list --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join("--remove " + e["fingerprint"] for e in json.load(sys.stdin)[:int(sys.argv[1])]))' $((N / 100)))
for bin in "$@"; do
  rm -rf "$w/run" && mkdir "$w/run" && cp -a "$w/same" "$w/pin" "$w/inv" "$w/rev" "$w/names" "$w/set" "$w/hosts" "$w/revset" "$w/run/"
  # Without an admin index, as a home restored from a copy: every file read.
  cp -a "$w/names" "$w/run/fullnames" && cp -a "$w/hosts" "$w/run/fullhosts"
  # An edit: the index then has stamps.
  "$bin" -H "$w/run/same" authorize --remove c0000005 >/dev/null 2>&1
  "$bin" -H "$w/run/names" authorize --remove n0000000 >/dev/null 2>&1
  "$bin" -H "$w/run/set" authorize --remove m0000000 >/dev/null 2>&1
  "$bin" -H "$w/run/hosts" trust-host --remove h0.example.org:443 >/dev/null 2>&1
  c=0
  for cmd in "same authorize --remove $fp" "pin trust-host --list" "inv invite --list" "rev revoke $w/batch.json" \
    "names authorize $names" "set authorize $members" "hosts trust-host $hosts" "pin trust-host $addrs" "revset revoke $lifts" \
    "names authorize $afps" "hosts trust-host $hfps" "fullnames authorize $afps" "fullhosts trust-host $hfps"; do
    set -- $cmd; h=$1; shift
    c=$((c + 1)); out="$w/out-$c"
    timeout 300 /usr/bin/time -f "$(basename "$bin") N=$N $h $1 $2: %e s wall, %U s user, %M KB" "$bin" -H "$w/run/$h" "$@" >"$out.new" 2>"$w/err"
    [ $? = 124 ] && echo "$(basename "$bin") N=$N $h $1 $2: more than 300 s" || tail -1 "$w/err"
    # The first binary's output is the reference: each other's is compared
    # with it (the homes are copies at the same path).
    if [ ! -e "$out" ]; then mv "$out.new" "$out"; elif ! cmp -s "$out" "$out.new"; then echo "  output differs from $(basename "$K")'s"; fi
  done
  # The files left, but the admin index (stamps and times of its own).
  sums=$(cd "$w/run" && find . -path '*/.index' -prune -o -type f -print | sort | xargs md5sum | md5sum)
  [ -z "${first_sums-}" ] && first_sums=$sums || { [ "$sums" = "$first_sums" ] || echo "  files left differ from $(basename "$K")'s"; }
done
