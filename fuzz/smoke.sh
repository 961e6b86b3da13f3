#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30)
# from its committed seed corpus; exits non-zero if any target finds a crash.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
targets=$(cargo +nightly fuzz list)
status=0
for target in $targets; do
    echo "--- fuzz $target for ${seconds}s"
    # New inputs go to a scratch directory so the committed seeds stay as
    # they are; libFuzzer reads both and writes into the first.
    scratch="$(mktemp -d)"
    if ! cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1; then
        echo "!!! fuzz target $target failed; reproducer under fuzz/artifacts/$target/"
        status=1
    fi
    rm -rf "$scratch"
done
exit "$status"
