#!/bin/bash
# tests/crash/crash.sh: kill the engine at every journal commit and at
# random moments, resume, and prove that every run ends as an
# uninterrupted run does, with every non-idempotent action having taken
# effect exactly once. Part 1 runs the reference workflow, which succeeds;
# part 2 the rollback workflow, which fails late and rolls back: there the
# undo steps that run must be exactly the journaled plan, each undo's
# effect once. See tests/crash/README.md.
#
# Needs a cairn built with -Dtest_hooks=true (CAIRN_BIN) and jq.
# Environment:
#   CRASH_SEED=N          seed of the random kill moments (printed; replay)
#   CRASH_RANDOM=N        how many random kills in part 1 (default 50)
#   CRASH_RB_RANDOM=N     how many random kills in the rollback (default 10)
#   CRASH_FAILURES_DIR=D  where failing cases are kept (default
#                         /tmp/crash-failures)
#   CRASH_JOBS=N          cases run N at a time (default 2)
#   CRASH_TIMEOUT=S       a run or resume hung longer fails (default 60)
#   CRASH_PARTS=LIST      the parts to run (default "forward rollback")
#
# shellcheck disable=SC2317 # helpers are called from test bodies (eval)
# shellcheck disable=SC2016,SC2089,SC2090 # jq programs in single quotes
. "$(dirname "$0")/../cli/lib.sh"

# ---- the two parts ------------------------------------------------------------
#
# What a case runs and compares with is the current part's (use_part):
#   PART             forward | rollback
#   REF              the workflow
#   REF_SET          more --set arguments of its runs (words)
#   BASE             the folder of the part's uninterrupted run
#   RUN_EXIT         the exit status of a run or resume that ends as the
#                    uninterrupted run does (0 succeeded, 1 failed)
#   EXPECTED_MARKERS the markers an uninterrupted run writes, one line each,
#                    sorted
# Cases run in subshells, which see the values of the part they were
# launched in.
REF_FORWARD=$CAIRN_SRCDIR/tests/crash/reference.yaml
REF_ROLLBACK=$CAIRN_SRCDIR/tests/crash/rollback.yaml
use_part() {
  PART=$1
  case $1 in
    forward)
      REF=$REF_FORWARD
      REF_SET=
      BASE=$TRASH/baseline
      RUN_EXIT=0
      EXPECTED_MARKERS='announce
blue_switch
create_db
provision
register' ;;
    rollback)
      REF=$REF_ROLLBACK
      REF_SET='--set fail=true'
      BASE=$TRASH/rb-baseline
      RUN_EXIT=1
      EXPECTED_MARKERS='announce
blue_switch
create_db
provision
register
undo-blue_switch
undo-create_db
undo-provision
undo-register' ;;
  esac
}
use_part forward
CRASH_FAILURES_DIR=${CRASH_FAILURES_DIR:-/tmp/crash-failures}
CRASH_RANDOM=${CRASH_RANDOM:-50}
CRASH_RB_RANDOM=${CRASH_RB_RANDOM:-10}
CRASH_SEED=${CRASH_SEED:-$(( $(date +%s) % 1000000 ))}
CRASH_TIMEOUT=${CRASH_TIMEOUT:-60}
CRASH_PARTS=${CRASH_PARTS:-forward rollback}
for p in $CRASH_PARTS; do
  case $p in
    forward | rollback) ;;
    *) _cairn_test_bail "CRASH_PARTS: unknown part '$p' (forward, rollback)" ;;
  esac
done

if ! command -v jq >/dev/null 2>&1; then
  test_skip_all 'jq is not installed'
fi
for f in "$REF_FORWARD" "$REF_ROLLBACK"; do
  if [ ! -f "$f" ]; then
    _cairn_test_bail "no workflow at $f (set CAIRN_SRCDIR)"
  fi
done

# ---- what a run did: its trace ----------------------------------------------
#
# The trace of a run is the part of its events that says which states it
# went through and which actions took effect, in order, one line each:
#   enter PATH                      state.entered
#   done PATH                       action.finished with outcome succeeded,
#                                   or probe.finished with outcome succeeded
#                                   (after a crash the probe is what tells
#                                   that the action took effect)
#   transition FROM -> TO (REASON)  transition ("" TO when the run ends,
#                                   "rollback" when a failure starts one)
#   finished - STATUS               run.finished
# An undo is a PATH of its own, undo:PATH, with the lines of an action.
# Everything else is left out: what a resume adds (run.resumed,
# lock.taken_over, probe.finished failed, action.finished interrupted),
# and what differs from attempt to attempt (action.started, .spawned,
# .retrying, failed or cancelled action.finished). decision.assumed must
# never happen (every non-idempotent state has a probe) and is checked
# apart.
#
# The branches of a parallel state finish in any order, so each run of
# consecutive branch lines (PATH with a "/", not an undo) is sorted by
# PATH, stably: a branch's "enter" stays before its "done". The order of
# everything else is compared as is, so a state run twice, skipped or
# moved shows, and so does an undo run out of the plan's order (undos of
# branches run one by one too).
TRACE_JQ='.events[] |
  if .kind == "state.entered" then "enter \(.state)"
  elif (.kind == "action.finished" or .kind == "probe.finished")
       and .payload.outcome == "succeeded" then "done \(.state)"
  elif .kind == "transition"
    then "transition \(.payload.from) -> \(.payload.to) (\(.payload.reason))"
  elif .kind == "run.finished" then "finished - \(.payload.status)"
  else empty end'

