# tests/cli/lib.sh: a small TAP test library in the style of git's
# t/test-lib.sh, sourced by the tests/cli/tNNNN-*.sh scripts (see README.md).
#
#   . "$(dirname "$0")/lib.sh"
#   test_expect_success 'run creates the journal' '
#       write_workflow ok.yaml <<-\EOF &&
#       ...
#       EOF
#       cairn run ok.yaml &&
#       test_path_is_file .cairn/journal.db
#   '
#   test_done
#
# Environment:
#   CAIRN_BIN           the binary (meson sets it; default ../../build/cli/cairn
#                       from this file)
#   CAIRN_TEST_KEEP=1   keep the trash directory
#   CAIRN_TEST_VERBOSE=1  print every test's output, not only a failing one's
#   CAIRN_TEST_TRACE=1  run test bodies with `set -x`

set -u

CAIRN_TEST_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CAIRN_TEST_NAME=$(basename "$0" .sh)

# Absolute paths: the tests run from the trash directory.
: "${CAIRN_SRCDIR:=$(cd "$CAIRN_TEST_LIB_DIR/../.." && pwd -P)}"
: "${CAIRN_BIN:=$CAIRN_SRCDIR/build/cli/cairn}"
case $CAIRN_BIN in
  /*) ;;
  *) CAIRN_BIN=$PWD/$CAIRN_BIN ;;
esac
export CAIRN_BIN CAIRN_SRCDIR

# A predictable environment. CAIRN_JOURNAL stays unset: tests exercise the
# discovery of .cairn/journal.db (set it in a test that wants it).
unset CAIRN_JOURNAL CAIRN_TEST_KILL_AFTER_COMMIT
export LC_ALL=C LANG=C TZ=UTC NO_COLOR=1
# Every rollback a test makes checks the undo plan the engine kept as it
# went against the one read back from the journal (a test-hooks build
# aborts on a difference; engine/rollback.c).
export CAIRN_TEST_PLAN_CHECK=1

test_count=0
test_failed=0
test_fixed=0
test_broken=0
test_skipped=0
test_done_called=

_tap_comment() { sed 's/^/# /'; }

_cairn_test_bail() {
  printf 'Bail out! %s: %s\n' "$CAIRN_TEST_NAME" "$*"
  test_done_called=bail
  exit 1
}

if [ ! -x "$CAIRN_BIN" ]; then
  _cairn_test_bail "no cairn binary at $CAIRN_BIN (build first, or set CAIRN_BIN)"
fi

# The trash directory: $TRASH, the working directory of every test. Its
# parent holds the library's own files (captured output).
CAIRN_TEST_BASE=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$CAIRN_TEST_NAME.XXXXXX") ||
  _cairn_test_bail "mktemp failed"
CAIRN_TEST_BASE=$(cd "$CAIRN_TEST_BASE" && pwd -P)
TRASH=$CAIRN_TEST_BASE/trash
mkdir "$TRASH"
HOME=$TRASH
export TRASH HOME

_cairn_test_exit() {
  local status=$?
  if [ -z "$test_done_called" ]; then
    printf 'Bail out! %s: exited (status %d) before test_done\n' \
      "$CAIRN_TEST_NAME" "$status"
    status=1
  fi
  if [ "${CAIRN_TEST_KEEP:-}" = 1 ]; then
    printf '# trash directory kept: %s\n' "$TRASH"
  else
    # A test may have taken permissions away (unwritable journal folder).
    chmod -R u+rwx "$CAIRN_TEST_BASE" 2>/dev/null
    rm -rf "$CAIRN_TEST_BASE"
  fi
  exit "$status"
}
trap _cairn_test_exit EXIT

# Discovery walks up from the working directory: a journal above the trash
# directory would be found instead of the test's own.
_d=$(dirname "$TRASH")
while :; do
  if [ -e "$_d/.cairn/journal.db" ]; then
    _cairn_test_bail "$_d/.cairn/journal.db exists above the trash directory; discovery would find it (remove it or set TMPDIR)"
  fi
  [ "$_d" = / ] && break
  _d=$(dirname "$_d")
done
unset _d

cd "$TRASH" || _cairn_test_bail "cannot cd to $TRASH"

# ---- running cairn ---------------------------------------------------------

cairn() { "$CAIRN_BIN" "$@"; }

# ---- tests -----------------------------------------------------------------

# _cairn_test_run BODY: runs BODY in a subshell with errexit and pipefail,
# in $TRASH, stdin from /dev/null, output to $CAIRN_TEST_BASE/out, and sets
# _cairn_test_status to its exit status. It must not be called from an
# `if`, `&&`, `||` or `!`: bash ignores errexit in everything run from such
# a context, the subshell included, so it always returns 0.
_cairn_test_run() {
  local restore_e=''
  case $- in *e*) restore_e=1 && set +e ;; esac
  (
    cd "$TRASH" || exit 1
    set -eE -o pipefail
    trap '_cairn_test_err $? $LINENO "$BASH_COMMAND" 2>/dev/null' ERR
    # shellcheck disable=SC2030 # read by _cairn_test_err, in this subshell
    _cairn_test_body=$1
    _cairn_test_xtrace=""
    if [ "${CAIRN_TEST_TRACE:-}" = 1 ]; then _cairn_test_xtrace="set -x; "; fi
    # shellcheck disable=SC2030
    _cairn_test_base=$LINENO; eval "$_cairn_test_xtrace$1"
  ) >"$CAIRN_TEST_BASE/out" 2>&1 </dev/null
  _cairn_test_status=$?
  if [ -n "$restore_e" ]; then set -e; fi
  return 0
}

# The ERR trap of a test body: _cairn_test_err STATUS LINENO COMMAND says
# which line of the body failed (LINENO inside eval counts from the line of
# the eval, saved in _cairn_test_base) and, for a failure inside a function,
# where in it.
# shellcheck disable=SC2031 # called by the trap inside the subshell
_cairn_test_err() {
  { set +x; } 2>/dev/null
  local status=$1 line=$2 cmd=$3 k=1 n text where=''
  while [ "$k" -lt "${#FUNCNAME[@]}" ] &&
        [ "${FUNCNAME[k]}" != _cairn_test_run ]; do
    k=$((k + 1))
  done
  if [ "$k" -ge "${#FUNCNAME[@]}" ]; then
    echo "error: exit status $status from: $cmd"
    return
  fi
  # shellcheck disable=SC2016 # the literal text of the eval below
  if [ "$k" -eq 1 ] && [ "$cmd" = 'eval "$_cairn_test_xtrace$1"' ]; then
    echo "error: exit status $status from the body's last && chain"
    return
  fi
  if [ "$k" -gt 1 ]; then
    line=${BASH_LINENO[k - 1]}
    case $cmd in
      return | return\ *) where=" (in ${FUNCNAME[k - 1]})" ;;
      *) where=" (in ${FUNCNAME[k - 1]}, at: $cmd)" ;;
    esac
  fi
  n=$((line - _cairn_test_base + 1))
  text=$(printf '%s\n' "$_cairn_test_body" | sed -n "${n}{s/^[[:space:]]*//;p;}")
  echo "error: exit status $status at: ${text:-$cmd}$where"
}

