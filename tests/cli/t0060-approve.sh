#!/bin/bash
# t0060-approve: cairn approve RUN refuses, with nothing journaled, an
# approval that could not count or that resume would refuse to act on,
# and says how far the state got and what comes next.
. "$(dirname "$0")/lib.sh"

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
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

status() { q "SELECT status FROM runs WHERE id = '$1'"; }
grants() {
	q "SELECT count(*) FROM events WHERE run_id = '$1' AND kind = 'approval.granted'"
}

test_expect_success 'an actor who is not an approver: exit 2, nothing journaled' '
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	RUN=$(last_run) &&
	journal_snapshot >before &&
	CAIRN_ACTOR=dave test_must_fail_with 2 cairn approve $RUN >out 2>err &&
	echo "cairn: '\''dave'\'' may not approve run $RUN: only the approvers of state '\''gate'\'' may (alice, bob) (hint: CAIRN_ACTOR says who you are)" >expect &&
	test_cmp expect err &&
	test_cmp /dev/null out &&
	journal_snapshot >after &&
	test_cmp before after
'

test_expect_success 'each approval says how many the state has and needs; the last says resume' '
	RUN=$(last_run) &&
	CAIRN_ACTOR=alice cairn approve $RUN >out1 &&
	echo "approved run $RUN at state '\''gate'\'' by alice (1 of 2); it waits for 1 more approval" >expect &&
	test_cmp expect out1 &&
	CAIRN_ACTOR=alice cairn approve $RUN >out2 &&
	echo "approved run $RUN at state '\''gate'\'' by alice again: an actor counts once (1 of 2); it waits for 1 more approval" >expect &&
	test_cmp expect out2 &&
	test "$(grants $RUN)" = 2 &&
	CAIRN_ACTOR=bob cairn approve $RUN --json >out3 &&
	jq -S -c . out3 >got &&
	echo "{\"actor\":\"bob\",\"again\":false,\"have\":2,\"need\":2,\"run\":\"$RUN\",\"state\":\"gate\"}" >expect &&
	test_cmp expect got &&
	cairn resume $RUN >/dev/null &&
	test "$(status $RUN)" = succeeded &&
	test_path_is_file shipped
'

test_expect_success 'a run that does not wait, or a record: exit 2, with what to do' '
	RUN=$(last_run) &&
	test_must_fail_with 2 cairn approve $RUN 2>err &&
	test_grep "^cairn: run $RUN is not waiting for an approval (it is succeeded; hint: .cairn approve ENV --workflow W --release R. approves a promotion)$" err &&
	cairn approve dev --workflow gated --release 1 >/dev/null &&
	REC=$(last_run) &&
	test_must_fail_with 2 cairn approve $REC 2>err &&
	test_grep "it is approved" err &&
	cairn show $REC >show &&
	test_grep "^workflow  gated$" show &&
	test_grep "^a promotion record (approved): it holds one event" show &&
	test_grep ! "^STATE" show &&
	test_must_fail_with 2 cairn approve dev --workflow gated --release 1 --allow-changed 2>err &&
	test_grep "^cairn: approve ENV takes no --allow-changed or --allow-superseded" err
'

test_expect_success 'a changed workflow file: refused unless --allow-changed, which resume then needs too' '
	mkdir changed && cd changed && cp ../gated.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	RUN=$(last_run) &&
	sed -i "s/touch, shipped/touch, sent/" gated.yaml &&
	journal_snapshot >before &&
	CAIRN_ACTOR=alice test_must_fail_with 2 cairn approve $RUN 2>err &&
	test_grep "^cairn: workflow file .*gated.yaml. changed since run $RUN started (hint: review the change, then approve with --allow-changed)$" err &&
	journal_snapshot >after &&
	test_cmp before after &&
	CAIRN_ACTOR=alice cairn approve $RUN --allow-changed >/dev/null &&
	CAIRN_ACTOR=bob cairn approve $RUN --allow-changed >out &&
	test_grep "(2 of 2); go on with .cairn resume $RUN --allow-changed.$" out &&
	cairn resume $RUN --allow-changed >/dev/null &&
	test_path_is_file sent
'

test_expect_success 'a file whose state is no longer an approval, or that does not load: exit 2' '
	mkdir gone && cd gone && cp ../gated.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	RUN=$(last_run) &&
	journal_snapshot >before &&
	sed -i "s/approval: { approvals: 2, approvers: \[alice, bob\] }/do: exec\n    with: { argv: [\"true\"] }/" gated.yaml &&
	cairn validate gated.yaml >/dev/null &&
	CAIRN_ACTOR=alice test_must_fail_with 2 cairn approve $RUN --allow-changed 2>err &&
	test_grep "^cairn: run $RUN waits at state .gate., which the workflow file .*gated.yaml. no longer has as an approval state$" err &&
	rm gated.yaml &&
	CAIRN_ACTOR=alice test_must_fail_with 2 cairn approve $RUN 2>err &&
	test_grep "run $RUN cannot be approved until its workflow file loads" err &&
	journal_snapshot >after &&
	test_cmp before after
'

write_workflow inner.yaml <<\EOF
cairn: 1
name: inner
start: gate
states:
  gate: { approval: { approvers: [carol] }, next: ship }
  ship: { do: exec, with: { argv: [touch, shipped] }, next: done }
  done: { succeed: true }
EOF

write_workflow outer.yaml <<\EOF
cairn: 1
name: outer
start: sub
states:
  sub: { use: inner.yaml, next: done }
  done: { succeed: true }
EOF

test_expect_success 'an approval state of a used workflow: its own approvers, by its path' '
	mkdir used && cd used && cp ../inner.yaml ../outer.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 3 cairn run outer.yaml >/dev/null &&
	RUN=$(last_run) &&
	CAIRN_ACTOR=alice test_must_fail_with 2 cairn approve $RUN 2>err &&
	test_grep "may not approve run $RUN: only the approvers of state .sub/gate. may (carol)" err &&
	CAIRN_ACTOR=carol cairn approve $RUN >out &&
	test_grep "^approved run $RUN at state .sub/gate. by carol (1 of 1); go on with .cairn resume $RUN.$" out &&
	cairn resume $RUN >/dev/null &&
	test_path_is_file shipped
'

test_done
