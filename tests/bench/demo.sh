#!/usr/bin/env bash
# tests/bench/demo.sh: the phases of the PyAirtable example's deploy, and
# how much of it is cairn itself.
#
# Deploys examples/pyairtable-local to dev (a fresh stack each time, in one
# journal in a temporary folder), then prints, from the journal, the wall
# time of each top-level phase (stack, env, postgres, redis, migrate,
# nginx, the four rollout layers, validate, bluegreen), and cairn's own
# share of the run, two ways, both read by the LD_PRELOADed meter
# cpu_at_exit.c as cairn exits:
# - the time cairn does not wait (the issue's measure): the wall time less
#   the event loop's sleeps in epoll_wait (on children, PostgreSQL starting,
#   health polls), plus every thread-pool job's wall time in full;
# - the CPU time of the cairn process alone (user + system, all its
#   threads; its children's CPU is not in it) over the wall time.
# Target: under 2%. Tears the stack down after. A benchmark, never a test:
# it asserts no timing.
#
# Then what that CPU time is made of on this host: what host_costs.c
# measures a page fault, a system call, a spawn and a context switch to
# cost here, the CPU time of starting the process (`cairn --version`, which
# loads the same libraries) and its page faults, and the median deploy's
# context switches (counted by the meter) times their cost.
#
# Environment: CAIRN_BIN (default build-bench/cli/cairn), PYAIRTABLE_SERVICE_BIN
# (default build-bench/examples/pyairtable-local/service/pyairtable-service),
# CAIRN_BENCH_METER (default build-bench/tests/bench/libcpu_at_exit.so),
# CAIRN_BENCH_HOST_COSTS (default build-bench/tests/bench/host_costs),
# CAIRN_BENCH_RUNS (deploys measured, default 3).
set -euo pipefail
shopt -s inherit_errexit

runs=${CAIRN_BENCH_RUNS:-3}
bench=demo.sh
# shellcheck source=tests/bench/lib.sh disable=SC2034 # bench, runs: read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

svc=${PYAIRTABLE_SERVICE_BIN:-$root/build-bench/examples/pyairtable-local/service/pyairtable-service}
[ -x "$svc" ] || die "no example service at $svc (./dev bench builds it)"
command -v jq >/dev/null 2>&1 || die "jq is not installed"
ex=$root/examples/pyairtable-local
meter=${CAIRN_BENCH_METER:-$root/build-bench/tests/bench/libcpu_at_exit.so}
[ -f "$meter" ] || die "no CPU meter at $meter (./dev bench builds it)"
costs_bin=${CAIRN_BENCH_HOST_COSTS:-$root/build-bench/tests/bench/host_costs}
[ -x "$costs_bin" ] || die "no host_costs at $costs_bin (./dev bench builds it)"

# "FAULT_US SYSCALL_US SPAWN_US SWITCH_US" on this host, before the deploys
costs=$("$costs_bin") || die "host_costs failed ($costs_bin)"
read -r fault_us syscall_us spawn_us switch_us <<<"$costs"
[ -n "$switch_us" ] || die "host_costs printed '$costs', not four numbers"
# starting the process: the median CPU time and faults of `cairn --version`
starts=()
for _ in 1 2 3 4 5; do
  rm -f "$tmp/cpu"
  CAIRN_BENCH_CPU_OUT="$tmp/cpu" LD_PRELOAD="$meter" "$bin" --version >/dev/null
  starts+=("$(awk '{ printf "%.1f %d\n", ($2 + $3) / 1000, $4 }' "$tmp/cpu")")
done
read -r start_ms start_faults <<<"$(printf '%s\n' "${starts[@]}" | sort -g | sed -n 3p)"

teardown() {
  (cd "$tmp" && "$bin" run "$ex/teardown.yaml" --env dev >/dev/null 2>&1) || true
}
# the script's status, not teardown's: the files stay when a deploy failed
on_exit() {
  local rc=$?
  teardown
  bench_cleanup "$rc"
}
trap on_exit EXIT