# What must hold in a journal at any moment, since each of these pairs is
# committed in one transaction (DESIGN.md, Journal): prints one line per
# violation.
#  - a transition to a state is followed by that state's state.entered;
#  - a transition to "rollback" is followed by rollback.planned;
#  - a top-level action that took effect (action.finished or
#    probe.finished succeeded) is followed by the transition out of it
#    (an undo has no transition: it is left out);
#  - a do state's or an undo's state.entered is followed by its
#    action.started;
#  - run.finished is the run's last event.
INVARIANTS_JQ='.events as $e | ($e | length) as $n |
  range(0; $n) as $i | $e[$i] as $ev | $e[$i + 1:] as $after |
  if $ev.kind == "transition" and $ev.payload.to == "rollback" then
    if any($after[]; .kind == "rollback.planned")
    then empty
    else "event \($ev.seq): transition to rollback but no rollback.planned after"
    end
  elif $ev.kind == "transition" and $ev.payload.to != "" then
    if any($after[]; .kind == "state.entered" and .state == $ev.payload.to)
    then empty
    else "event \($ev.seq): transition to \($ev.payload.to) but no state.entered of it after"
    end
  elif ($ev.kind == "action.finished" or $ev.kind == "probe.finished")
       and $ev.payload.outcome == "succeeded"
       and ($ev.state | contains("/") | not)
       and ($ev.state | startswith("undo:") | not) then
    if any($after[]; .kind == "transition" and .payload.from == $ev.state)
    then empty
    else "event \($ev.seq): \($ev.kind) succeeded of \($ev.state) but no transition out of it after"
    end
  elif $ev.kind == "state.entered"
       and ($ev.payload.kind == "do" or $ev.payload.kind == "undo") then
    if any($after[]; .kind == "action.started" and .state == $ev.state)
    then empty
    else "event \($ev.seq): state.entered of \($ev.payload.kind) state \($ev.state) but no action.started after"
    end
  elif $ev.kind == "run.finished" and $i != $n - 1 then
    "event \($ev.seq): run.finished is not the last event of the run"
  else empty end'
export TRACE_JQ INVARIANTS_JQ

# canon_parallel: sorts each run of consecutive branch lines (not undos)
# by path.
canon_parallel() {
  awk -v cmd='sort -s -k2,2' '
    function flush() { if (n) { close(cmd); n = 0 } }
    $2 ~ /\// && $2 !~ /^undo:/ { print | cmd; n++; next }
    { flush(); print; fflush() }
    END { flush() }'
}

# load_run RUN FILE: `cairn show RUN --json` into FILE (everything below
# reads a run from there).
load_run() {
  if ! cairn show "$1" --json >"$2" 2>"$2.err"; then
    echo "cairn show $1 --json failed:"
    cat "$2.err"
    return 1
  fi
}

# trace_of FILE: the canonical trace of the run loaded in FILE.
trace_of() {
  jq -r "$TRACE_JQ" "$1" | canon_parallel
}

# check_invariants FILE: nothing half-written in the run loaded in FILE.
check_invariants() {
  local bad
  bad=$(jq -r "$INVARIANTS_JQ" "$1") || { echo "jq failed on $1"; return 1; }
  if [ -n "$bad" ]; then
    echo "half-written journal ($1):"
    printf '%s\n' "$bad"
    return 1
  fi
}

# status_of FILE: the run's status as `cairn status` reports it.
status_of() {
  jq -r '.run.status' "$1"
}

# run_ids: the ids of the runs in $CAIRN_JOURNAL, one a line.
run_ids() {
  local out
  out=$(cairn history --json) || { echo "cairn history --json failed" >&2; return 1; }
  printf '%s\n' "$out" | jq -r '.id'
}

# verify_journal WHEN: `cairn verify` must pass.
verify_journal() {
  local rc=0
  cairn verify >"verify-$1.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "cairn verify failed ($rc) $1:"
    cat "verify-$1.out"
    return 1
  fi
}