# A '#' in a description would start a TAP directive, and meson's TAP reader
# ignores the "\#" escape: print a fullwidth number sign instead.
_tap_desc() { printf '%s' "$1" | sed 's/#/\xef\xbc\x83/g'; }

_cairn_test_report_failure() {
  {
    printf 'body:\n'
    printf '%s\n' "$1" | sed '/^[[:space:]]*$/d'
    printf 'output:\n'
    cat "$CAIRN_TEST_BASE/out"
  } | _tap_comment
}

_cairn_test_check_args() {
  if [ "$1" -ne 2 ]; then
    _cairn_test_bail "bug in the test script: $2 takes 2 arguments, 'description' 'body'"
  fi
}

# test_expect_success 'description' 'body'
test_expect_success() {
  _cairn_test_check_args $# test_expect_success
  test_count=$((test_count + 1))
  local desc
  desc=$(_tap_desc "$1")
  _cairn_test_run "$2"
  if [ "$_cairn_test_status" -eq 0 ]; then
    printf 'ok %d - %s\n' "$test_count" "$desc"
    if [ "${CAIRN_TEST_VERBOSE:-}" = 1 ]; then
      _tap_comment <"$CAIRN_TEST_BASE/out"
    fi
  else
    test_failed=$((test_failed + 1))
    printf 'not ok %d - %s\n' "$test_count" "$desc"
    _cairn_test_report_failure "$2"
  fi
}

