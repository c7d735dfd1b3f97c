#!/usr/bin/env bash
# tests/bench/http.sh: 1,000 http.check states in one `parallel` fan-out
# against a local nginx, all on cairn's one loop thread. Reports the wall
# time (median of runs), checks per second, peak RSS and the load average
# as a markdown section for docs/benchmarks.md. A benchmark, never a test:
# it asserts no timing (targets: >= 5,000 checks/s, < 64 MiB).
#
# Environment: CAIRN_BIN (default build-bench/cli/cairn), TMPDIR,
# CAIRN_BENCH_CHECKS (default 1000), CAIRN_BENCH_RUNS (default 5).
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
checks=${CAIRN_BENCH_CHECKS:-1000}
runs=${CAIRN_BENCH_RUNS:-5}
bin=${CAIRN_BIN:-$root/build-bench/cli/cairn}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac

die() { printf 'http.sh: %s\n' "$*" >&2; exit 1; }
[ -x "$bin" ] || die "no cairn binary at $bin (./dev bench builds it)"
# shellcheck source=../cli/netlib.sh
. "$root/tests/cli/netlib.sh"
net_need_nginx || die "nginx is not installed (apt-get install nginx)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-http.XXXXXX")
cleanup() {
  local rc=$?
  net_stop_all
  if [ "$rc" -eq 0 ]; then rm -rf "$tmp"; else echo "http.sh: files kept in $tmp" >&2; fi
}
trap cleanup EXIT

port=$(free_port)
mkdir -p "$tmp/nginx/www"
printf '{"status":"healthy"}\n' >"$tmp/nginx/www/health.json"
# no access log: nginx's own disk writes would be timed too
nginx_start "$tmp/nginx" "
  server {
    listen 127.0.0.1:$port backlog=4096;
    access_log off;
    root $tmp/nginx/www;
  }" || die "nginx did not start (see $tmp/nginx/logs/error.log)"

awk -v n="$checks" -v port="$port" 'BEGIN {
  print "cairn: 1"
  print "name: bench-http"
  print "start: fan"
  print "states:"
  print "  fan:"
  print "    parallel:"
  for (i = 1; i <= n; i++)
    printf "      c%04d: { do: http.check, with: { url: \"http://127.0.0.1:%d/health.json\", expect: { json: { status: healthy } } } }\n", i, port
  print "    next: done"
  print "  done: { succeed: true }"
}' >"$tmp/http.yaml"

journal=$tmp/journal.db
export CAIRN_JOURNAL=$journal
fresh() { rm -f "$journal" "$journal-wal" "$journal-shm"; }

# the machine may be shared: say how busy it was, before and after
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)

fresh
"$bin" run "$tmp/http.yaml" >/dev/null || die "the benchmark run failed ($tmp/http.yaml)"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
times=()
for ((i = 0; i < runs; i++)); do
  fresh
  t0=$(date +%s%N)
  "$bin" run "$tmp/http.yaml" >/dev/null
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000 )))
done
t_ms=$(printf '%s\n' "${times[@]}" | median | awk '{ printf "%.1f\n", $1 / 1000 }')

# peak RSS of one more run
if [ -x /usr/bin/time ]; then
  fresh
  /usr/bin/time -f %M -o "$tmp/rss" "$bin" run "$tmp/http.yaml" >/dev/null
  rss_kib=$(tail -n 1 "$tmp/rss")
  rss=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f MiB (%d KiB)", k / 1024, k }')
else
  rss="n/a (/usr/bin/time missing)"
fi

# curl's command line, 10 in parallel, for comparison (the issue's baseline)
t_curl=n/a
if command -v curl >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1; then
  t0=$(date +%s%N)
  seq "$checks" | xargs -P 10 -I{} curl -fsS -o /dev/null "http://127.0.0.1:$port/health.json"
  t1=$(date +%s%N)
  t_curl=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", ns / 1e6 }')
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)

rate() { awk -v t="$1" -v n="$checks" 'BEGIN { if (t > 0) printf "%.0f", n * 1000 / t; else print "n/a" }'; }
fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
ncheck=$(printf '%s\n' "$checks" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta')

cat <<EOF

### $ncheck \`http.check\` states in one \`parallel\` state

| runner | wall (ms) | checks/s |
|---|---:|---:|
| \`cairn run\`, one loop thread, journal on | $t_ms | $(rate "$t_ms") |
| \`curl\` command line, \`xargs -P 10\` | $t_curl | $(rate "$t_curl") |

cairn peak RSS: $rss.
Machine: ${cpu:-unknown CPU}, $(nproc) CPUs, $(uname -sr); journal on ${fs:-unknown}; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), 1 worker.
cairn: $("$bin" --version 2>/dev/null | head -n 1) (\`$bin\`); median of $runs runs; $(date -u '+%Y-%m-%d %H:%M UTC').
Load average (1, 5, 15 min): $load_before before, $load_after after.
EOF
