#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's `prometheus` package) when
# promtool is not on PATH; the web API's metrics tests check a real scrape
# with `promtool check metrics` and start a Prometheus server themselves on
# loopback (crates/agentbus-testkit/src/prometheus.rs). The package's own
# service is not needed: it is stopped and disabled if the install started it.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
command -v prometheus >/dev/null
