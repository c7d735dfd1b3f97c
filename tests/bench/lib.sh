# shellcheck shell=bash disable=SC2034 # sets variables for the script that sources it
# tests/bench/lib.sh: what the benchmark scripts share. Source it after
# setting `bench` (the script's name, for messages) and `runs` (how many
# timed runs). It sets `root` (the checkout) and `bin` (CAIRN_BIN, default
# build-bench/cli/cairn, made absolute), checks the binary, and makes `tmp`,
# a temporary folder removed at exit unless the script failed.

bench=${bench:-bench}
runs=${runs:-5}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
bin=${CAIRN_BIN:-$root/build-bench/cli/cairn}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac

die() { printf '%s: %s\n' "$bench" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$bench" "$*" >&2; }
[ -x "$bin" ] || die "no cairn binary at $bin (./dev bench builds it)"

# apt_install PACKAGE: installs a Debian package, as root or through sudo.
apt_install() {
  local sudo=()
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=(sudo)
  fi
  note "installing $1 (apt-get)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$1" \
    </dev/null >/dev/null 2>&1 ||
  { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq update &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$1"; } \
    </dev/null >/dev/null 2>&1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
# Kept when something fails, to look at what was generated.
bench_cleanup() {
  if [ "$1" -eq 0 ]; then
    rm -rf "$tmp"
  else
    note "files kept in $tmp"
  fi
}
trap 'bench_cleanup $?' EXIT

# chain_workflow NAME N UNDO_EVERY: a workflow of N exec states running
# /bin/true, each moving to the next (s0001, s0002, ...: four digits or
# as many as N has), then done; every UNDO_EVERY-th state has an undo
# running /bin/true too (0: none).
chain_workflow() {
  awk -v name="$1" -v n="$2" -v every="$3" 'BEGIN {
    w = length(n "") < 4 ? 4 : length(n "")
    f = "s%0" w "d"
    print "cairn: 1"
    print "name: " name
    printf "start: " f "\n", 1
    print "states:"
    for (i = 1; i <= n; i++) {
      printf "  " f ":\n", i
      print "    do: exec"
      print "    with: { argv: [/bin/true] }"
      if (every > 0 && i % every == 0)
        print "    undo: { do: exec, with: { argv: [/bin/true] } }"
      if (i < n) printf "    next: " f "\n", i + 1
      else print "    next: done"
    }
    print "  done: { succeed: true }"
  }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_hyperfine NAME PREPARE CMD...: median in ms (stdout of CMD dropped).
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

# cpu_ms NAME: the mean user + system CPU time in ms of what time_hyperfine
# timed as NAME, or "n/a" (timed by time_loop). On a loaded machine it
# holds better than the wall-clock median.
cpu_ms() {
  [ -f "$tmp/$1.json" ] || { echo n/a; return; }
  sed -n 's/.*"\(user\|system\)":[[:space:]]*\([-0-9.eE+]*\).*/\2/p' "$tmp/$1.json" |
    head -n 2 | awk '{ s += $1 } END { printf "%.1f\n", s * 1000 }'
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

# The timer: hyperfine when installed, else a loop of date. Sets `timer`
# (how it was timed, for the report) and `time_cmd` (one of the two above).
if command -v hyperfine >/dev/null 2>&1; then
  timer="hyperfine $(hyperfine --version | awk '{ print $2 }') (warmup 1, $runs runs, median)"
  time_cmd=time_hyperfine
else
  note "hyperfine not installed; timing with date (apt-get install hyperfine for better statistics)"
  timer="date +%s%N loop (warmup 1, $runs runs, median)"
  time_cmd=time_loop
fi

# check_ms VALUE...: each must be a number of milliseconds.
check_ms() {
  local t
  for t in "$@"; do
    case $t in
      '' | *[!0-9.]*) die "could not time the runs (got '$*')" ;;
    esac
  done
}

# peak_rss_kib CMD...: the peak RSS of CMD in KiB (stdout dropped), or
# nothing when /usr/bin/time is missing and cannot be installed.
peak_rss_kib() {
  if [ ! -x /usr/bin/time ]; then
    apt_install time || true
  fi
  [ -x /usr/bin/time ] || return 0
  /usr/bin/time -f %M -o "$tmp/rss" "$@" >/dev/null || die "failed: $*"
  tail -n 1 "$tmp/rss"
}

# mib KIB: "10.8 MiB (11059 KiB)", or "n/a" for nothing.
mib() {
  if [ -z "$1" ]; then
    echo "n/a (/usr/bin/time missing)"
  else
    awk -v k="$1" 'BEGIN { printf "%.1f MiB (%d KiB)", k / 1024, k }'
  fi
}

# thousands N: 10000 -> 10,000.
thousands() { printf '%s\n' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }

# machine WHAT: the lines about where it ran, for the report; WHAT is what
# the temporary folder holds ("the journal").
machine() {
  local fs cpu version
  fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }')
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
  version=$("$bin" --version 2>/dev/null | head -n 1 || true)
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg); $1 on ${fs:-unknown} (\`$tmp\`)."
  echo "cairn: ${version:-unknown version} (\`$bin\`); timed with $timer; $(date -u +%Y-%m-%d)."
}