# test_expect_failure 'description' 'body': a known breakage (TAP TODO).
# When the body starts passing, it reports "ok ... # TODO", which meson
# counts as an unexpected pass: turn it into test_expect_success.
test_expect_failure() {
  _cairn_test_check_args $# test_expect_failure
  test_count=$((test_count + 1))
  local desc
  desc=$(_tap_desc "$1")
  _cairn_test_run "$2"
  if [ "$_cairn_test_status" -eq 0 ]; then
    test_fixed=$((test_fixed + 1))
    printf 'ok %d - %s # TODO known breakage vanished\n' "$test_count" "$desc"
  else
    test_broken=$((test_broken + 1))
    printf 'not ok %d - %s # TODO known breakage\n' "$test_count" "$desc"
    if [ "${CAIRN_TEST_VERBOSE:-}" = 1 ]; then
      _tap_comment <"$CAIRN_TEST_BASE/out"
    fi
  fi
}

# test_skip 'description' 'reason'
test_skip() {
  test_count=$((test_count + 1))
  test_skipped=$((test_skipped + 1))
  printf 'ok %d - %s # SKIP %s\n' "$test_count" "$(_tap_desc "$1")" "${2:-}"
}

# test_skip_all 'reason': the whole script does not apply here.
test_skip_all() {
  printf '1..0 # SKIP %s\n' "$1"
  test_done_called=1
  exit 0
}

# test_done: the plan (last, as TAP allows) and the exit status.
test_done() {
  local summary
  if [ "$test_failed" -eq 0 ]; then
    summary="passed all $test_count test(s)"
  else
    summary="failed $test_failed among $test_count test(s)"
  fi
  [ "$test_broken" -eq 0 ] || summary="$summary, $test_broken known breakage(s)"
  [ "$test_fixed" -eq 0 ] || summary="$summary, $test_fixed fixed breakage(s)"
  [ "$test_skipped" -eq 0 ] || summary="$summary, $test_skipped skipped"
  printf '# %s\n' "$summary"
  printf '1..%d\n' "$test_count"
  test_done_called=1
  if [ "$test_failed" -eq 0 ]; then exit 0; else exit 1; fi
}

# ---- assertions (use inside test bodies) -----------------------------------

# test_must_fail_with CODE cmd [args...]: cmd must exit with exactly CODE.
test_must_fail_with() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    if [ "$rc" -gt 128 ]; then
      echo "test_must_fail_with: expected exit $want, got $rc (killed by signal $((rc - 128))): $*"
    else
      echo "test_must_fail_with: expected exit $want, got $rc: $*"
    fi
    return 1
  fi
}

# test_cmp expected actual
test_cmp() {
  diff -u "$1" "$2"
}

