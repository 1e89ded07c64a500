#!/usr/bin/env bash
# Times the original dlrepo-cli script and ours uploading the same trees to
# the same fresh server: 2000 files of 2 kB in 20 folders, then 4 files of
# 256 MiB. Server pinned to CPU 0 (tmpfs root, DLREPO_FSYNC=0), client to
# CPU 1; every run gets new contents so nothing is deduplicated.
#
# Needs: cargo build --release --bin dlrepo --bin dlrepo-cli, and the
# original in target/tmp/original-dlrepo-0.44 (cargo test --test cli makes it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=$repo/target/tmp/original-dlrepo-0.44/bin
RS=$repo/target/release/dlrepo-cli
work=$(mktemp -d /dev/shm/dlrepo-cli-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - <<'EOF_PY'
import os
for i in range(2000):
    os.makedirs(f"small/d{i%20}", exist_ok=True)
    with open(f"small/d{i%20}/f{i}.txt", "wb") as f: f.write(os.urandom(2000))
os.makedirs("big")
for i in range(4):
    with open(f"big/part{i}.bin", "wb") as f:
        for _ in range(256): f.write(os.urandom(1 << 20))
EOF_PY
port=18500
export DLREPO_URL=http://127.0.0.1:$port
fresh() {
  python3 -c "
import os
for i in range(2000):
    with open(f'small/d{i%20}/f{i}.txt','r+b') as f: f.write(os.urandom(16))
for i in range(4):
    with open(f'big/part{i}.bin','r+b') as f: f.write(os.urandom(64))"
}
run() { # tree label client...
  local tree=$1 label=$2; shift 2
  rm -rf root; mkdir root; fresh
  DLREPO_AUTH_DISABLED=1 DLREPO_FSYNC=0 DLREPO_ROOT_DIR=$work/root DLREPO_LISTEN_ADDRESS=127.0.0.1 \
    DLREPO_LISTEN_PORT=$port DLREPO_TAG_CLEANUP_PERIOD=0 taskset -c 0 "$repo/target/release/dlrepo" > server.log 2>&1 &
  local sp=$!; sleep 0.5
  local s; s=$(date +%s.%N)
  taskset -c 1 "$@" -p / upload b t j f "$tree" > /dev/null 2>&1 || echo "FAILED: $*"
  local e; e=$(date +%s.%N)
  local cpu; cpu=$(awk '{print ($14+$15)/100}' "/proc/$sp/stat")
  kill "$sp"; wait "$sp" 2>/dev/null || true
  printf "%-6s %-10s %6.2f s wall, server CPU %5.2f s\n" "$tree" "$label" "$(echo "$e - $s" | bc)" "$cpu"
}
for _ in 1 2 3; do
  run small original "$PY/python" "$PY/dlrepo-cli"
  run small ours "$RS"
  run big original "$PY/python" "$PY/dlrepo-cli"
  run big ours "$RS"
done
