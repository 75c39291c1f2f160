#!/bin/sh
# The fuzzing campaign: targets in turn, SECONDS each, one core per instance; libFuzzer's final
# stats go to campaign/TARGET.N.log. Usage: fuzz/campaign.sh [SECONDS] [TARGET...]
# (two instances with the targets in opposite orders keep two cores busy).
set -eu
cd "$(dirname "$0")"
secs=${1:-540}
[ $# -gt 0 ] && shift
targets=${*:-parse check compile emulator docker auditlog inventory}
mkdir -p campaign
for t in $targets; do
    n=1
    while [ -e "campaign/$t.$n.log" ]; do n=$((n + 1)); done
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        > "campaign/$t.$n.log" 2>&1 || echo "$t: exit $?" >> campaign/crashes.txt
done
