#!/usr/bin/env bash
# Installs the benchmark's peers: nginx (WebDAV PUT) from Debian and the
# original Python dlrepo 0.44 from PyPI into a virtualenv. Idempotent.
# Usage: benches/setup-peers.sh VENV_DIR
set -euo pipefail
venv=${1:?usage: setup-peers.sh VENV_DIR}
export DEBIAN_FRONTEND=noninteractive
need=()
for p in nginx-full libldap2-dev libsasl2-dev sassc; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The package starts a system nginx on port 80; the benchmark runs its own.
systemctl disable --now nginx >/dev/null 2>&1 || true
if ! "$venv/bin/python" -c 'import dlrepo' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q dlrepo==0.44
fi
