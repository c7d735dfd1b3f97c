#!/bin/bash
# t0056-reject: cairn reject ends a run waiting at an approval state: the
# rejection is journaled, the state fails, and the run takes its failure
# path (a rollback, or its use state's on_failure), at once or, after a
# crash, on resume.
. "$(dirname "$0")/lib.sh"

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
    undo: { do: exec, with: { argv: [rm, -f, built] }, idempotent: true }
    next: gate
  gate:
    approval: { approvals: 2, approvers: [alice, bob] }
    next: ship
  ship:
    do: exec
    with: { argv: [touch, shipped] }
    next: done
  done: { succeed: true }
EOF

# status RUN: the run's row status. (A test in a folder of its own names
# its journal: the one here would be found from there.)
status() { q "SELECT status FROM runs WHERE id = '$1'"; }

test_expect_success 'show says the approval state a run waits at is waiting' '
	test_must_fail_with 3 cairn run gated.yaml >out &&
	RUN=$(last_run) &&
	cairn show $RUN >show &&
	test_grep "^gate  *approval  *waiting " show &&
	test_grep "^build  *do  *succeeded " show
'

test_expect_success 'reject by someone not among the approvers: exit 2, nothing journaled' '
	RUN=$(last_run) &&
	journal_snapshot >before &&
	CAIRN_ACTOR=dave test_must_fail_with 2 cairn reject $RUN 2>err &&
	echo "cairn: '\''dave'\'' may not reject run $RUN: only the approvers of state '\''gate'\'' may (alice, bob) (hint: CAIRN_ACTOR says who you are)" >expect &&
	test_cmp expect err &&
	journal_snapshot >after &&
	test_cmp before after &&
	test "$(status $RUN)" = waiting &&
	test_path_is_file built
'

test_expect_success 'reject by an approver: journaled, the state fails, the run rolls back (exit 0)' '
	RUN=$(last_run) &&
	CAIRN_ACTOR=alice cairn approve $RUN &&
	CAIRN_ACTOR=bob cairn reject $RUN --comment "not in the freeze" >out &&
	test_grep "^✗ gate rejected by bob: not in the freeze$" out &&
	test_grep "^→ rollback (rejected)$" out &&
	test_grep "^run $RUN failed in .*: rejected by bob: not in the freeze; rolled back: build$" out &&
	test_path_is_missing built &&
	test_path_is_missing shipped &&
	test "$(status $RUN)" = failed &&
	q "SELECT json_extract(payload, \"\$.actor\") || \"|\" || json_extract(payload, \"\$.comment\") || \"|\" || state FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.rejected\"" >rej &&
	echo "bob|not in the freeze|gate" >expect &&
	test_cmp expect rej &&
	q "SELECT kind FROM events WHERE run_id = \"$RUN\" AND seq > (SELECT seq FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.rejected\") ORDER BY seq LIMIT 5" >kinds &&
	printf "%s\n" run.resumed state.entered state.finished transition rollback.planned >expect &&
	test_cmp expect kinds &&
	cairn show $RUN >show &&
	test_grep "^gate  *approval  *rejected .*rejected by bob: not in the freeze$" show &&
	test_grep "^undo:build  *undo  *succeeded " show &&
	cairn verify >/dev/null
'

test_expect_success 'the account that typed it is journaled beside CAIRN_ACTOR' '
	RUN=$(last_run) &&
	user=$(q "SELECT json_extract(payload, \"\$.user\") FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.rejected\"") &&
	test -n "$user" &&
	test "$user" != bob
'

test_expect_success 'a rejected run cannot be rejected, approved or resumed again' '
	RUN=$(last_run) &&
	journal_snapshot >before &&
	test_must_fail_with 2 cairn reject $RUN 2>err &&
	echo "cairn: run $RUN is not waiting for an approval (it is failed): only a waiting run can be rejected" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn approve $RUN 2>/dev/null &&
	test_must_fail_with 2 cairn resume $RUN 2>/dev/null &&
	journal_snapshot >after &&
	test_cmp before after
