#!/usr/bin/env bash
# tests/bench/simulate.sh: how fast `cairn simulate` goes, and in how much
# memory, on a large workflow.
#
# Generates a chain of 10,000 exec states running /bin/true, every second
# one with an undo, and times (medians):
#   happy      cairn simulate FILE --json: 10,000 transitions
#   happy-text the same with the human trace
#   rollback   cairn simulate FILE --fail-at s09999 --json: 9,999
#              transitions, then a plan of 4,999 undos, each run
#   load       cairn validate FILE: loading and checking the file alone
# then the peak RSS of each, and the happy path at other sizes (does the
# cost per state grow with the workflow?). Prints a markdown table for
# docs/benchmarks.md. A benchmark, never a test: it asserts no timing.
#
# Environment: CAIRN_BIN (default build-bench/cli/cairn),
# CAIRN_BENCH_STATES (default 10000), CAIRN_BENCH_RUNS (default 5),
# CAIRN_BENCH_SIZES (the other sizes, default "1000 2500 5000 20000"; empty
# for none).
set -euo pipefail
shopt -s inherit_errexit

states=${CAIRN_BENCH_STATES:-10000}
runs=${CAIRN_BENCH_RUNS:-5}
sizes=${CAIRN_BENCH_SIZES-1000 2500 5000 20000}
bench=simulate.sh
# shellcheck source=tests/bench/lib.sh disable=SC2034 # bench, runs: read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$states" -ge 3 ] 2>/dev/null || die "CAIRN_BENCH_STATES must be 3 or more"

# gen N FILE: the chain of N states; the even ones have an undo.
gen() { chain_workflow bench-simulate "$1" 2 >"$2"; }

wf=$tmp/simulate.yaml
gen "$states" "$wf"
fail_at=$(sed -n 's/^  \(s[0-9]*\):$/\1/p' "$wf" | tail -n 2 | head -n 1) # the last but one

happy_cmd=("$bin" simulate "$wf" --json)
text_cmd=("$bin" simulate "$wf")
rollback_cmd=("$bin" simulate "$wf" --fail-at "$fail_at" --json)
load_cmd=("$bin" validate "$wf")

# ---- checked runs: what each simulates --------------------------------------

# count KIND FILE: events of KIND in a --json trace.
count() { grep -c "\"kind\":\"$1\"" "$2" || true; }
# undos FILE: undo steps entered.
undos() { grep '"kind":"state.entered"' "$1" | grep -c '"state":"undo:' || true; }

"${happy_cmd[@]}" >"$tmp/trace-happy.json" || die "cairn simulate failed on $wf"
"${rollback_cmd[@]}" >"$tmp/trace-rollback.json" || die "cairn simulate --fail-at $fail_at failed"
"${load_cmd[@]}" >/dev/null || die "cairn validate failed on $wf"

grep -q '"kind":"result".*"status":"succeeded"' "$tmp/trace-happy.json" ||
  die "the happy path did not succeed: $(tail -n 1 "$tmp/trace-happy.json")"
grep -q '"kind":"result".*"status":"failed"' "$tmp/trace-rollback.json" ||
  die "the failure did not end failed: $(tail -n 1 "$tmp/trace-rollback.json")"

h_trans=$(count transition "$tmp/trace-happy.json")
r_trans=$(count transition "$tmp/trace-rollback.json")
r_undos=$(undos "$tmp/trace-rollback.json")
want_undos=$(((states - 2) / 2)) # the even states before the failing one
[ "$h_trans" -eq "$states" ] || die "happy path: $h_trans transitions, expected $states"
[ "$r_undos" -eq "$want_undos" ] || die "rollback: $r_undos undos, expected $want_undos"

# ---- timing -------------------------------------------------------------------

t_happy=$($time_cmd happy '' "${happy_cmd[@]}")
t_text=$($time_cmd happy-text '' "${text_cmd[@]}")
t_rollback=$($time_cmd rollback '' "${rollback_cmd[@]}")
t_load=$($time_cmd load '' "${load_cmd[@]}")
check_ms "$t_happy" "$t_text" "$t_rollback" "$t_load"

rss_happy=$(peak_rss_kib "${happy_cmd[@]}")
rss_text=$(peak_rss_kib "${text_cmd[@]}")
rss_rollback=$(peak_rss_kib "${rollback_cmd[@]}")
rss_load=$(peak_rss_kib "${load_cmd[@]}")

# The happy path at other sizes.
scaling=()
for n in $sizes; do
  gen "$n" "$tmp/size-$n.yaml"
  t=$($time_cmd "size-$n" '' "$bin" simulate "$tmp/size-$n.yaml" --json)
  check_ms "$t"
  scaling+=("$n $t size-$n $(peak_rss_kib "$bin" simulate "$tmp/size-$n.yaml" --json)")
done
scaling+=("$states $t_happy happy $rss_happy")

# ---- report -------------------------------------------------------------------

# per_s COUNT MS: COUNT per second, rounded to a hundred.
per_s() { awk -v c="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.0f", int(c * 1000 / t / 100 + 0.5) * 100; else print "n/a" }'; }
secs() { case $1 in n/a) echo n/a ;; *) awk -v t="$1" 'BEGIN { printf "%.2f", t / 1000 }' ;; esac; }
rss_col() { if [ -n "$1" ]; then awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; else echo n/a; fi; }

# row WHAT TRANSITIONS UNDOS NAME MS RSS_KIB: a row of the main table
# (TRANSITIONS empty for a row that simulates nothing).
row() {
  local counts=' | ' rate=''
  if [ -n "$2" ]; then
    counts="$(thousands "$2") | $(thousands "$3")"
    rate=$(thousands "$(per_s $(($2 + $3)) "$5")")
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$counts" "$(secs "$5")" \
    "$(secs "$(cpu_ms "$4")")" "$rate" "$(rss_col "$6")"
}

# shellcheck disable=SC2016 # backquotes for markdown
cat <<EOF

happy:      $t_happy ms, $h_trans transitions, $(thousands "$(per_s "$h_trans" "$t_happy")")/s, peak RSS $(mib "$rss_happy")
happy-text: $t_text ms, peak RSS $(mib "$rss_text")
rollback:   $t_rollback ms, $r_trans transitions + $r_undos undos, $(thousands "$(per_s $((r_trans + r_undos)) "$t_rollback")")/s, peak RSS $(mib "$rss_rollback")
load:       $t_load ms, peak RSS $(mib "$rss_load")

### \`cairn simulate\` of $(thousands "$states") states

| workload | transitions | undos | median (s) | CPU (s) | transitions + undos per s | peak RSS |
|---|---:|---:|---:|---:|---:|---:|
$(row 'happy path, `--json`' "$h_trans" 0 happy "$t_happy" "$rss_happy")
$(row 'happy path, human trace' "$h_trans" 0 happy-text "$t_text" "$rss_text")
$(row "\`--fail-at $fail_at --json\`" "$r_trans" "$r_undos" rollback "$t_rollback" "$rss_rollback")
$(row '`cairn validate` (loading alone)' '' '' load "$t_load" "$rss_load")

Happy path (\`--json\`) by size:

| states | median (s) | CPU (s) | µs per state | transitions per s | peak RSS |
|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${scaling[@]}" | sort -n | while read -r s t label k; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(thousands "$s")" "$(secs "$t")" \
    "$(secs "$(cpu_ms "$label")")" \
    "$(awk -v t="$t" -v s="$s" 'BEGIN { printf "%.0f", t * 1000 / s }')" \
    "$(thousands "$(per_s "$s" "$t")")" "$(rss_col "$k")"
done
echo
machine "the workflow"
