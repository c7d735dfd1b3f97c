#!/usr/bin/env bash
# tests/bench/journal.sh: reading a large journal.
#
# Builds a journal of 10,000 runs and 1,000,000 events with
# tests/bench/journal_gen (the real append path, so the chain is valid),
# then times `cairn status`, `cairn history --limit 50`, `cairn show RUN`
# and `cairn verify` (hyperfine when installed, else a date loop) and
# prints a markdown table for docs/benchmarks.md. Targets: the first three
# under 50 ms each, verify at least 200,000 events per second. Also times
# SQLite's integrity check alone, the part of verify that reads the whole
# file once more, as its share of verify. A benchmark,
# never a test: it asserts no timing.
#
# Environment: CAIRN_BIN (default build-bench/cli/cairn), CAIRN_JOURNAL_GEN
# (default beside it: build-bench/tests/bench/journal_gen), TMPDIR (where
# the journal goes), CAIRN_BENCH_RUNS (timed runs, default 5),
# CAIRN_BENCH_JOURNAL_RUNS (runs in the journal, default 10000; each has
# 100 events).
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)

runs=${CAIRN_BENCH_RUNS:-5}
nruns=${CAIRN_BENCH_JOURNAL_RUNS:-10000}
bin=${CAIRN_BIN:-$root/build-bench/cli/cairn}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
gen=${CAIRN_JOURNAL_GEN:-$(dirname "$(dirname "$bin")")/tests/bench/journal_gen}

die() { printf 'journal.sh: %s\n' "$*" >&2; exit 1; }
[ -x "$bin" ] || die "no cairn binary at $bin (./dev bench builds it)"
[ -x "$gen" ] || die "no journal_gen at $gen (./dev bench builds it)"
command -v sqlite3 >/dev/null 2>&1 || die "sqlite3 is not installed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-journal.XXXXXX")
cleanup() {
  if [ "$1" -eq 0 ]; then rm -rf "$tmp"; else echo "journal.sh: files kept in $tmp" >&2; fi
}
trap 'cleanup $?' EXIT
journal=$tmp/journal.db
export CAIRN_JOURNAL=$journal

# ---- the journal ------------------------------------------------------------

t0=$(date +%s%N)
"$gen" "$journal" "$nruns"
t1=$(date +%s%N)
events=$(sqlite3 "$journal" "SELECT count(*) FROM events")
[ "$events" -eq $((nruns * 100)) ] || die "expected $((nruns * 100)) events, found $events"
gen_s=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }')
size=$(du -m "$journal" | cut -f1)
echo "journal.sh: $nruns runs, $events events, ${size} MiB, generated in ${gen_s} s" >&2

# A run from the middle of the journal: neither the newest nor the oldest.
run=$(sqlite3 "$journal" "SELECT id FROM runs ORDER BY created_ms LIMIT 1 OFFSET $((nruns / 2))")

# Each command must work before it is timed.
"$bin" status >/dev/null || die "cairn status failed"
"$bin" history --limit 50 >/dev/null || die "cairn history failed"
"$bin" show "$run" >/dev/null || die "cairn show failed"
"$bin" verify >"$tmp/verify.out" || die "cairn verify failed: $(cat "$tmp/verify.out")"

# ---- timing -----------------------------------------------------------------

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_cmd NAME CMD...: median in ms.
if command -v hyperfine >/dev/null 2>&1; then
  timer="hyperfine $(hyperfine --version | awk '{ print $2 }') (warmup 1, $runs runs, median)"
  time_cmd() {
    local name=$1
    shift
    hyperfine -N --warmup 1 --runs "$runs" --style basic \
      --export-json "$tmp/$name.json" "$(printf '%q ' "$@")" >&2 ||
      die "hyperfine failed timing $name"
    sed -n 's/.*"median":[[:space:]]*\([-0-9.eE+]*\).*/\1/p' "$tmp/$name.json" |
      head -n 1 | awk '{ printf "%.1f\n", $1 * 1000 }'
  }
else
  echo "journal.sh: hyperfine not installed; timing with date" >&2
  timer="date +%s%N loop (warmup 1, $runs runs, median)"
  time_cmd() {
    local i t0 t1
    shift
    for ((i = 0; i <= runs; i++)); do
      t0=$(date +%s%N)
      "$@" >/dev/null
      t1=$(date +%s%N)
      [ "$i" -eq 0 ] || echo $(((t1 - t0) / 1000))
    done | median | awk '{ printf "%.1f\n", $1 / 1000 }'
  }
fi

t_status=$(time_cmd status "$bin" status)
t_history=$(time_cmd history "$bin" history --limit 50)
t_show=$(time_cmd show "$bin" show "$run")
t_verify=$(time_cmd verify "$bin" verify)
rate=$(awk -v e="$events" -v ms="$t_verify" 'BEGIN { printf "%d", e / (ms / 1000) }')
# The part of verify that is SQLite's own check of the file (verify runs
# PRAGMA integrity_check(1) once the chain holds), timed alone with the
# sqlite3 shell: its share of verify, measured in the same run.
t_integrity=$(time_cmd integrity sqlite3 "$journal" "PRAGMA integrity_check(1)")
share=$(awk -v i="$t_integrity" -v v="$t_verify" 'BEGIN { printf "%.0f", 100 * i / v }')

verdict() { awk -v v="$1" -v lim="$2" -v dir="$3" 'BEGIN {
  ok = (dir == "<") ? v < lim : v >= lim; print ok ? "met" : "**missed**" }'; }

fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
version=$("$bin" --version 2>/dev/null | head -n 1 || true)

cat <<EOF

### $nruns runs, $events events ($(date -u +%Y-%m-%d))

Journal: ${size} MiB on ${fs:-?}, generated in ${gen_s} s. Timer: $timer.
Machine: $cpu, $(nproc) CPUs, Linux $(uname -r). $version.

| command | median | target | |
|---|---:|---|---|
| \`cairn status\` | $t_status ms | < 50 ms | $(verdict "$t_status" 50 "<") |
| \`cairn history --limit 50\` | $t_history ms | < 50 ms | $(verdict "$t_history" 50 "<") |
| \`cairn show RUN\` (100 events) | $t_show ms | < 50 ms | $(verdict "$t_show" 50 "<") |
| \`cairn verify\` | $t_verify ms = $rate events/s | ≥ 200,000 events/s | $(verdict "$rate" 200000 ">=") |
| ... of which SQLite's \`PRAGMA integrity_check(1)\` (the sqlite3 shell, alone) | $t_integrity ms = ${share} % of verify | | |
EOF