rows=()
shares=()
own_shares=()
for r in $(seq 1 "$runs"); do
  # A fresh stack each time (PostgreSQL's initdb is part of the deploy),
  # in the same journal, as deploys go: the first run also makes the
  # journal. The last stack's files are moved aside, not deleted, until
  # the end: ext4 skips inodes deleted in the last seconds when it makes a
  # file, and a deploy right after deleting a stack's thousand files paid
  # for that scan in the kernel (6-7 % of cairn's CPU, in ext4's
  # find_inode_bit), a cost of this loop, not of a deploy.
  teardown
  if [ -e "$tmp/.cairn/pyairtable-dev" ]; then
    mv "$tmp/.cairn/pyairtable-dev" "$tmp/previous-stack.$r"
  fi
  rm -f "$tmp/cpu"
  start=$(date +%s%N)
  (cd "$tmp" && CAIRN_BENCH_CPU_OUT="$tmp/cpu" LD_PRELOAD="$meter" \
     exec "$bin" run "$ex/deploy.yaml" --env dev \
     --set "example_dir=$ex" --set "service_bin=$svc" >"$tmp/deploy.out" 2>&1) &
  pid=$!
  wait "$pid" || { cat "$tmp/deploy.out" >&2; die "deploy $r failed"; }
  wall_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  # "PID USER_US SYSTEM_US MINOR_FAULTS SWITCHES IDLE_US POOL_US UNTIMED
  # SYNC_US", written by the meter at exit
  read -r cpu_ms faults switches idle_ms pool_ms untimed sync_ms <<<"$(awk -v pid="$pid" '$1 == pid {
    printf "%.1f %d %d %.1f %.1f %d %.1f", ($2 + $3) / 1000, $4, $5, $6 / 1000, $7 / 1000, $8, $9 / 1000 }' \
    "$tmp/cpu" 2>/dev/null || true)"
  [ -n "${untimed:-}" ] || die "the CPU meter wrote nothing for deploy $r ($meter)"
  [ "$untimed" -eq 0 ] || die "the meter could not time $untimed thread-pool jobs of deploy $r"
  shares+=("$(awk -v c="$cpu_ms" -v w="$wall_ms" 'BEGIN { printf "%.2f", 100 * c / w }')")
  # the issue's own measure: the time cairn does not wait (on children,
  # sockets, timers), its thread pool's jobs counted in full
  own_ms=$(awk -v w="$wall_ms" -v i="$idle_ms" -v p="$pool_ms" 'BEGIN { printf "%.1f", w - i + p }')
  own_shares+=("$(awk -v o="$own_ms" -v w="$wall_ms" 'BEGIN { printf "%.2f", 100 * o / w }')")
  run=$(cd "$tmp" && "$bin" history --json --limit 1 | jq -r 'if type == "array" then .[0].id else .id end')
  # phases: each top-level state.entered (a path without '/') to the next,
  # the last to run.finished
  phases=$(cd "$tmp" && "$bin" show "$run" --json | jq -r '
    [.events[] | select((.kind == "state.entered" and (.state | contains("/") | not))
                        or .kind == "run.finished")
     | {s: .state, t: .time_ms, k: .kind}] as $e
    | [range(0; ($e | length) - 1) | select($e[.].k == "state.entered")
       | "\($e[.].s)=\($e[. + 1].t - $e[.].t)"] | join(" ")')
  rows+=("$r $wall_ms $cpu_ms $faults $switches $idle_ms $pool_ms $own_ms $sync_ms $phases")
  note "deploy $r: ${wall_ms} ms wall; cairn not waiting ${own_ms} ms (${own_shares[-1]}%): loop idle ${idle_ms} ms, thread pool ${pool_ms} ms, journal syncs ${sync_ms} ms; cairn's CPU ${cpu_ms} ms (${shares[-1]}%)"
done

# the median run by wall time
median=$(printf '%s\n' "${rows[@]}" | sort -k2,2n | sed -n "$(( (runs + 1) / 2 ))p")
read -r _ wall cpu faults switches idle pool own sync phases <<<"$median"
printf '\n| phase | wall (ms) |\n|---|---|\n'
for p in $phases; do
  printf '| %s | %s |\n' "${p%%=*}" "${p#*=}"
done
printf '| **whole deploy** | %s |\n\n' "$wall"
printf 'cairn itself, the time it does not wait: %s ms of %s ms wall in the median deploy (loop idle %s ms, thread pool %s ms; the loop blocked in the journal'"'"'s syncs %s ms; cairn'"'"'s CPU %s ms, some of it in those syncs; the rest is other blocking calls, most of it vfork waiting for each child to exec); shares over %d deploys: %s%% (target under 2%%)\n' \
  "$own" "$wall" "$idle" "$pool" "$sync" "$cpu" "$runs" "$(IFS=/; echo "${own_shares[*]}")"
printf 'cairn'"'"'s CPU time: %s ms in the median deploy; shares of the wall time over %d deploys: %s%%\n' \
  "$cpu" "$runs" "$(IFS=/; echo "${shares[*]}")"

# What the median deploy's CPU time is made of, at this host's prices.
# (The meter's fault count is not used: it includes the pages the engine
# makes resident in one madvise at start, which take no fault trap.)
awk -v cpu="$cpu" -v f="$fault_us" -v sc="$syscall_us" -v sp="$spawn_us" \
    -v sw="$switch_us" -v st="$start_ms" -v sf="$start_faults" \
    -v ns="$switches" 'BEGIN {
  printf "\nthis host: a page fault costs %.2f us of CPU, a system call %.2f us, a spawn %.0f us, a context switch %.2f us (host_costs)\n", f, sc, sp, sw
  printf "| part of cairn'"'"'s CPU in the median deploy | ms | share |\n|---|---:|---:|\n"
  printf "| starting the process (`cairn --version`), of which %d page faults x %.2f us = %.1f ms | %.1f | %.0f%% |\n", sf, f, sf * f / 1000, st, 100 * st / cpu
  printf "| the rest: loading the workflow, running it, journaling | %.1f | %.0f%% |\n", cpu - st, 100 * (cpu - st) / cpu
  printf "| ... of which %d context switches x %.2f us | %.1f | %.0f%% |\n", ns, sw, ns * sw / 1000, 100 * ns * sw / 1000 / cpu
  printf "| whole deploy | %.1f | 100%% |\n", cpu
}'
