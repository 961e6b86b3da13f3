#!/usr/bin/env bash
# PostgreSQL server binaries for agentbus-store's tests, which start their own
# throwaway clusters (initdb in a temp dir, loopback port, run as `postgres`).
# A quick no-op when the binaries are already there.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin/initdb | head -n1) present"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends postgresql
# The package starts a system cluster; the tests never use it.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header | while read -r version name _; do
        pg_ctlcluster "$version" "$name" stop || true
    done
fi
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
