#!/usr/bin/env bash
# Headless Chromium and chromedriver for agentbus-web's browser tests
# (crates/agentbus-web/tests/browser.rs). A quick no-op when installed.
set -euo pipefail

if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
    echo "chromium and chromedriver: already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium chromium-driver
/usr/bin/chromedriver --version
