#!/usr/bin/env bash
# Installs nats-server (the Debian package) when it is not on PATH; the NATS
# bridge's tests start it themselves on loopback (crates/agentbus-nats/tests).
set -euo pipefail

if command -v nats-server >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq nats-server >/dev/null
command -v nats-server >/dev/null
