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

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)

steps=${CAIRN_BENCH_STEPS:-1000}
runs=${CAIRN_BENCH_RUNS:-5}
bin=${CAIRN_BIN:-$root/build-bench/cli/cairn}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac

die() { printf 'steps.sh: %s\n' "$*" >&2; exit 1; }
[ -x "$bin" ] || die "no cairn binary at $bin (./dev bench builds it)"
[ -x /bin/true ] || die "/bin/true is missing"
command -v make >/dev/null 2>&1 || die "make is not installed"

apt_install() {
  local sudo=()
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=(sudo)
  fi
  echo "steps.sh: installing $1 (apt-get)" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$1" \
    </dev/null >/dev/null 2>&1 ||
  { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq update &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$1"; } \
    </dev/null >/dev/null 2>&1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
# Kept when something fails, to look at what was generated.
cleanup() {
  if [ "$1" -eq 0 ]; then
    rm -rf "$tmp"
  else
    echo "steps.sh: files kept in $tmp" >&2
  fi
}
trap 'cleanup $?' EXIT
journal=$tmp/journal.db

# ---- the three workloads ---------------------------------------------------

awk -v n="$steps" 'BEGIN {
  print "cairn: 1"
  print "name: bench-steps"
  print "start: s0001"
  print "states:"
  for (i = 1; i <= n; i++) {
    printf "  s%04d:\n", i
    print "    do: exec"
    print "    with: { argv: [/bin/true] }"
    if (i < n) printf "    next: s%04d\n", i + 1
    else print "    next: done"
  }
  print "  done: { succeed: true }"
}' >"$tmp/steps.yaml"

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

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_hyperfine NAME PREPARE CMD...: median in ms.
time_hyperfine() {
  local name=$1 prepare=$2
  shift 2
  local cmd
  cmd=$(printf '%q ' "$@")
  local args=(-N --warmup 1 --runs "$runs" --style basic
              --export-json "$tmp/$name.json")
  [ -n "$prepare" ] && args+=(--prepare "$prepare")
  hyperfine "${args[@]}" "$cmd" >&2 || die "hyperfine failed timing $name"
  sed -n 's/.*"median":[[:space:]]*\([-0-9.eE+]*\).*/\1/p' "$tmp/$name.json" |
    head -n 1 | awk '{ printf "%.1f\n", $1 * 1000 }'
}

# time_loop NAME PREPARE CMD...: median in ms of $runs runs after a warmup.
time_loop() {
  local prepare=$2 i t0 t1
  shift 2
  for ((i = 0; i <= runs; i++)); do
    [ -n "$prepare" ] && $prepare
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    [ "$i" -eq 0 ] || echo $(((t1 - t0) / 1000))
  done | median | awk '{ printf "%.1f\n", $1 / 1000 }'
}

if command -v hyperfine >/dev/null 2>&1; then
  timer="hyperfine $(hyperfine --version | awk '{ print $2 }') (warmup 1, $runs runs, median)"
  t_cairn=$(time_hyperfine cairn "rm -f $(printf '%q ' "$journal" "$journal-wal" "$journal-shm")" "${cairn_cmd[@]}")
  t_bash=$(time_hyperfine bash '' "${bash_cmd[@]}")
  t_make=$(time_hyperfine make '' "${make_cmd[@]}")
else
  echo "steps.sh: hyperfine not installed; timing with date (apt-get install hyperfine for better statistics)" >&2
  timer="date +%s%N loop (warmup 1, $runs runs, median)"
  t_cairn=$(time_loop cairn fresh_journal "${cairn_cmd[@]}")
  t_bash=$(time_loop bash '' "${bash_cmd[@]}")
  t_make=$(time_loop make '' "${make_cmd[@]}")
fi

for t in "$t_cairn" "$t_bash" "$t_make"; do
  case $t in
    '' | *[!0-9.]*) die "could not time the runs (got '$t_cairn' '$t_bash' '$t_make')" ;;
  esac
done

# ---- peak RSS -----------------------------------------------------------------

if [ ! -x /usr/bin/time ]; then
  apt_install time || true
fi
if [ -x /usr/bin/time ]; then
  fresh_journal
  /usr/bin/time -f %M -o "$tmp/rss" "${cairn_cmd[@]}" >/dev/null
  rss_kib=$(tail -n 1 "$tmp/rss")
  rss=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f MiB (%d KiB)", k / 1024, k }')
else
  rss="n/a (/usr/bin/time missing)"
fi

# ---- report -------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_step() { awk -v t="$1" -v n="$steps" 'BEGIN { printf "%.0f", t * 1000 / n }'; }
r_bash=$(ratio "$t_cairn" "$t_bash")
r_make=$(ratio "$t_cairn" "$t_make")

fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
version=$("$bin" --version 2>/dev/null | head -n 1 || true)
nsteps=$(printf '%s\n' "$steps" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta')

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
Machine: ${cpu:-unknown CPU}, $(nproc) CPUs, $(uname -sr); journal on ${fs:-unknown} (\`$tmp\`).
cairn: ${version:-unknown version} (\`$bin\`); timed with $timer; $(date -u +%Y-%m-%d).
EOF
