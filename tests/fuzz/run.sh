#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET [SECONDS]: runs the libFuzzer target fuzz_TARGET
# (loader, replay or template) of a -Dfuzz=true build for SECONDS (default
# CAIRN_FUZZ_SECONDS, else 60), starting from its seeds: every .yaml of
# workflows/ and examples/ for the loader, tests/fuzz/corpus/TARGET/ for
# the others. The corpus it grows is thrown away; a finding (crash, leak,
# sanitizer report, an input that takes over 25 s: generous, as CI hosts
# are shared) is kept in FINDINGS (default: findings/ beside the target)
# and fails the run (exit 1; 130 when interrupted). ./dev fuzz and the
# fuzz suite of `./dev test` call it.
#
# Environment: CAIRN_FUZZ_BIN (default build-fuzz/tests/fuzz/fuzz_TARGET),
# CAIRN_FUZZ_FINDINGS, CAIRN_FUZZ_SECONDS.
set -euo pipefail

target=${1:-}
case $target in
  loader | replay | template) ;;
  *) echo "usage: tests/fuzz/run.sh loader|replay|template [SECONDS]" >&2; exit 2 ;;
esac
secs=${2:-${CAIRN_FUZZ_SECONDS:-60}}
case $secs in
  '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;;
esac
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
bin=${CAIRN_FUZZ_BIN:-$src/build-fuzz/tests/fuzz/fuzz_$target}
[ -x "$bin" ] || { echo "run.sh: no fuzz target at $bin (hint: ./dev fuzz builds it)" >&2; exit 2; }
findings=${CAIRN_FUZZ_FINDINGS:-$(dirname "$bin")/findings}
mkdir -p "$findings"
findings=$(cd "$findings" && pwd -P)

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cwd=$work/cwd
max_len=8192
if [ "$target" = loader ]; then
  # one name per seed: several examples have a deploy.yaml
  while IFS= read -r f; do
    rel=${f#"$src"/}
    cp "$f" "$work/corpus/${rel//\//_}"
  done < <(find "$src/workflows" "$src/examples" -name '*.yaml' | sort)
  # whole seeds: the example's deploy.yaml is 20 KB
  max_len=32768
  # The target loads each input as fuzz.yaml in its working folder, which
  # holds the files the seeds' relative `use:` name and nothing else (a
  # `use:` of any other file there would be a false finding). It stays
  # beside the target, to replay a finding in.
  cwd=$(dirname "$bin")/loader-cwd
  rm -rf "$cwd"
  mkdir -p "$cwd/nginx"
  cp "$src/examples/pyairtable-local/nginx/nginx.yaml" "$cwd/nginx/"
  cp "$src/examples/pyairtable-k8s/layer.yaml" "$cwd/"
else
  mkdir "$cwd"
  cp "$src/tests/fuzz/corpus/$target"/* "$work/corpus/"
fi
dict=()
[ -f "$src/tests/fuzz/$target.dict" ] && dict=("-dict=$src/tests/fuzz/$target.dict")

echo "fuzz_$target: ${secs}s from $(find "$work/corpus" -type f | wc -l) seeds; findings go to $findings"
touch "$work/start"
cd "$cwd"
set +e
"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
  -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$findings/$target-" \
  "${dict[@]}" "$work/corpus" 2>"$work/log"
rc=$?
set -e
grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/log" || true
if [ "$rc" -eq 72 ]; then
  # libFuzzer's exit on SIGINT or SIGTERM: stopped, not a finding
  echo "run.sh: fuzz_$target interrupted" >&2
  exit 130
fi
if [ "$rc" -ne 0 ]; then
  cat "$work/log" >&2
  new=$(find "$findings" -maxdepth 1 -name "$target-*" -newer "$work/start" | sort)
  echo "run.sh: fuzz_$target found a problem (exit $rc); the input: ${new:-(none written)}" >&2
  if [ "$target" = loader ]; then
    echo "run.sh: replay it with: (cd $cwd && $bin FILE)" >&2
  else
    echo "run.sh: replay it with: $bin FILE" >&2
  fi
  exit 1
fi