# cairn_t ARGS...: cairn, stopped when it hangs for CRASH_TIMEOUT seconds
# (exit 124).
cairn_t() {
  timeout -k 5 "$CRASH_TIMEOUT" "$CAIRN_BIN" "$@"
}

# explain_exit WHAT RC: says why WHAT exited with RC.
explain_exit() {
  case $2 in
    124) echo "$1 hung: stopped after ${CRASH_TIMEOUT}s" ;;
    *) echo "$1 ended with exit $2" ;;
  esac
}

sleep_ms() {
  sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
}

# start_killed MS ARGS...: runs `cairn ARGS` in the background, SIGKILLs
# it after MS milliseconds (if it still runs), sets rc to its exit status.
start_killed() {
  local ms=$1 pid
  shift
  # The binary itself, not the cairn function: $! must be the engine.
  "$CAIRN_BIN" "$@" &
  pid=$!
  sleep_ms "$ms"
  kill -9 "$pid" 2>/dev/null || :
  rc=0
  wait "$pid" || rc=$?
}

# check_markers: markers/ holds exactly the expected files, one line each.
check_markers() {
  local m lines got
  got=$(cd markers 2>/dev/null && find . -mindepth 1 -printf "%P\n" | sort) || :
  if [ "$got" != "$EXPECTED_MARKERS" ]; then
    echo "marker files differ from an uninterrupted run's (- expected, + found):"
    diff -u <(printf '%s\n' "$EXPECTED_MARKERS") <(printf '%s\n' "$got")
    return 1
  fi
  for m in $EXPECTED_MARKERS; do
    lines=$(wc -l <"markers/$m")
    if [ "$lines" -ne 1 ]; then
      echo "marker $m holds $lines lines, not 1 (its action took effect $lines times):"
      cat "markers/$m"
      return 1
    fi
  done
  # For the last check of the script: nothing may change them later.
  wc -l markers/* >markers.snapshot
}

# after_kill RUN I: what must hold right after an engine working on RUN
# was killed (I numbers the kill); sets st to the run's status. A kill
# that lands after the rollback was planned and before the run ended
# touches in-rollbackI (the count of kills during a rollback).
after_kill() {
  local want
  want=$(cat "$BASE/status")
  verify_journal "after-kill$2" || return 1
  load_run "$1" "killed$2.json" || return 1
  check_invariants "killed$2.json" || return 1
  st=$(status_of "killed$2.json")
  if [ "$st" != interrupted ] && [ "$st" != "$want" ]; then
    echo "a killed run's status reads '$st', not interrupted (nor $want)"
    return 1
  fi
  if [ "$st" = interrupted ] &&
     jq -e 'any(.events[]; .kind == "rollback.planned")' "killed$2.json" >/dev/null; then
    touch "in-rollback$2"
  fi
}

# resume_to_end RUN [SPEC...]: resumes until the run has ended. SPEC i
# says how resume i is killed: hook:K (CAIRN_TEST_KILL_AFTER_COMMIT=K) or
# after:MS (kill -9 after MS milliseconds); resumes past the specs run
# untouched.
resume_to_end() {
  local run=$1 i=0 spec
  shift
  while :; do
    i=$((i + 1))
    if [ "$i" -gt 10 ]; then
      echo "run $run has not ended after 10 resumes"
      return 1
    fi
    spec=
    if [ $# -gt 0 ]; then
      spec=$1
      shift
    fi
    rc=0
    case $spec in
      '')
        cairn_t resume "$run" --json >"resume$i.out" 2>"resume$i.err" || rc=$? ;;
      hook:*)
        CAIRN_TEST_KILL_AFTER_COMMIT=${spec#hook:} \
          cairn_t resume "$run" --json >"resume$i.out" 2>"resume$i.err" || rc=$? ;;
      after:*)
        start_killed "${spec#after:}" resume "$run" --json \
          >"resume$i.out" 2>"resume$i.err" ;;
    esac
    echo "resume $i${spec:+ ($spec)}: exit $rc"
    case $rc in
      "$RUN_EXIT")
        if [ "$rc" -ne 0 ]; then
          # exit 1 is also a resume's own error: it must say the run ended
          st=$(tail -n 1 "resume$i.out" | jq -r 'select(.kind == "result") | .status')
          if [ "$st" != "$(cat "$BASE/status")" ]; then
            echo "resume $i exited $rc, with status '$st'"
            cat "resume$i.out" "resume$i.err"
            return 1
          fi
        fi
        return 0 ;;
      137)
        if [ -z "$spec" ]; then
          echo "resume $i died of SIGKILL, and nobody killed it"
          return 1
        fi
        after_kill "$run" "-resume$i" || return 1
        if [ "$st" != interrupted ]; then
          echo "the run had ended before its resume was killed"
          return 0
        fi
        ;;
      3)
        st=$(tail -n 1 "resume$i.out" | jq -r 'select(.kind == "result") | .status')
        if [ "$st" != interrupted ]; then
          echo "resume $i stopped with status '$st': a resume must never need a decision here (every non-idempotent state has a probe)"
          cat "resume$i.out" "resume$i.err"
          return 1
        fi
        ;;
      *)
        explain_exit "resume $i" "$rc"
        cat "resume$i.out" "resume$i.err"
        return 1 ;;
    esac
  done
}

# The undo paths of a run's rollback.planned events, one a line (the plan
# in the order it runs; twice when it was journaled twice).
PLAN_JQ='.events[] | select(.kind == "rollback.planned") | .payload.steps[].undo_path'
# The undo paths entered, and those that took effect, in journal order.
UNDO_ENTERED_JQ='.events[] | select(.kind == "state.entered" and (.state | startswith("undo:"))) | .state'
UNDO_DONE_JQ='.events[] | select((.kind == "action.finished" or .kind == "probe.finished")
    and .payload.outcome == "succeeded" and (.state | startswith("undo:"))) | .state'

# check_rollback FILE: the rollback of the run loaded in FILE carried out
# the uninterrupted run's plan, journaled once, every undo of it entered
# once and taking effect once, in plan order; the undos' own effects (the
# undo markers are checked by check_markers) are there.
check_rollback() {
  local n
  n=$(jq '[.events[] | select(.kind == "rollback.planned")] | length' "$1")
  if [ "$n" -ne 1 ]; then
    echo "$n rollback.planned events, not 1: the plan must be journaled once"
    return 1
  fi
  jq -r "$PLAN_JQ" "$1" >plan
  if ! test_cmp "$BASE/plan" plan; then
    echo "the journaled plan differs from the uninterrupted run's (- baseline, + this run)"
    return 1
  fi
  jq -r "$UNDO_ENTERED_JQ" "$1" >undo-entered
  if ! test_cmp plan undo-entered; then
    echo "the undos entered are not the plan, in its order, once each (- plan, + entered)"
    return 1
  fi
  jq -r "$UNDO_DONE_JQ" "$1" >undo-done
  if ! test_cmp plan undo-done; then
    echo "the undos that took effect are not the plan, in its order, once each (- plan, + done)"
    return 1
  fi
  # run.finished lists what it undid: the plan's paths
  if ! jq -e '([.events[] | select(.kind == "rollback.planned") | .payload.steps[].path]) as $p
              | [.events[] | select(.kind == "run.finished")] | length == 1 and .[0].payload.undone == $p' \
         "$1" >/dev/null; then
    echo "run.finished does not list the plan's paths as undone:"
    jq -c '.events[] | select(.kind == "run.finished") | .payload' "$1"
    return 1
  fi
  # the idempotent undos took effect: fetch's removed work/fetched,
  # migrate's (after a failed first attempt) wrote work/unmigrated
  if [ -e work/fetched ] || [ "$(cat work/unmigrated 2>/dev/null)" != down ]; then
    echo "an idempotent undo did not take effect (work/fetched must be gone, work/unmigrated read 'down'):"
    ls -l work
    return 1
  fi
}

# same_as_baseline RUN: RUN ended as the uninterrupted run did.
same_as_baseline() {
  local run=$1 st n want
  want=$(cat "$BASE/status")
  verify_journal at-end || return 1
  load_run "$run" final.json || return 1
  st=$(status_of final.json)
  if [ "$st" != "$want" ]; then
    echo "final status '$st', the uninterrupted run's: '$want'"
    return 1
  fi
  trace_of final.json >trace || return 1
  if ! test_cmp "$BASE/trace" trace; then
    echo "the states completed differ from the uninterrupted run's (- baseline, + this run)"
    return 1
  fi
  check_markers || return 1
  check_invariants final.json || return 1
  n=$(jq '[.events[] | select(.kind == "decision.assumed")] | length' final.json)
  if [ "$n" -ne 0 ]; then
    echo "$n decision.assumed events: nobody was asked to decide"
    return 1
  fi
  if [ "$PART" = rollback ]; then
    check_rollback final.json || return 1
  fi
}

# baseline_run STATUS: the current part's uninterrupted run, in $BASE: it
# must exit $RUN_EXIT and end STATUS, as every check says it should. Leaves
# there final.json, status, trace, start_ms (when it started, epoch ms) and
# duration_ms; prints its trace.
baseline_run() {
  local d=$BASE rc=0 start run
  mkdir -p "$d" && cd "$d" || return 1
  CAIRN_JOURNAL=$d/journal.db
  export CAIRN_JOURNAL
  start=$(date +%s%3N)
  echo "$start" >start_ms
  # shellcheck disable=SC2086 # REF_SET holds words
  cairn_t run "$REF" --set dir="$d" $REF_SET >run.out 2>run.err || rc=$?
  echo $(( $(date +%s%3N) - start )) >duration_ms
  if [ "$rc" -ne "$RUN_EXIT" ]; then
    explain_exit "the uninterrupted run" "$rc"
    cat run.out run.err
    return 1
  fi
  run=$(run_ids) || return 1
  if [ -z "$run" ]; then
    echo "no run in the journal"
    return 1
  fi
  load_run "$run" final.json || return 1
  status_of final.json >status
  echo "$1" >expect
  test_cmp expect status || return 1
  trace_of final.json >trace || return 1
  check_markers || return 1
  verify_journal at-end || return 1
  check_invariants final.json || return 1
  cat trace
}

# crash_case NAME MODE ARG [SPEC...]: one case in folder $TRASH/NAME.
#   MODE hook: CAIRN_TEST_KILL_AFTER_COMMIT=ARG on the run; an exit that
#              is not SIGKILL means ARG is past the run's last commit: the
#              case touches past-end in its folder (else killed) and
#              checks the run as an uninterrupted one.
#   MODE after: kill -9 of the run after ARG milliseconds.
# SPECs: how the resumes are killed (resume_to_end).
crash_case() {
  local name=$1 mode=$2 arg=$3 d=$TRASH/$1 runs run
  shift 3
  mkdir -p "$d" && cd "$d" || return 1
  CAIRN_JOURNAL=$d/journal.db
  export CAIRN_JOURNAL
  rc=0
  case $mode in
    hook)
      # shellcheck disable=SC2086 # REF_SET holds words
      CAIRN_TEST_KILL_AFTER_COMMIT=$arg \
        cairn_t run "$REF" --set dir="$d" $REF_SET >run.out 2>run.err || rc=$? ;;
    after)
      # shellcheck disable=SC2086
      start_killed "$arg" run "$REF" --set dir="$d" $REF_SET >run.out 2>run.err ;;
  esac
  echo "run: exit $rc"
  if [ "$mode" = hook ] && [ "$rc" -ne 137 ]; then
    touch past-end
    if [ "$rc" -ne "$RUN_EXIT" ]; then
      explain_exit "the run, neither killed nor ending as the uninterrupted one," "$rc"
      cat run.out run.err
      return 1
    fi
    echo "commit $arg is past the last commit: an uninterrupted run"
  elif [ "$mode" = hook ]; then
    touch killed
  elif [ "$rc" -ne 137 ] && [ "$rc" -ne "$RUN_EXIT" ]; then
    explain_exit "the run, neither killed nor ending as the uninterrupted one," "$rc"
    cat run.out run.err
    return 1
  fi

  if [ ! -e journal.db ]; then
    echo "killed before the journal existed"
    runs=
  else
    if [ "$rc" -eq 137 ]; then
      verify_journal after-kill || return 1
    fi
    runs=$(run_ids) || return 1
  fi
  case $runs in
    '')
      # Killed before its run was journaled: it must have done nothing,
      # and a new run must start (taking over a lock the dead one held).
      if [ -n "$(ls markers 2>/dev/null)" ]; then
        echo "a run that never reached the journal left markers:"
        ls markers
        return 1
      fi
      echo "no run in the journal: starting a new one"
      rc=0
      # shellcheck disable=SC2086
      cairn_t run "$REF" --set dir="$d" $REF_SET >run2.out 2>run2.err || rc=$?
      if [ "$rc" -ne "$RUN_EXIT" ]; then
        explain_exit "the new run" "$rc"
        cat run2.out run2.err
        return 1
      fi
      run=$(run_ids) || return 1
      ;;
    *$'\n'*)
      echo "more than one run in the journal: $runs"
      return 1 ;;
    *)
      run=$runs
      echo "run $run"
      st=
      if [ "$rc" -eq 137 ]; then
        after_kill "$run" "" || return 1
      fi
      if [ "$st" = interrupted ]; then
        resume_to_end "$run" "$@" || return 1
      fi
      ;;
  esac
  same_as_baseline "$run"
}

# ---- running cases two at a time ----------------------------------------------
#
# Each case runs in the background (CRASH_JOBS at a time) and its TAP test
# waits for it, in order, so the output reads as if they ran one by one.

# case_launch NAME 'MODE ARG [SPEC...]'
case_launch() {
  local name=$1 args=$2
  mkdir -p "$TRASH/$name"
  (
    trap 'echo $? >"$TRASH/$name/rc.tmp" && mv "$TRASH/$name/rc.tmp" "$TRASH/$name/rc"' EXIT
    set -eE -o pipefail
    # shellcheck disable=SC2086 # args holds words
    crash_case "$name" $args
  ) >"$TRASH/$name/case.log" 2>&1 </dev/null &
  echo $! >"$TRASH/$name/case.pid"
}

# case_result NAME: in a test body: waits for the case, prints its log and
# returns its status.
case_result() {
  local pid
  pid=$(cat "$TRASH/$1/case.pid")
  while [ ! -e "$TRASH/$1/rc" ]; do
    if ! kill -0 "$pid" 2>/dev/null && [ ! -e "$TRASH/$1/rc" ]; then
      cat "$TRASH/$1/case.log"
      echo "the case's shell died without a result"
      return 1
    fi
    sleep 0.05
  done
  cat "$TRASH/$1/case.log"
  return "$(cat "$TRASH/$1/rc")"
}

# keep_failure NAME WHAT: after a failed test, keeps the case's folder.
keep_failure() {
  local src=$TRASH/$1 dst
  [ -d "$src" ] || return 0
  mkdir -p "$CRASH_FAILURES_DIR" || return 0
  dst=$CRASH_FAILURES_DIR/$1-seed$CRASH_SEED-$$
  rm -rf "$dst"
  cp -a "$src" "$dst" || return 0
  {
    printf 'case: %s\n' "$2"
    printf 'original folder: %s (the journal names it: params.dir)\n' "$src"
    printf 'inspect: CAIRN_JOURNAL=%s/journal.db %s show RUN --events\n' \
      "$dst" "$CAIRN_BIN"
    printf 'replay: CRASH_SEED=%s CAIRN_BIN=%s CAIRN_SRCDIR=%s bash tests/crash/crash.sh\n' \
      "$CRASH_SEED" "$CAIRN_BIN" "$CAIRN_SRCDIR"
  } >"$dst/REPRODUCE"
  printf '# kept in %s\n' "$dst"
}

# case_report NAME DESCRIPTION: the TAP test of a launched case.
case_report() {
  local before=$test_failed
  test_expect_success "$2" "case_result $1"
  if [ "$test_failed" -gt "$before" ]; then
    keep_failure "$1" "$2"
  fi
}

printf '# CRASH_SEED=%s (random kill moments; set it to replay)\n' "$CRASH_SEED"

# ---- the hook is there ------------------------------------------------------

mkdir "$TRASH/probe"
rc=0
CAIRN_JOURNAL=$TRASH/probe/journal.db CAIRN_TEST_KILL_AFTER_COMMIT=1 \
  "$CAIRN_BIN" run "$REF" --set dir="$TRASH/probe" \
  >"$TRASH/probe/out" 2>&1 || rc=$?
case $rc in
  137) ;;
  0) test_skip_all "$CAIRN_BIN has no crash hook (configure with -Dtest_hooks=true)" ;;
  *) _cairn_test_bail "cairn run of the reference workflow exits $rc: $(head -c 600 "$TRASH/probe/out")" ;;
esac

CRASH_JOBS=${CRASH_JOBS:-2}

# ---- a kill after every commit ----------------------------------------------

# hook_case N: sets args and desc of the case that kills after commit N.
# Every third case also kills the first resume after its K-th commit (K
# cycles through 1..4, in the rollback part 1..6), every ninth the second
# resume after its 2nd.
hook_case() {
  local k ks=4
  [ "$PART" = forward ] || ks=6
  args="hook $1"
  desc="kill after commit $1"
  if [ $(($1 % 3)) -eq 0 ]; then
    k=$(( ($1 / 3) % ks + 1 ))
    args="$args hook:$k"
    desc="$desc, and the resume after its commit $k"
    if [ $(($1 % 9)) -eq 0 ]; then
      args="$args hook:2"
      desc="$desc, and the next after its commit 2"
    fi
  fi
  desc="$desc: $PART_END"
}

# hook_series PREFIX: the cases PREFIX-1, PREFIX-2 ... of the current
# part; sets max_killed, the last commit the hook killed a run after.
#
# Cases run ahead of their report. A run whose engine is not killed made
# fewer than N commits. How many commits a run makes varies a little
# (group commit: completions that arrive in one loop turn share one), so
# the series ends after three such runs in a row, not at the first; they
# are uninterrupted runs, checked as such.
hook_series() {
  local prefix=$1 n=0 launched=0 fails_in_a_row=0 past_in_a_row=0 stop='' before
  max_killed=0
  while :; do
    n=$((n + 1))
    while [ -z "$stop" ] && [ "$launched" -lt $((n + CRASH_JOBS - 1)) ]; do
      launched=$((launched + 1))
      hook_case "$launched"
      case_launch "$prefix-$launched" "$args"
    done
    [ "$n" -le "$launched" ] || break
    hook_case "$n"
    before=$test_failed
    case_report "$prefix-$n" "$desc"
    if [ "$test_failed" -gt "$before" ]; then
      fails_in_a_row=$((fails_in_a_row + 1))
    else
      fails_in_a_row=0
    fi
    if [ -e "$TRASH/$prefix-$n/past-end" ]; then
      past_in_a_row=$((past_in_a_row + 1))
    else
      past_in_a_row=0
      [ ! -e "$TRASH/$prefix-$n/killed" ] || max_killed=$n
    fi
    if [ -z "$stop" ] && [ "$past_in_a_row" -ge 3 ]; then
      stop=1
    fi
    if [ -z "$stop" ] && { [ "$fails_in_a_row" -ge 5 ] || [ "$n" -ge 400 ]; }; then
      printf '# giving up the commit-by-commit kills at commit %d\n' "$n"
      stop=1
    fi
  done
  printf '# the last commit the hook killed a run after: %d\n' "$max_killed"
}

# ---- kills at random moments --------------------------------------------------

# random_series PREFIX COUNT FROM TO EVERY RTO: COUNT cases PREFIX-1 ...
# that kill the run at a moment drawn in [FROM, TO) ms after its start;
# every EVERY-th also kills its first resume at a moment in [0, RTO).
# Drawn first, in order, so that CRASH_SEED gives the same moments.
random_series() {
  local prefix=$1 count=$2 from=$3 to=$4 every=$5 rto=$6 i ms rms launched=0
  local -a rargs rdesc
  local window=$((to > from ? to - from : 1))
  [ "$rto" -gt 0 ] || rto=1
  for ((i = 1; i <= count; i++)); do
    ms=$(( from + (RANDOM * 32768 + RANDOM) % window ))
    rargs[i]="after $ms"
    rdesc[i]="kill -9 at ${ms}ms"
    if [ $((i % every)) -eq 0 ]; then
      rms=$(( (RANDOM * 32768 + RANDOM) % rto ))
      rargs[i]="${rargs[i]} after:$rms"
      rdesc[i]="${rdesc[i]}, and the resume at ${rms}ms"
    fi
    rdesc[i]="${rdesc[i]} ($prefix $i of $count, CRASH_SEED=$CRASH_SEED): $PART_END"
  done
  for ((i = 1; i <= count; i++)); do
    while [ "$launched" -lt $((i + CRASH_JOBS - 1)) ] &&
          [ "$launched" -lt "$count" ]; do
      launched=$((launched + 1))
      case_launch "$prefix-$launched" "${rargs[launched]}"
    done
    case_report "$prefix-$i" "${rdesc[i]}"
  done
}

# ---- part 1: the reference workflow, which succeeds ---------------------------

# part_forward: the cases of part 1.
part_forward() {
  # Its uninterrupted run: the reference of the part.
  test_expect_success 'an uninterrupted run of the reference workflow succeeds' '
	baseline_run succeeded
  '
  if [ "$test_failed" -ne 0 ]; then
    _cairn_test_bail 'the uninterrupted run failed: nothing to compare with'
  fi
  base_ms=$(cat "$TRASH/baseline/duration_ms")
  printf '# the uninterrupted run took %d ms\n' "$base_ms"

  test_expect_success 'the reference workflow has what the crash test needs' '
	cd "$TRASH/baseline" &&
	test "$(grep -c "^enter [^/]*$" trace)" -ge 10 &&
	test_grep "^enter fanout$" trace &&
	test "$(grep -c "^enter fanout/" trace)" -ge 2 &&
	test_grep "^transition route -> blue_switch (when: " trace &&
	test_grep "^enter settle$" trace &&
	test_grep "^finished - succeeded$" trace &&
	test_grep ! green_switch trace &&
	jq -e "[.events[] | select(.kind == \"action.retrying\" and .state == \"migrate\")] | length == 1" final.json
  '

  PART_END='resume ends like the uninterrupted run'
  hook_series hook
  test_expect_success "the kill hook fired after more than 10 commits ($max_killed)" "
	test $max_killed -gt 10
  "

  # Every fifth case also kills its first resume at a random moment.
  RANDOM=$CRASH_SEED
  random_series random "$CRASH_RANDOM" 0 "$base_ms" 5 "$base_ms"
}

# ---- part 2: the rollback workflow, which fails late and rolls back ------------

# part_rollback: the cases of part 2.
part_rollback() {
  use_part rollback
  PART_END='resume rolls back as the uninterrupted run did'

  # Its uninterrupted run: the reference of the part. plan holds the
  # journaled plan's undo paths; plan_ms and duration_ms when the plan was
  # journaled and when the run ended, in ms after its start.
  test_expect_success 'an uninterrupted run of the rollback workflow fails and rolls back' '
	baseline_run failed &&
	cd "$BASE" &&
	jq -r "$PLAN_JQ" final.json >plan &&
	jq -r ".events[] | select(.kind == \"rollback.planned\") | .time_ms - $(cat start_ms)" final.json >plan_ms &&
	check_rollback final.json
  '
  if [ "$test_failed" -ne 0 ]; then
    _cairn_test_bail 'the uninterrupted run of the rollback workflow failed otherwise: nothing to compare with'
  fi
  rb_ms=$(cat "$BASE/duration_ms")
  plan_ms=$(cat "$BASE/plan_ms")
  printf '# the uninterrupted run took %d ms, its rollback was planned at %d ms\n' \
    "$rb_ms" "$plan_ms"

  # The plan is the one docs/workflow-format.md (rollback) implies: reverse
  # order of completion, the branches of fanout in reverse order of
  # declaration, nothing for prepare and announce (no undo) nor for the
  # choice not taken.
  test_expect_success 'the rollback workflow has what the crash test needs' '
	cd "$BASE" &&
	cat >expect <<-\EOF &&
	undo:blue_switch
	undo:migrate
	undo:fanout/register
	undo:fanout/provision
	undo:fanout/fetch
	undo:create_db
	EOF
	test_cmp expect plan &&
	test_grep "^transition smoke -> rollback (on_failure)$" trace &&
	test_grep "^finished - failed$" trace &&
	test "$(grep -c "^enter fanout/" trace)" -eq 3 &&
	jq -e "[.events[] | select(.kind == \"action.retrying\") | .state] == [\"migrate\", \"undo:migrate\"]" final.json &&
	test "$plan_ms" -gt 0 && test "$plan_ms" -lt "$rb_ms"
  '

  hook_series rb-hook
  in_rb=$(find "$TRASH" -maxdepth 2 -path "$TRASH/rb-hook-*/in-rollback*" | wc -l)
  printf '# %d kills of a run or resume landed during its rollback: of the runs after commits%s\n' \
    "$in_rb" "$(cd "$TRASH" && find . -maxdepth 2 -path './rb-hook-*/in-rollback' |
                 sed 's,^./rb-hook-,,; s,/.*,,' | sort -n | tr '\n' ' ' | sed 's/^/ /; s/ $//')"
  # (the rollback phase has some ten commits of the run's own, fewer when
  # a busy machine makes completions share a commit, and some resumes are
  # killed in it too)
  test_expect_success "the kill hook fired after more than 20 commits ($max_killed), 6 times or more during a rollback ($in_rb)" "
	test $max_killed -gt 20 && test $in_rb -ge 6
  "
  # A resume that found a non-idempotent undo interrupted asked its probe.
  probed=$(cd "$TRASH" && for f in rb-hook-*/final.json; do
             jq -r '.events[] | select(.kind == "probe.finished" and (.state | startswith("undo:")))
                    | "\(.state) \(.payload.outcome)"' "$f"
           done | sort | uniq -c | sed 's/^ *//' | paste -sd, - | sed 's/,/, /g')
  printf '# probes of interrupted undos: %s\n' "${probed:-none}"
  test_expect_success "a resume probed an interrupted undo (${probed:-none})" "
	test -n '$probed'
  "

  # Moments in the uninterrupted run's rollback phase; every second case
  # also kills its first resume at a moment in the length of that phase.
  RANDOM=$((CRASH_SEED + 1))
  random_series rb-random "$CRASH_RB_RANDOM" "$plan_ms" "$rb_ms" 2 $((rb_ms - plan_ms))
  in_rb=$(find "$TRASH" -maxdepth 2 -path "$TRASH/rb-random-*/in-rollback" | wc -l)
  printf '# %d of %d random kills of a run landed during its rollback\n' "$in_rb" "$CRASH_RB_RANDOM"
}

# ---- the parts chosen ---------------------------------------------------------

for p in $CRASH_PARTS; do
  part_start=$SECONDS
  "part_$p"
  printf '# part %s took %ds\n' "$p" $((SECONDS - part_start))
done

# ---- nothing happened behind our back ----------------------------------------

# A process of a killed engine that a resume failed to stop would write
# its marker late, after its case was checked, or, in the rollback part,
# bring work/fetched back after its undo: look again at the end.
sleep 1
test_expect_success 'no marker changed after its case was checked' '
	for s in "$TRASH"/*/markers.snapshot; do
		d=${s%/markers.snapshot} &&
		(cd "$d" && wc -l markers/* >markers.now && test_cmp markers.snapshot markers.now) ||
		{ echo "in $d"; exit 1; }
	done &&
	for s in "$TRASH"/rb-*/markers.snapshot; do
		d=${s%/markers.snapshot} &&
		test_path_is_missing "$d/work/fetched" ||
		{ echo "in $d"; exit 1; }
	done
'

test_expect_success 'no process of the test is left running' '
	ps -eo pid=,args= | grep -F "$TRASH/" | grep -v -e "grep -F" -e "ps -eo" >left || :
	if [ -s left ]; then cat left; exit 1; fi
'

test_done