'

write_workflow plain.yaml <<\EOF
cairn: 1
name: plain
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'reject of a run that does not wait, of none, or badly asked: exit 2' '
	cairn run plain.yaml >/dev/null &&
	RUN=$(last_run) &&
	test_must_fail_with 2 cairn reject $RUN 2>err &&
	echo "cairn: run $RUN is not waiting for an approval (it is succeeded): only a waiting run can be rejected (hint: '\''cairn rollback $RUN'\'' undoes a succeeded run)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn reject 2>err2 &&
	test_grep "reject needs one run id" err2 &&
	test_must_fail_with 2 cairn reject ZZZZZZZZ 2>err3 &&
	test_grep "ZZZZZZZZ" err3 &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	W=$(last_run) &&
	test_must_fail_with 2 cairn reject $W --comment "$(printf "bad \377")" 2>err4 &&
	test_grep "comment is not UTF-8" err4 &&
	test "$(status $W)" = waiting &&
	cairn reject --help >help &&
	test_grep "^usage: cairn reject RUN" help
'

test_expect_success 'a rollback of a waiting run says reject ends it' '
	W=$(q "SELECT id FROM runs WHERE status = \"waiting\"") &&
	test_must_fail_with 2 cairn rollback $W 2>err &&
	test_grep "or ends with .cairn reject $W., which undoes what it did" err
'

test_expect_success 'reject --json: the events, then a result line with exit_code 0' '
	W=$(q "SELECT id FROM runs WHERE status = \"waiting\"") &&
	CAIRN_ACTOR=alice cairn reject $W --json >out &&
	head -n 1 out | jq -e ".kind == \"approval.rejected\" and .state == \"gate\" and .payload.actor == \"alice\"" &&
	tail -n 1 out | jq -e ".kind == \"result\" and .status == \"failed\" and .exit_code == 0" &&
	test_path_is_missing built
'

write_workflow inner.yaml <<\EOF
cairn: 1
name: inner
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
    undo: { do: exec, with: { argv: [rm, -f, built] } }
    next: gate
  gate: { approval: {}, next: ship }
  ship: { do: exec, with: { argv: [touch, shipped] }, next: done }
  done: { succeed: true }
EOF

write_workflow outer.yaml <<\EOF
cairn: 1
name: outer
start: pre
states:
  pre:
    do: exec
    with: { argv: [touch, pre] }
    undo: { do: exec, with: { argv: [rm, -f, pre] } }
    next: sub
  sub: { use: inner.yaml, next: done, on_failure: fail }
  done: { succeed: true }
EOF

test_expect_success 'in a used workflow the use state fails, and its on_failure decides (fail: nothing undone)' '
	test_must_fail_with 3 cairn run outer.yaml >out &&
	RUN=$(last_run) &&
	test_grep "waits for 1 more approval at state .sub/gate." out &&
	cairn reject $RUN >out &&
	test_grep "^✗ sub/gate rejected by " out &&
	test "$(status $RUN)" = failed &&
	test_path_is_file pre &&
	test_path_is_file built &&
	test_path_is_missing shipped &&
	cairn show $RUN >show &&
	test_grep "^  sub/gate  *approval  *rejected " show &&
	test_grep "^sub  *use  *failed " show &&
	cairn rollback $RUN >/dev/null &&
	test_path_is_missing pre &&
	test_path_is_missing built
'

write_workflow stuck.yaml <<\EOF
cairn: 1
name: stuck
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
    undo: { do: exec, with: { argv: [sh, -c, "test -e fixed && rm -f built"] } }
    next: gate
  gate: { approval: {}, next: done }
  done: { succeed: true }
EOF

