#!/bin/sh
# User-space instructions per request, counted by callgrind: repeatable
# where rates on a shared VM are not. Starts the server under valgrind on a
# tmpfs root, warms up, then counts N small uploads and N downloads of them
# over one connection, and prints the instructions per request without
# SHA-256 (valgrind hides SHA-NI, so the hash runs in software there).
#
#   benches/instructions.sh [binary] [N]     # default target/release/dlrepo, 2000
#
# Needs valgrind and python3. Timers still run, so counts move by ~1 %.
set -eu
bin=${1:-target/release/dlrepo}
n=${2:-2000}
port=$((20000 + $$ % 10000))
work=$(mktemp -d /dev/shm/dlrepo-instr.XXXXXX)
trap '[ -n "${KEEP:-}" ] && cp "$work"/cg.out.* /tmp/ 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/root"
cat > "$work/client.py" <<'PY'
import hashlib, http.client, sys
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    path = "/branches/b/t/j/f/file%d" % i
    if mode == "put":
        data = (b"%08d" % i) * 512
        c.request("PUT", path, body=data, headers={"Digest": "sha256:" + hashlib.sha256(data).hexdigest()})
    else:
        c.request("GET", path)
    r = c.getresponse()
    r.read()
    assert r.status in (200, 201), r.status
PY
DLREPO_ROOT_DIR="$work/root" DLREPO_LISTEN_PORT=$port DLREPO_FSYNC=0 DLREPO_AUTH_DISABLED=1 \
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" >"$work/log" 2>&1 &
pid=$!
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/log"; exit 1; }; sleep 0.3
done
python3 "$work/client.py" $port 200 put
callgrind_control -z $pid >/dev/null 2>&1
python3 "$work/client.py" $port "$n" put
callgrind_control -d $pid >/dev/null 2>&1
python3 "$work/client.py" $port "$n" get
callgrind_control -d $pid >/dev/null 2>&1
kill -INT $pid
wait $pid || true
for part in 1 2; do
    callgrind_annotate --threshold=100 --auto=no "$work/cg.out.$part" 2>/dev/null | awk -v part=$part -v n="$n" '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /sha2::sha256::soft/ { gsub(",", "", $1); sha += $1 }
        END { printf "%s: %.0f instructions per request (SHA-256 left out)\n", part == 1 ? "small uploads" : "small downloads", (total - sha) / n }'
done
