#!/usr/bin/env bash
# What `cairn run` shows on a terminal (a live line per running state,
# redrawn, then ✓/✗ with durations) and off one (plain lines, no escape
# codes). `script` (util-linux) gives the run a pseudo-terminal.

. "$(dirname "$0")/lib.sh"

if ! command -v script >/dev/null 2>&1; then
  test_skip_all 'script(1) is not installed'
fi

write_workflow slow.yaml <<'EOF_WF'
cairn: 1
name: slow
start: slow
states:
  slow:
    do: exec
    with: { argv: [sleep, "0.7"] }
    next: quick
  quick:
    do: exec
    with: { argv: ["true"] }
    next: done
  done: { succeed: true }
EOF_WF

write_workflow broken.yaml <<'EOF_WF'
cairn: 1
name: broken
start: bad
states:
  bad:
    do: exec
    with: { argv: ["false"] }
    next: done
  done: { succeed: true }
EOF_WF

# Runs cairn under a pseudo-terminal; the transcript goes to $1.
on_tty() {
  out=$1
  shift
  script -qec "$(printf '%q ' "$CAIRN_BIN" "$@")" /dev/null >"$out" </dev/null
}

test_expect_success 'on a terminal, a running state has a live line that is redrawn' '
  NO_COLOR=1 bash -c "$(declare -f on_tty); CAIRN_BIN=$CAIRN_BIN on_tty tty.out run slow.yaml" &&
  # the live line: "… slow" with an elapsed time, erased with ESC[1A ESC[2K
  grep -a "^… slow [0-9]" tty.out &&
  test $(grep -ac "… slow" tty.out) -ge 2 &&
  grep -aq "$(printf "\033\\[1A\033\\[2K")" tty.out &&
  # and, at the end, a tick with a duration and the run line
  grep -a "✓.* slow.* [0-9.]*m\?s" tty.out &&
  grep -a "succeeded" tty.out
'

test_expect_success 'on a terminal without NO_COLOR, the tick is green' '
  env -u NO_COLOR bash -c "$(declare -f on_tty); CAIRN_BIN=$CAIRN_BIN on_tty color.out run slow.yaml" &&
  grep -aq "$(printf "\033\\[32m✓")" color.out
'

test_expect_success 'NO_COLOR keeps the live view but drops the colours' '
  NO_COLOR=1 bash -c "$(declare -f on_tty); CAIRN_BIN=$CAIRN_BIN on_tty nocolor.out run slow.yaml" &&
  grep -aq "$(printf "\033\\[2K")" nocolor.out &&
  ! grep -aq "$(printf "\033\\[3[12]m")" nocolor.out
'

test_expect_success 'a failed state shows a cross and why, on a terminal' '
  NO_COLOR=1 bash -c "$(declare -f on_tty); CAIRN_BIN=$CAIRN_BIN on_tty fail.out run broken.yaml" || true &&
  grep -a "✗ bad failed: exited with status 1" fail.out
'

test_expect_success 'off a terminal the lines are plain, with no escape codes' '
  env -u NO_COLOR "$CAIRN_BIN" run slow.yaml >plain.out &&
  ! grep -aq "$(printf "\033")" plain.out &&
  grep -x "start slow" plain.out &&
  grep "^✓ slow " plain.out &&
  grep "^run .* succeeded in " plain.out
'

test_done
