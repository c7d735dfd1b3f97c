#!/bin/bash
# t0057-superseded: resume, rollback and reject refuse a run that a newer
# run of the same workflow and environment replaced (it started after it
# and succeeded), unless --allow-superseded, which is journaled.
. "$(dirname "$0")/lib.sh"

# The first run of each test dies in step b (the engine is killed, as by a
# crash) while a marker file is missing; later runs and resumes pass.
write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  release: { default: "1.0.0" }
environments:
  dev: {}
  staging: {}
start: a
states:
  a:
    do: exec
    with: { argv: [sh, -c, "echo {{ params.release }} >> deployed"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo {{ params.release }} >> deployed"] } }
    next: b
  b:
    do: exec
    with: { argv: [sh, -c, "test -e crashed || { touch crashed; kill -9 $PPID; }"] }
    idempotent: true
    next: gate
  gate: { approval: {}, next: done }
  done: { succeed: true }
EOF

# crash_run ARGS...: a run of app.yaml that the engine dies in; prints its id.
crash_run() {
	rm -f crashed
	"$CAIRN_BIN" run app.yaml "$@" >/dev/null 2>&1
	last_run
}

# finish RUN: approve RUN, waiting at the gate, and resume it to its end.
finish() {
	cairn approve "$1" >/dev/null && cairn resume "$1" >/dev/null
}

status() { q "SELECT status FROM runs WHERE id = '$1'"; }

test_expect_success 'resume of a run that a newer succeeded run replaced: exit 2, nothing journaled' '
	A=$(crash_run --env dev) &&
	test "$(status $A)" = running &&
	test_must_fail_with 3 cairn run app.yaml --env dev --set release=1.1.0 >/dev/null &&
	B=$(last_run) &&
	finish $B &&
	test "$(status $B)" = succeeded &&
	journal_snapshot >before &&
	test_must_fail_with 2 cairn resume $A 2>err &&
	echo "cairn: run $A was replaced: run $B of '\''app'\'' in dev, started after it, has succeeded (release 1.1.0), and resuming it would carry on an older deploy over that one (hint: '\''cairn status'\'' shows what is live; --allow-superseded if that is what you want, or '\''cairn abandon $A'\'' ends it where it stands)" >expect &&
	test_cmp expect err &&
	journal_snapshot >after &&
	test_cmp before after &&
	cairn status $A >st &&
	test_grep "^run $B, started after it, has succeeded: going on with this one, or undoing it, would act under that deploy (add --allow-superseded to resume, rollback or reject if you mean it); .cairn abandon $A. ends it where it stands$" st &&
	test_grep ! "continue it with" st
'

test_expect_success 'resume --allow-superseded goes on and journals which run it went over' '
	A=$(q "SELECT id FROM runs WHERE release = \"1.0.0\"") &&
	B=$(q "SELECT id FROM runs WHERE release = \"1.1.0\"") &&
	test_must_fail_with 3 cairn resume $A --allow-superseded >out &&
	test "$(status $A)" = waiting &&
	test "$(q "SELECT json_extract(payload, \"\$.superseded_by\") FROM events WHERE run_id = \"$A\" AND kind = \"run.resumed\"")" = "$B" &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 2 cairn approve $A 2>err0 &&
	test_grep "run $A was replaced: run $B .*, and approving it would let .cairn resume. carry on an older deploy" err0 &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after &&
	cairn approve $A --allow-superseded >out &&
	test_grep "; go on with .cairn resume $A --allow-superseded.$" out &&
	test_must_fail_with 2 cairn resume $A 2>err &&
	test_grep "run $A was replaced: run $B" err &&
	cairn resume $A --allow-superseded >/dev/null &&
	test "$(status $A)" = succeeded
'

test_expect_success 'rollback of a run that a newer one replaced: refused, and its dry run says so' '
	A=$(q "SELECT id FROM runs WHERE release = \"1.0.0\"") &&
	B=$(q "SELECT id FROM runs WHERE release = \"1.1.0\"") &&
	q "SELECT count(*), max(seq) FROM events" >before &&
	test_must_fail_with 2 cairn rollback $A 2>err &&
	test_grep "run $A was replaced: run $B .*, and rolling it back would run its undo steps under that deploy" err &&
	test_grep ! "cairn abandon" err &&
	test_must_fail_with 2 cairn rollback $A --dry-run >plan 2>err2 &&
	test_grep "^  1. a: exec$" plan &&
	test_cmp err err2 &&
	cairn rollback $A --dry-run --allow-superseded >/dev/null &&
	q "SELECT count(*), max(seq) FROM events" >after &&
	test_cmp before after &&
	cp deployed deployed.before &&
	cairn rollback $A --allow-superseded >/dev/null &&
	test "$(status $A)" = rolled_back &&
	test "$(q "SELECT json_extract(payload, \"\$.superseded_by\") FROM events WHERE run_id = \"$A\" AND kind = \"rollback.requested\"")" = "$B" &&
	test "$(tail -n 1 deployed)" = "undo 1.0.0"
'

test_expect_success 'the newest succeeded run is not superseded: its rollback goes on' '
	B=$(q "SELECT id FROM runs WHERE release = \"1.1.0\"") &&
	cairn rollback $B >/dev/null &&
	test "$(status $B)" = rolled_back &&
	test "$(tail -n 1 deployed)" = "undo 1.1.0"
'

test_expect_success 'newer runs that did not succeed, or ran in another environment, do not count' '
	mkdir other && cd other && cp ../app.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	A=$(crash_run --env dev) &&
	test_must_fail_with 3 cairn run app.yaml --env dev --set release=2.0.0 >/dev/null &&
	F=$(last_run) &&
	CAIRN_ACTOR=x cairn reject $F >/dev/null &&
	test "$(status $F)" = failed &&
	test_must_fail_with 3 cairn run app.yaml --env staging --set release=2.1.0 >/dev/null &&
	S=$(last_run) &&
	finish $S &&
	test "$(status $S)" = succeeded &&
	test_must_fail_with 3 cairn resume $A >/dev/null &&
	test "$(status $A)" = waiting
'

test_expect_success 'reject, and approve then resume, of a waiting run that a newer one replaced' '
	mkdir wait && cd wait && cp ../app.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	touch crashed &&
	test_must_fail_with 3 cairn run app.yaml --env dev >/dev/null &&
	W=$(last_run) &&
	test_must_fail_with 3 cairn run app.yaml --env dev --set release=3.0.0 >/dev/null &&
	N=$(last_run) &&
	finish $N &&
	test_must_fail_with 2 cairn reject $W 2>err &&
	test_grep "run $W was replaced: run $N .*, and rejecting it would run its undo steps under that deploy" err &&
	cairn approve $W --allow-superseded >/dev/null &&
	test_must_fail_with 2 cairn resume $W 2>err2 &&
	test_grep "resuming it would carry on an older deploy over that one" err2 &&
	test "$(status $W)" = waiting &&
	cairn reject $W --allow-superseded >/dev/null &&
	test "$(status $W)" = failed &&
	test "$(tail -n 1 deployed)" = "undo 1.0.0"
'

test_done