# test_grep [!] [grep options] PATTERN FILE: FILE must (with !: must not)
# contain a match; prints FILE when it does not hold. Use `test_grep !`
# rather than `! grep`: errexit ignores a negated command.
test_grep() {
  local negate='' rc=0 file
  if [ "${1:-}" = '!' ]; then
    negate=1
    shift
  fi
  if [ $# -lt 2 ]; then
    echo "test_grep: usage: test_grep [!] [options] PATTERN FILE"
    return 1
  fi
  file=${!#}
  if [ ! -f "$file" ]; then
    echo "test_grep: no file $file"
    return 1
  fi
  grep -q "$@" || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "test_grep: grep failed ($rc): grep $*"
    return 1
  fi
  if [ -z "$negate" ] && [ "$rc" -eq 0 ]; then return 0; fi
  if [ -n "$negate" ] && [ "$rc" -eq 1 ]; then return 0; fi
  if [ -n "$negate" ]; then
    echo "test_grep: unexpected match: grep $*"
  else
    echo "test_grep: no match: grep $*"
  fi
  echo "--- $file:"
  cat "$file"
  echo "---"
  return 1
}

test_path_is_file() {
  [ -f "$1" ] || { echo "test_path_is_file: $1 is not a file"; return 1; }
}

test_path_is_dir() {
  [ -d "$1" ] || { echo "test_path_is_dir: $1 is not a directory"; return 1; }
}

test_path_is_missing() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    echo "test_path_is_missing: $1 exists"
    return 1
  fi
}

# ---- helpers -----------------------------------------------------------------

# write_workflow FILE <<EOF ... EOF
write_workflow() {
  mkdir -p "$(dirname "$1")" && cat >"$1"
}

# journal_snapshot [JOURNAL]: one line per file of the journal (the db, -wal,
# -shm): its sha256, or "absent". Compare two snapshots with test_cmp to
# prove a command wrote nothing. JOURNAL defaults to $CAIRN_JOURNAL, else
# .cairn/journal.db.
journal_snapshot() {
  local db=${1:-${CAIRN_JOURNAL:-.cairn/journal.db}} f
  for f in "$db" "$db-wal" "$db-shm"; do
    if [ -e "$f" ]; then
      sha256sum "$f"
    else
      printf 'absent  %s\n' "$f"
    fi
  done
}

# wait_until SECONDS WHY CMD...: runs CMD every 0.1s until it succeeds;
# after SECONDS fails with "WHY within SECONDSs".
wait_until() {
  local secs=$1 why=$2 tries=$(($1 * 10))
  shift 2
  until "$@"; do
    if [ "$tries" -le 0 ]; then
      echo "$why within ${secs}s"
      return 1
    fi
    tries=$((tries - 1))
    sleep 0.1
  done
}

# wait_for_file FILE SECONDS: polls every 0.1s; fails after SECONDS.
wait_for_file() {
  wait_until "$2" "wait_for_file: $1 did not appear" test -e "$1"
}

# ---- journal and process helpers shared by the scripts ----------------------

# last_run [JOURNAL]: the id of the newest run.
last_run() {
	sqlite3 "${1:-.cairn/journal.db}" \
		"SELECT id FROM runs ORDER BY created_ms DESC, id DESC LIMIT 1"
}

# journal_state: what a refused command must leave as it was (the events,
# the runs and the locks, as sqlite3 dumps them; unlike journal_snapshot,
# not the -wal and -shm files, which come and go with the last connection).
journal_state() {
	q "SELECT count(*) FROM events" &&
	sqlite3 .cairn/journal.db .dump
}

# start_run ARGS...: starts "cairn ARGS" in the background (output in
# bg.out and bg.err); its pid is $BGPID. If the test body ends before
# wait_run, the engine is killed.
start_run() {
	"$CAIRN_BIN" "$@" >bg.out 2>bg.err &
	BGPID=$!
	trap 'if [ -n "${BGPID:-}" ]; then kill -9 "$BGPID" 2>/dev/null; fi' EXIT
}

# wait_run CODE: the background cairn must exit with CODE.
wait_run() {
	local rc=0
	wait "$BGPID" || rc=$?
	BGPID=
	if [ "$rc" -ne "$1" ]; then
		echo "background cairn exited with $rc, expected $1"
		cat bg.out bg.err
		return 1
	fi
}

# q SQL: a query on .cairn/journal.db.
q() { sqlite3 .cairn/journal.db "$@"; }

# step_tail STATE [RUN]: the tail (the last 4 KiB of what the step said)
# of STATE's last action.finished in RUN (default: the last run). A step
# that succeeds keeps its words there, in the journal, and makes no log.
step_tail() {
	q "SELECT json_extract(payload, '\$.tail') FROM events
	   WHERE run_id = '${2:-$(last_run)}' AND kind = 'action.finished'
	   AND state = '$1' ORDER BY seq DESC LIMIT 1"
}

# proc_alive PID: the process exists and is not a zombie (an orphan whose
# parent is gone may stay a zombie where pid 1 does not reap).
proc_alive() {
	local st
	st=$(sed -n 's/^.*) \(.\) .*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# ---- a test folder with its own journal, and kill -9 at every commit ------

# in_dir DIR: makes DIR (under $TRASH), goes there and gives it its own
# journal, DIR/jnl/journal.db (the run logs go beside it).
in_dir() {
	mkdir -p "$TRASH/$1/jnl" && cd "$TRASH/$1" &&
	CAIRN_JOURNAL=$TRASH/$1/jnl/journal.db && export CAIRN_JOURNAL
}

# j SQL: a query on this test's journal.
j() { sqlite3 "$CAIRN_JOURNAL" "$@"; }

# lr: the id of the newest run of this test's journal.
lr() { last_run "$CAIRN_JOURNAL"; }

# entered [LIKE]: the paths of the last run's state.entered events, in
# journal order (only those matching LIKE when given).
entered() {
	j "SELECT state FROM events WHERE run_id = '$(lr)' AND
	   kind = 'state.entered' AND state LIKE '${1:-%}' ORDER BY seq"
}

# once_case K WORKFLOW CODE STATUS: in a fresh folder w, runs WORKFLOW
# (a path from w) killed after journal commit K, resumes it when it was
# left running (the resume must exit CODE), and checks the ledger (every
# effect exactly once: ../expect, sorted; or none when the run never
# started) and that the secret ($SECRET) is nowhere in the journal's
# folder. STATUS is the status of an uninterrupted run. Returns 0, 1 on a
# failure (said why), 2 when the run was not killed (it ended: K is past
# its last commit).
once_case() {
	local k=$1 wf=$2 code=$3 final=$4 st=0 rs=0 status
	rm -rf w && mkdir -p w/jnl && cd w || return 1
	CAIRN_JOURNAL=$PWD/jnl/journal.db
	export CAIRN_JOURNAL
	CAIRN_TEST_KILL_AFTER_COMMIT=$k "$CAIRN_BIN" run "$wf" >run.out 2>&1 || st=$?
	if [ "$st" -ne 137 ]; then
		[ "$st" -eq "$code" ] || { echo "kill after $k: the run exited $st"; return 1; }
		sort ledger >got && test_cmp ../expect got || return 1
		cd ..
		return 2
	fi
	status=$(j "SELECT status FROM runs" 2>/dev/null) || status=
	case $status in
	"")
		test_path_is_missing ledger || return 1 ;;
	running)
		RESUMED=$((RESUMED + 1))
		"$CAIRN_BIN" resume >res.out 2>&1 || rs=$?
		if [ "$rs" -ne "$code" ]; then
			echo "kill after $k: resume exited $rs"
			cat res.out
			return 1
		fi
		sort ledger >got
		test_cmp ../expect got || { echo "kill after $k"; return 1; }
		"$CAIRN_BIN" verify >/dev/null || { echo "kill after $k: verify"; return 1; } ;;
	"$final")
		sort ledger >got && test_cmp ../expect got || return 1 ;;
	*)
		echo "kill after $k: status $status"
		return 1 ;;
	esac
	if grep -rqF "$SECRET" jnl; then
		echo "kill after $k: the secret is in the journal folder"
		return 1
	fi
	cd ..
}

# kill_everywhere WORKFLOW CODE STATUS: once_case at every journal commit
# of the run, from the first until the run is no longer killed; at least
# 5 of the runs must have been left running and resumed (a cairn built
# without -Dtest_hooks=true is never killed).
kill_everywhere() {
	local k=1 rc=0
	RESUMED=0
	while [ $k -le 200 ]; do
		once_case $k "$@" || rc=$?
		if [ $rc -eq 2 ]; then break; fi
		if [ $rc -ne 0 ]; then return 1; fi
		k=$((k + 1))
	done
	echo "$RESUMED runs resumed, the run ended after commit $k"
	[ $rc -eq 2 ] && [ "$RESUMED" -ge 5 ]
}
