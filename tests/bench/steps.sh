#!/usr/bin/env bash
# tests/bench/steps.sh: the per-step cost of the engine.
#
# Runs 1,000 `/bin/true` steps three ways and compares the medians:
#   cairn   a 1,000-state workflow of exec states (journal on, fresh file)
#   bash    a script running /bin/true 1,000 times (separate processes)
#   make    a Makefile of 1,000 chained targets, make -j1
# then measures cairn's peak RSS and prints a markdown table for
# docs/benchmarks.md. A benchmark, never a test: it asserts no timing.
#
# Environment: CAIRN_BIN (default build-bench/cli/cairn), TMPDIR (where the
# workflow and the journals go: its filesystem matters, the journal fsyncs),
# CAIRN_BENCH_STEPS (default 1000), CAIRN_BENCH_RUNS (default 5).
set -euo pipefail
shopt -s inherit_errexit

steps=${CAIRN_BENCH_STEPS:-1000}
runs=${CAIRN_BENCH_RUNS:-5}
bench=steps.sh
# shellcheck source=tests/bench/lib.sh disable=SC2034 # bench, runs: read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x /bin/true ] || die "/bin/true is missing"
command -v make >/dev/null 2>&1 || die "make is not installed"

journal=$tmp/journal.db

# ---- the three workloads ---------------------------------------------------

chain_workflow bench-steps "$steps" 0 >"$tmp/steps.yaml"

cat >"$tmp/steps.sh" <<EOF
# /bin/true by path: a new process each time, never the builtin.
i=0
while [ "\$i" -lt $steps ]; do
  /bin/true
  i=\$((i + 1))
done
EOF

awk -v n="$steps" 'BEGIN {
  printf ".PHONY: all"
  for (i = 1; i <= n; i++) printf " s%04d", i
  printf "\nall: s%04d\n", n
  print "s0001:\n\t/bin/true"
  for (i = 2; i <= n; i++) printf "s%04d: s%04d\n\t/bin/true\n", i, i - 1
}' >"$tmp/Makefile"

fresh_journal() { rm -f "$journal" "$journal-wal" "$journal-shm"; }
export CAIRN_JOURNAL=$journal

cairn_cmd=("$bin" run "$tmp/steps.yaml")
bash_cmd=(bash "$tmp/steps.sh")
make_cmd=(make -s -j1 -f "$tmp/Makefile")

# A checked run first: a failing or empty run would make the numbers lie.
fresh_journal
"${cairn_cmd[@]}" >/dev/null || die "cairn run failed on the generated workflow ($tmp/steps.yaml)"
hist=$("$bin" history --json --limit 1 2>/dev/null || true)
case $hist in
  *'"succeeded"'*) ;;
  *'"status"'*) die "the run did not succeed: $hist" ;;
  *) echo "steps.sh: note: could not confirm the run's status from cairn history" >&2 ;;
esac
"${make_cmd[@]}" >/dev/null || die "make failed on the generated Makefile"

# ---- timing -----------------------------------------------------------------

if [ "$time_cmd" = time_hyperfine ]; then
  t_cairn=$(time_hyperfine cairn "rm -f $(printf '%q ' "$journal" "$journal-wal" "$journal-shm")" "${cairn_cmd[@]}")
else
  t_cairn=$(time_loop cairn fresh_journal "${cairn_cmd[@]}")
fi
t_bash=$($time_cmd bash '' "${bash_cmd[@]}")
t_make=$($time_cmd make '' "${make_cmd[@]}")
check_ms "$t_cairn" "$t_bash" "$t_make"

# ---- peak RSS -----------------------------------------------------------------

fresh_journal
rss_kib=$(peak_rss_kib "${cairn_cmd[@]}")
rss=$(mib "$rss_kib")

# ---- report -------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_step() { awk -v t="$1" -v n="$steps" 'BEGIN { printf "%.0f", t * 1000 / n }'; }
r_bash=$(ratio "$t_cairn" "$t_bash")
r_make=$(ratio "$t_cairn" "$t_make")

nsteps=$(thousands "$steps")

cat <<EOF

cairn:  $t_cairn ms
bash:   $t_bash ms
make:   $t_make ms
cairn/bash: ${r_bash}x   cairn/make: ${r_make}x
cairn peak RSS: $rss

### $nsteps \`/bin/true\` steps

| runner | median (ms) | per step (µs) | cairn / runner |
|---|---:|---:|---:|
| \`cairn run\`, $nsteps exec states, journal on | $t_cairn | $(per_step "$t_cairn") | 1.00 |
| bash, $nsteps × \`/bin/true\` | $t_bash | $(per_step "$t_bash") | $r_bash |
| \`make -j1\`, $nsteps chained targets | $t_make | $(per_step "$t_make") | $r_make |

cairn peak RSS: $rss.
$(machine journal)
EOF
