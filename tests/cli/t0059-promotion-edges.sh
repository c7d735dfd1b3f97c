#!/bin/bash
# t0059-promotion-edges: where promotion and approvals met odd workflows:
# a promotion approval inside a loop, --release for a workflow without a
# release param, an 'after' chain longer than 64, control characters in
# what promote prints, and approval gates that only a mix of a state and
# its environment makes impossible.
. "$(dirname "$0")/lib.sh"

# A loop back into an approval state: smoke fails and goes back to the
# gate. A promotion approval record counts for one visit, as an approval
# of the run does; it used to pass the gate on every visit, so the loop
# spun without end.
write_workflow spin.yaml <<\EOF
cairn: 1
name: spin
params: { release: { default: "1.0" } }
environments: { prod: { approvals: 1 } }
start: gate
states:
  gate: { approval: {}, next: smoke }
  smoke: { do: exec, with: { argv: ["false"] }, on_failure: gate, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a promotion approval counts once per visit of an approval state: a loop back waits' '
	mkdir spin && cd spin && cp ../spin.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 5 cairn promote spin.yaml --to prod 2>/dev/null &&
	CAIRN_ACTOR=alice cairn approve prod --workflow spin --release 1.0 >/dev/null &&
	test_must_fail_with 3 timeout 20 "$CAIRN_BIN" promote spin.yaml --to prod >out &&
	R=$(q "SELECT id FROM runs WHERE status = '\''waiting'\''") &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$R'\'' AND kind = '\''action.started'\''")" = 1 &&
	q "SELECT kind || \"|\" || state FROM events WHERE run_id = \"$R\" AND kind IN (\"transition\", \"approval.waiting\") ORDER BY seq" >kinds &&
	printf "%s\n" "transition|gate" "transition|smoke" "approval.waiting|gate" >expect &&
	test_cmp expect kinds &&
	test_grep "waits for 1 more approval at state .gate." out &&
	CAIRN_ACTOR=bob cairn approve prod --workflow spin --release 1.0 >/dev/null &&
	test_must_fail_with 3 timeout 20 "$CAIRN_BIN" resume $R >/dev/null &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$R'\'' AND kind = '\''action.started'\''")" = 2
'

write_workflow norel.yaml <<\EOF
cairn: 1
name: norel
environments:
  dev: {}
  prod: { after: dev }
start: deploy
states:
  deploy: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success '--release for a workflow without a release param: exit 2, nothing journaled' '
	cairn run norel.yaml --env dev >/dev/null &&
	journal_state >before &&
	test_must_fail_with 2 cairn promote norel.yaml --to prod --release 9.9 2>err &&
	echo "cairn: workflow '\''norel'\'' has no '\''release'\'' param, so each of its runs is release \"\": --release 9.9 would check the gates of one release and run another (hint: leave out --release, or declare a '\''release'\'' param)" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after &&
	cairn promote norel.yaml --to prod --release "" >out &&
	test_grep "^promoting release \"\" to prod from run " out
'

test_expect_success 'promote writes the control characters of a release as \xHH' '
	write_workflow esc.yaml <<-\EOF &&
	cairn: 1
	name: esc
	params: { release: { default: "1" } }
	environments:
	  dev: {}
	  prod: { after: dev }
	start: deploy
	states:
	  deploy: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	rel=$(printf "a\033[2Jb") &&
	cairn run esc.yaml --env dev --set "release=$rel" >/dev/null &&
	cairn promote esc.yaml --to prod --release "$rel" >out &&
	test_grep -F "promoting release a\x1b[2Jb to prod" out &&
	test_must_fail_with 5 cairn promote esc.yaml --to prod --release "x$rel" 2>err &&
	test_grep -F "release xa\x1b[2Jb has no succeeded run in dev" err &&
	! grep -q "$(printf "\033")" out err
'

test_expect_success '--through a chain of 70 environments runs all 70, root first' '
	mkdir long && cd long &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	{
		printf "cairn: 1\nname: long\nenvironments:\n  e1: {}\n" &&
		for i in $(seq 2 70); do printf "  e%d: { after: e%d }\n" $i $((i - 1)); done &&
		printf "start: deploy\nstates:\n  deploy: { do: exec, with: { argv: [\"true\"] }, next: done }\n  done: { succeed: true }\n"
	} >long.yaml &&
	cairn promote long.yaml --through e70 >out &&
	test "$(q "SELECT count(*) FROM runs WHERE status = '\''succeeded'\''")" = 70 &&
	q "SELECT env FROM runs ORDER BY created_ms, id" >envs &&
	seq 1 70 | sed "s/^/e/" >expect &&
	test_cmp expect envs
'

test_expect_success 'validate: an approval state that a mix with its environment makes impossible' '
	write_workflow mix.yaml <<-\EOF &&
	cairn: 1
	name: mix
	environments:
	  dev: {}
	  prod: { approvals: 2 }
	start: gate
	states:
	  gate: { approval: { approvers: [alice] }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate mix.yaml 2>err &&
	echo "mix.yaml:8:3: error: approval state '\''gate'\'' can never pass in environment '\''prod'\'': it needs 2 approvals (the environment'\''s) but only 1 approver count (its own) (hint: lower '\''approvals'\'' or list more approvers)" >expect &&
	test_cmp expect err &&
	write_workflow mix2.yaml <<-\EOF &&
	cairn: 1
	name: mix2
	environments:
	  prod: { approvers: [alice] }
	start: gate
	states:
	  gate: { approval: { approvals: 3 }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate mix2.yaml 2>err &&
	test_grep "^mix2.yaml:7:3: error: approval state .gate. can never pass in environment .prod.: it needs 3 approvals (its own) but only 1 approver count (the environment.s)" err &&
	mkdir -p lib &&
	write_workflow lib/gate.yaml <<-\EOF &&
	cairn: 1
	name: gate
	start: gate
	states:
	  gate: { approval: { approvers: [alice] }, next: done }
	  done: { succeed: true }
	EOF
	write_workflow mix3.yaml <<-\EOF &&
	cairn: 1
	name: mix3
	environments:
	  prod: { approvals: 2 }
	start: pre
	states:
	  pre: { use: lib/gate.yaml, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate mix3.yaml 2>err &&
	test_grep "^mix3.yaml:7:3: error: approval state .pre/gate. can never pass in environment .prod." err &&
	write_workflow fine.yaml <<-\EOF &&
	cairn: 1
	name: fine
	environments:
	  prod: { approvals: 2, approvers: [alice, bob] }
	start: gate
	states:
	  gate: { approval: {}, next: done }
	  done: { succeed: true }
	EOF
	cairn validate fine.yaml >/dev/null
'

test_expect_success 'status RUN of a waiting run names the command to approve it' '
	mkdir wait && cd wait &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	write_workflow w.yaml <<-\EOF &&
	cairn: 1
	name: w
	start: gate
	states:
	  gate: { approval: {}, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 3 cairn run w.yaml >/dev/null &&
	R=$(last_run) &&
	cairn status $R >st &&
	test_grep "once it is approved (.cairn approve $R.), or end it with .cairn reject $R.$" st
'

write_workflow held.yaml <<\EOF
cairn: 1
name: held
params: { release: { default: "1.0" } }
environments:
  dev: {}
  prod: { after: dev }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "touch holding; while [ ! -e go ]; do sleep 0.1; done"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'promote --json ends with a result line: on a refusal, and on an input error' '
	mkdir pj && cd pj && cp ../held.yaml . &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	test_must_fail_with 5 cairn promote held.yaml --to prod --release 2.0 --json >out 2>err &&
	test "$(wc -l <out)" = 1 &&
	REC=$(q "SELECT id FROM runs WHERE status = '\''refused'\''") &&
	jq -e --arg rec "$REC" ".kind == \"result\" and .status == \"refused\" and .exit_code == 5 and .record == \$rec and .env == \"prod\" and .release == \"2.0\" and .gate == \"after\" and (.reason | test(\"no succeeded run in dev\"))" out >/dev/null &&
	test_grep "^cairn: promotion to prod refused: " err &&
	test_must_fail_with 2 cairn promote held.yaml --to nowhere --json >out 2>err &&
	test "$(wc -l <out)" = 1 &&
	jq -e ".kind == \"result\" and .status == \"error\" and .exit_code == 2 and (.message | test(\"nowhere\"))" out >/dev/null
'

test_expect_success 'promote while another run holds the lock: exit 4 before any "promoting" line' '
	cd pj &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	touch go && cairn run held.yaml --env dev >/dev/null && rm go holding &&
	start_run promote held.yaml --to prod &&
	wait_for_file holding 10 &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 4 cairn promote held.yaml --to prod >out 2>err &&
	test_cmp /dev/null out &&
	test_grep "^cairn: workflow .held. env .prod. is locked by run " err &&
	test_must_fail_with 4 cairn promote held.yaml --to prod --json >out 2>err &&
	jq -e ".kind == \"result\" and .exit_code == 4" out >/dev/null &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after &&
	touch go &&
	wait_run 0
'

test_done
