#!/usr/bin/env bash
# Floods the kernel's log with seccomp kill records, for running the suite beside it (TESTING.md,
# "Kernel records under load"): each of JOBS loops (default 2) runs `uname` under a filter that
# kills it (SIGSYS), so the kernel writes one SECCOMP audit record per child, as fast as the
# machine forks. The tests that read records must still find exactly their own.
#   usage: seccomp-flood.sh SCPC [JOBS]     (stop it with Ctrl-C or by killing its group)
set -euo pipefail
scpc=${1:?usage: seccomp-flood.sh PATH-TO-scpc [JOBS]}
jobs=${2:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"; kill 0' EXIT
printf 'policy flood {\n    target x86_64\n    default allow\n    kill_process uname\n}\n' > "$dir/flood.scp"
"$scpc" build "$dir/flood.scp" --policy flood -o "$dir" >/dev/null
filter=$(ls "$dir"/*x86_64*.bpf | head -n1)
for _ in $(seq "$jobs"); do
    # the loop's stderr is bash's "Bad system call" report of each killed child
    ( while :; do "$scpc" exec "$filter" -- /usr/bin/uname >/dev/null 2>&1 || true; done ) 2>/dev/null &
done
wait