test_expect_success 'an undo that fails after a rejection: exit 6, resume finishes the rollback (exit 1: the run failed)' '
	mkdir stuck && cd stuck && cp ../stuck.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run stuck.yaml >/dev/null &&
	RUN=$(last_run) &&
	test_must_fail_with 6 cairn reject $RUN >out &&
	test "$(status $RUN)" = rollback_failed &&
	test_path_is_file built &&
	touch fixed &&
	test_must_fail_with 1 cairn resume $RUN >out &&
	test_grep "^run $RUN failed in .*: rejected by .*; rolled back: build$" out &&
	test "$(status $RUN)" = failed &&
	test_path_is_missing built
'

test_expect_success 'killed at each commit of reject: the run is still waiting, or resume ends it rejected' '
	mkdir crash && cd crash && cp ../gated.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	before=0 after=0 &&
	for k in 1 2 3 4 5 6; do
		rm -f built shipped &&
		test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
		RUN=$(last_run) &&
		st=0 && CAIRN_TEST_KILL_AFTER_COMMIT=$k CAIRN_ACTOR=alice "$CAIRN_BIN" reject $RUN >/dev/null 2>&1 || st=$? &&
		n=$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.rejected\"") &&
		if test "$n" = 0; then
			before=$((before + 1)) &&
			test "$(status $RUN)" = waiting &&
			CAIRN_ACTOR=alice cairn reject $RUN >/dev/null || return 1
		elif test "$(status $RUN)" != failed; then
			test "$st" = 137 &&
			after=$((after + 1)) &&
			cairn show $RUN >show &&
			test_grep "^gate  *approval  *rejected " show &&
			test_must_fail_with 1 cairn resume $RUN >/dev/null || return 1
		fi &&
		test "$(status $RUN)" = failed &&
		test_path_is_missing built &&
		test_path_is_missing shipped &&
		test "$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.rejected\"")" = 1 || return 1
	done &&
	# both cases happened: killed before the rejection was journaled, and
	# between it and the end of the run
	test $before -gt 0 && test $after -gt 0 &&
	cairn verify >/dev/null
'

write_workflow loop.yaml <<\EOF
cairn: 1
name: loop
start: sub
states:
  sub: { use: inner.yaml, next: done, on_failure: again }
  again: { wait: 0s, next: sub }
  done: { succeed: true }
EOF

test_expect_success 'a rejection is spent once the state failed: a loop back into it waits anew' '
	mkdir loop && cd loop && cp ../loop.yaml ../inner.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run loop.yaml >/dev/null &&
	RUN=$(last_run) &&
	test_must_fail_with 3 timeout 20 "$CAIRN_BIN" reject $RUN >out &&
	test_grep "waits for 1 more approval at state .sub/gate." out &&
	test "$(status $RUN)" = waiting &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"approval.waiting\"")" = 2 &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"state.finished\" AND state = \"sub/gate\"")" = 1
'

write_workflow cleanup.yaml <<\EOF
cairn: 1
name: cleanup
start: sub
states:
  sub: { use: inner.yaml, next: done, on_failure: tidy }
  tidy: { do: exec, with: { argv: [sh, -c, "exit 7"] }, next: done, on_failure: fail }
  done: { succeed: true }
EOF

test_expect_success 'reject exits 1 when the failure path it starts fails itself' '
	mkdir tidy && cd tidy && cp ../cleanup.yaml ../inner.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run cleanup.yaml >/dev/null &&
	RUN=$(last_run) &&
	test_must_fail_with 1 cairn reject $RUN --json >out &&
	tail -n 1 out | jq -e ".exit_code == 1 and (.message | test(\"tidy\"))"
'

test_expect_success 'a long comment that ends in a multibyte character: journaled whole, readable' '
	mkdir long && cd long && cp ../gated.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	RUN=$(last_run) &&
	c=$(printf "%01181d\303\251" 0) &&
	CAIRN_ACTOR=alice cairn reject $RUN --comment "$c" >/dev/null &&
	cairn show $RUN --json >show.json &&
	jq -e --arg c "$c" ".states[] | select(.path == \"gate\") | .rejected_by == \"alice\" and .error == \"rejected by alice: \" + \$c" show.json &&
	cairn verify >/dev/null
'

test_done
