#!/bin/bash
# t0007-rollback: rollback after a failure with real commands (plan order,
# parallel branches undone in reverse declaration order whatever order
# they finished in, self.output in an undo, cancelled branches and their
# probes, on_failure fail and STATE), a failing undo (exit 6) and its
# resume, cairn rollback RUN [--dry-run] on request, and the bad input of
# rollback and simulate.
. "$(dirname "$0")/lib.sh"

# ---- fixtures ----------------------------------------------------------------

# prep prints JSON; infra's branches finish c, b, a (c is fastest) and are
# undone c, b, a by declaration; last fails when params.fail says so.
write_workflow rb.yaml <<\EOF
cairn: 1
name: rb
params:
  fail: { default: "" }
  undo_fail: { default: "" }
start: prep
states:
  prep:
    do: exec
    with: { shell: "echo prep >>fwd.txt; echo '{\"version\": 41}'" }
    undo:
      do: exec
      with: { shell: "echo 'undo prep back to {{ self.output.json.version }} from {{ states.prep.output.exit_code }}' >>undo.txt" }
    next: infra
  infra:
    parallel:
      a: { do: exec, with: { shell: "sleep 0.4; echo a >>fwd.txt" },
           undo: { do: exec, with: { shell: "echo 'undo a' >>undo.txt" } } }
      b: { do: exec, with: { shell: "sleep 0.2; echo b >>fwd.txt" },
           undo: { do: exec, with: { shell: "echo 'undo b' | tee -a undo.txt; test '{{ params.undo_fail }}' != b" },
                   retry: { attempts: 2, delay: 10ms } } }
      c: { do: exec, with: { shell: "echo c >>fwd.txt" } }
    next: noundo
  noundo:
    do: exec
    with: { shell: "echo noundo >>fwd.txt" }
    next: last
  last:
    do: exec
    with: { shell: "echo last >>fwd.txt; test '{{ params.fail }}' != last" }
    undo: { do: exec, with: { shell: "echo 'undo last' >>undo.txt" } }
    next: done
  done: { succeed: true }
EOF

# A branch fails while its siblings still run: "probed" has a probe that
# says it did not take effect, "plain" has none.
write_workflow cancel.yaml <<\EOF
cairn: 1
name: cancel
start: first
states:
  first:
    do: exec
    with: { shell: "echo first >>fwd.txt" }
    undo: { do: exec, with: { shell: "echo 'undo first' >>undo.txt" } }
    next: par
  par:
    parallel:
      bad: { do: exec, with: { shell: "sleep 0.2; exit 1" } }
      probed: { do: exec, with: { argv: [sleep, "5"] },
                probe: { do: exec, with: { argv: [test, -e, never.txt] } },
                undo: { do: exec, with: { shell: "echo 'undo probed' >>undo.txt" } } }
      plain: { do: exec, with: { argv: [sleep, "5"] },
               undo: { do: exec, with: { shell: "echo 'undo plain' >>undo.txt" } } }
    next: done
  done: { succeed: true }
EOF

write_workflow failmode.yaml <<\EOF
cairn: 1
name: failmode
start: one
states:
  one:
    do: exec
    with: { shell: "echo one >>fwd.txt" }
    undo: { do: exec, with: { shell: "echo 'undo one' >>undo.txt" } }
    next: two
  two:
    do: exec
    with: { argv: ["false"] }
    on_failure: fail
    next: done
  done: { succeed: true }
EOF

write_workflow slow.yaml <<\EOF
cairn: 1
name: slow
start: nap
states:
  nap:
    do: exec
    with: { shell: "touch started; sleep 30" }
    next: done
  done: { succeed: true }
EOF

reset() { rm -rf .cairn fwd.txt undo.txt; }

# The undo paths of the run's rollback.planned, comma-separated.
planned() {
	q "SELECT json_extract(value, '$.undo_path') FROM events,
	   json_each(json_extract(payload, '$.steps'))
	   WHERE run_id = '$1' AND kind = 'rollback.planned' ORDER BY seq, key" |
		paste -sd, -
}

# ---- rollback after a failure --------------------------------------------------

test_expect_success 'a failure undoes finished states, latest first, branches by declaration' '
	reset &&
	test_must_fail_with 1 cairn run rb.yaml --set fail=last >out 2>err &&
	printf "prep\nc\nb\na\nnoundo\nlast\n" >expect &&
	test_cmp expect fwd.txt &&
	printf "undo b\nundo a\nundo prep back to 41 from 0\n" >expect &&
	test_cmp expect undo.txt &&
	RUN=$(last_run) &&
	echo "undo:infra/b,undo:infra/a,undo:prep" >expect &&
	planned $RUN >actual &&
	test_cmp expect actual
'

test_expect_success 'the plan is journaled with the transition, before the first undo' '
	RUN=$(last_run) &&
	q "SELECT kind || \" \" || state FROM events WHERE run_id = '\''$RUN'\''
	   AND seq >= (SELECT seq FROM events WHERE run_id = '\''$RUN'\'' AND
	               kind = '\''transition'\'' AND json_extract(payload, '\''$.to'\'') = '\''rollback'\'')
	   AND kind IN ('\''transition'\'', '\''rollback.planned'\'', '\''state.entered'\'', '\''run.finished'\'')
	   ORDER BY seq" >actual &&
	printf "%s\n" "transition last" "rollback.planned last" "state.entered undo:infra/b" \
		"state.entered undo:infra/a" "state.entered undo:prep" "run.finished " >expect &&
	test_cmp expect actual &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo failed >expect &&
	test_cmp expect actual
'

test_expect_success 'the message says what was undone; the log of an undo is kept' '
	RUN=$(last_run) &&
	tail -n 1 out >last &&
	test_grep -F "state '\''last'\'' failed: exited with status 1" last &&
	test_grep -F "; rolled back: infra/b, infra/a, prep" last &&
	test_grep "^↶ rollback plan: undo:infra/b, undo:infra/a, undo:prep$" out &&
	test_grep "^--- action attempt 1 ---$" .cairn/runs/$RUN/undo:infra.b.log
'

test_expect_success 'on_failure: fail ends the run without undoing anything' '
	reset &&
	test_must_fail_with 1 cairn run failmode.yaml >out &&
	test_path_is_missing undo.txt &&
	RUN=$(last_run) &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''rollback.planned'\''" >actual &&
	echo 0 >expect &&
	test_cmp expect actual
'

test_expect_success 'a cancelled branch joins the plan unless its probe says it did nothing' '
	reset &&
	test_must_fail_with 1 cairn run cancel.yaml >out &&
	RUN=$(last_run) &&
	echo "undo:par/plain,undo:first" >expect &&
	planned $RUN >actual &&
	test_cmp expect actual &&
	printf "undo plain\nundo first\n" >expect &&
	test_cmp expect undo.txt &&
	q "SELECT state || \" \" || json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind IN ('\''action.finished'\'', '\''probe.finished'\'')
	   AND state LIKE '\''par/%'\'' ORDER BY state" >actual &&
	printf "%s\n" "par/bad failed" "par/plain cancelled" "par/probed cancelled" "par/probed failed" >expect &&
	test_cmp expect actual
'

# ---- a failing undo ---------------------------------------------------------------

test_expect_success 'an undo that fails after its retries: exit 6, what is done and left' '
	reset &&
	test_must_fail_with 6 cairn run rb.yaml --set fail=last --set undo_fail=b >out &&
	RUN=$(last_run) &&
	printf "undo b\nundo b\n" >expect &&
	test_cmp expect undo.txt &&
	tail -n 1 out >last &&
	test_grep -F "run $RUN rollback failed in " last &&
	test_grep -F "undo of '\''infra/b'\'' failed: exited with status 1: undo b (log: $TRASH/.cairn/runs/$RUN/undo:infra.b.log); undone: nothing; left: infra/b, infra/a, prep" last &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo rollback_failed >expect &&
	test_cmp expect actual &&
	cairn status $RUN >st &&
	test_grep "^run $RUN (rb): rollback_failed$" st &&
	test_grep -F "then '\''cairn resume $RUN'\'' retries it and the rest" st &&
	cairn status >all &&
	test_grep "^rb .* $RUN (rollback_failed)$" all &&
	cairn status --json >all.json &&
	jq -e --arg r "$RUN" "select(.workflow == \"rb\") | (.in_progress | not) and .unfinished_run == \$r and .unfinished_status == \"rollback_failed\"" all.json
'

# A dry run says what the real command would do: how far a journaled plan
# got, and the real rollback's refusal with its exit code.
test_expect_success 'rollback --dry-run of a rollback_failed run: each undo done, failed or pending, and the refusal' '
	RUN=$(last_run) &&
	n=$(q "SELECT count(*) FROM events") &&
	test_must_fail_with 2 cairn rollback $RUN 2>err &&
	test_must_fail_with 2 cairn rollback $RUN --dry-run >plan 2>err2 &&
	test_cmp err err2 &&
	test_grep "^cairn: run $RUN is being rolled back already (hint: .cairn resume $RUN. carries on its rollback)$" err2 &&
	grep "^  [0-9]" plan >steps &&
	cat >expect <<-\EOF &&
	  1. infra/b: exec [failed]
	  2. infra/a: exec [pending]
	  3. prep: exec [pending]
	EOF
	test_cmp expect steps &&
	test_grep "^nothing was changed (dry run)$" plan &&
	test_must_fail_with 2 cairn rollback $RUN --dry-run --json >plan.json 2>/dev/null &&
	head -n 1 plan.json | jq -r ".steps[].progress" | paste -sd, >actual &&
	echo failed,pending,pending >expect &&
	test_cmp expect actual &&
	tail -n 1 plan.json | jq -e ".kind == \"result\" and .exit_code == 2" &&
	test "$(q "SELECT count(*) FROM events")" = "$n"
'

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
start: a
states:
  a:
    do: exec
    with: { shell: "echo a >>fwd.txt" }
    undo: { do: exec, with: { shell: "echo undo a >>undo.txt" } }
    next: gate
  gate: { approval: { approvals: 1 }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a run waiting at an approval: rollback and its dry run refuse it alike, and say what goes on' '
	reset &&
	test_must_fail_with 3 cairn run gated.yaml >out &&
	RUN=$(last_run) &&
	test_must_fail_with 2 cairn rollback $RUN 2>err &&
	echo "cairn: run $RUN is waiting: only a finished run is rolled back on request (hint: a waiting run goes on with '\''cairn approve $RUN'\'', then '\''cairn resume $RUN'\'', or ends with '\''cairn reject $RUN'\'', which undoes what it did)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn rollback $RUN --dry-run >plan 2>err2 &&
	test_cmp expect err2 &&
	test_grep "^run $RUN (gated, waiting): a rollback would undo, in this order$" plan &&
	test_grep "^  1. a: exec$" plan &&
	test_path_is_missing undo.txt
'

test_expect_success 'a rollback_failed run resumes with a fixed environment' '
	reset &&
	write_workflow fixable.yaml <<-\EOF &&
	cairn: 1
	name: fixable
	start: a
	states:
	  a:
	    do: exec
	    with: { shell: "echo a >>fwd.txt" }
	    undo: { do: exec, with: { shell: "echo undo a >>undo.txt" } }
	    next: b
	  b:
	    do: exec
	    with: { shell: "echo b >>fwd.txt" }
	    undo: { do: exec, with: { shell: "test -e fixed && echo undo b >>undo.txt" } }
	    next: c
	  c:
	    do: exec
	    with: { argv: ["false"] }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 6 cairn run fixable.yaml >out &&
	test_path_is_missing undo.txt &&
	RUN=$(last_run) &&
	touch fixed &&
	test_must_fail_with 1 cairn resume $RUN >out &&
	printf "undo b\nundo a\n" >expect &&
	test_cmp expect undo.txt &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''rollback.planned'\''" >actual &&
	echo 1 >expect &&
	test_cmp expect actual &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo failed >expect &&
	test_cmp expect actual &&
	test_must_fail_with 2 cairn resume $RUN 2>err &&
	test_grep "already finished" err
'

# ---- rollback on request -----------------------------------------------------------

test_expect_success 'rollback --dry-run prints the plan and writes nothing' '
	reset &&
	cairn run rb.yaml >/dev/null &&
	RUN=$(last_run) &&
	q "SELECT seq, hash FROM events" >before &&
	sha256sum .cairn/journal.db >>before &&
	cairn rollback $RUN --dry-run >out &&
	q "SELECT seq, hash FROM events" >after &&
	sha256sum .cairn/journal.db >>after &&
	test_cmp before after &&
	test_path_is_missing undo.txt &&
	test_grep "^  1\. last: exec$" out &&
	test_grep "^  2\. infra/b: exec$" out &&
	test_grep "^  3\. infra/a: exec$" out &&
	test_grep "^  4\. prep: exec$" out &&
	test_grep -F "     with {\"shell\":\"echo '\''undo prep back to 41 from 0'\'' >>undo.txt\"}" out &&
	cairn rollback $RUN --dry-run --json >out.json &&
	jq -e ".journaled == false and ([.steps[].undo_path] == [\"undo:last\", \"undo:infra/b\", \"undo:infra/a\", \"undo:prep\"]) and
		.steps[3].outputs.json.version == 41 and (.steps[3].undo_inputs.shell | test(\"back to 41\"))" out.json
'

test_expect_success 'rollback RUN undoes a succeeded run: exit 0, status rolled_back' '
	RUN=$(last_run) &&
	cairn rollback $RUN >out &&
	printf "undo last\nundo b\nundo a\nundo prep back to 41 from 0\n" >expect &&
	test_cmp expect undo.txt &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo rolled_back >expect &&
	test_cmp expect actual &&
	q "SELECT kind FROM events WHERE run_id = '\''$RUN'\'' AND kind LIKE '\''rollback.%'\'' ORDER BY seq" >actual &&
	printf "rollback.requested\nrollback.planned\n" >expect &&
	test_cmp expect actual &&
	test_grep "rolled back" out &&
	cairn verify >/dev/null
'

test_expect_success 'a second rollback is refused, one line, nothing written' '
	RUN=$(last_run) &&
	journal_snapshot >before &&
	test_must_fail_with 2 cairn rollback $RUN >out 2>err &&
	journal_snapshot >after &&
	test_cmp before after &&
	test $(wc -l <err) = 1 &&
	test_grep "was already rolled back" err
'

test_expect_success 'a failed run that rolled back by itself is not rolled back again' '
	reset &&
	test_must_fail_with 1 cairn run rb.yaml --set fail=last >/dev/null &&
	RUN=$(last_run) &&
	journal_snapshot >before &&
	test_must_fail_with 2 cairn rollback $RUN 2>err &&
	journal_snapshot >after &&
	test_cmp before after &&
	echo "cairn: run $RUN failed and rolled back by itself: nothing is left to undo (hint: '\''cairn show $RUN'\'' lists what its rollback undid)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn rollback $RUN --dry-run >out 2>err2 &&
	test_grep "the journaled rollback plan" out &&
	test_cmp expect err2 &&
	! grep -v "^nothing was changed" out | grep "^  [0-9]" | grep -v "\[done\]$"
'

# A run that failed and undid nothing: its finished actions are still in
# place, and the user may undo them later, as the dry run shows.
write_workflow undone-nothing.yaml <<\EOF
cairn: 1
name: undone-nothing
params:
  how: { default: choice }
start: a
states:
  a:
    do: exec
    with: { shell: "echo a >>ledger" }
    undo: { do: exec, with: { shell: "echo undo a >>ledger" } }
    next: route
  route:
    choice:
      - when: "params.how == 'fail_state'"
        next: broken
      - when: "params.how == 'on_failure'"
        next: b
  b:
    do: exec
    with: { shell: "exit 1" }
    on_failure: fail
    next: done
  broken: { fail: true, message: "broken on purpose" }
  done: { succeed: true }
EOF

for how in choice fail_state on_failure; do
	test_expect_success "a run failed with nothing undone ($how) is rolled back on request" "
		rm -rf .cairn ledger &&
		test_must_fail_with 1 cairn run undone-nothing.yaml --set how=$how >out &&
		RUN=\$(last_run) &&
		echo a >expect &&
		test_cmp expect ledger &&
		cairn rollback \$RUN --dry-run >plan &&
		test_grep '^  1. a: exec$' plan &&
		cairn rollback \$RUN >out &&
		printf 'a\nundo a\n' >expect &&
		test_cmp expect ledger &&
		test \"\$(q \"SELECT status FROM runs WHERE id = '\$RUN'\")\" = rolled_back &&
		cairn verify >/dev/null &&
		test_must_fail_with 2 cairn rollback \$RUN 2>err &&
		test_grep 'was already rolled back' err
	"
done

test_expect_success 'a run that is still running is not rolled back (exit 4), nor by its dry run' '
	reset &&
	{ cairn run slow.yaml --grace 100ms >slow.out 2>&1 & pid=$!; } &&
	wait_for_file started 10 &&
	RUN=$(last_run) &&
	test_must_fail_with 4 cairn rollback $RUN 2>err &&
	test_grep "is still running" err &&
	test_must_fail_with 4 cairn rollback $RUN --dry-run >plan 2>err2 &&
	test_cmp err err2 &&
	test_grep "^nothing was changed (dry run)$" plan &&
	kill -TERM $pid &&
	{ wait $pid || true; }
'

write_workflow lull.yaml <<\EOF
cairn: 1
name: lull
params:
  nap: { default: "0" }
start: a
states:
  a:
    do: exec
    with: { argv: [sh, -c, "echo a >>ledger; touch started; sleep {{ params.nap }}"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo a >>ledger"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'another live run of the workflow holds its lock: rollback and its dry run exit 4' '
	reset && rm -f ledger &&
	cairn run lull.yaml >/dev/null &&
	OLD=$(last_run) &&
	rm -f started &&
	{ cairn run lull.yaml --set nap=30 --grace 100ms >lull.out 2>&1 & pid=$!; } &&
	wait_for_file started 10 &&
	test_must_fail_with 4 cairn rollback $OLD --allow-superseded 2>err &&
	test_grep "locked" err &&
	test_must_fail_with 4 cairn rollback $OLD --dry-run --allow-superseded >plan 2>err2 &&
	test_cmp err err2 &&
	kill -TERM $pid &&
	{ wait $pid || true; }
'

test_expect_success 'killed between the rollback request and its plan: resume carries out the rollback' '
	hits=0 &&
	for k in 1 2 3 4; do
		reset && rm -f ledger &&
		cairn run lull.yaml >/dev/null &&
		RUN=$(last_run) &&
		{ CAIRN_TEST_KILL_AFTER_COMMIT=$k "$CAIRN_BIN" rollback $RUN >/dev/null 2>&1 || true; } &&
		req=$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"rollback.requested\"") &&
		plan=$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"rollback.planned\"") &&
		if test "$req" = 1 && test "$plan" = 0; then
			hits=$((hits + 1)) &&
			cairn status $RUN >st &&
			test_grep "cairn rollback $RUN" st &&
			cairn resume $RUN >out &&
			test_grep "rolled back" out &&
			test "$(q "SELECT status FROM runs WHERE id = \"$RUN\"")" = rolled_back &&
			test "$(tail -n 1 ledger)" = "undo a" &&
			test "$(q "SELECT count(*) FROM events WHERE run_id = \"$RUN\" AND kind = \"run.finished\"")" = 2 || return 1
		fi || return 1
	done &&
	test $hits -gt 0
'

test_expect_success 'rollback of an unknown run: exit 2, one line' '
	test_must_fail_with 2 cairn rollback 01ZZZZZZZZZZZZZZZZZZZZZZZZ 2>err &&
	test $(wc -l <err) = 1
'

# ---- simulate and plan: bad input ---------------------------------------------------

test_expect_success 'simulate --fail-at a state that does not exist: exit 2, a hint, no journal' '
	rm -rf .cairn &&
	test_must_fail_with 2 cairn simulate rb.yaml --fail-at lats 2>err &&
	test $(wc -l <err) = 1 &&
	test_grep -F "has no action state '\''lats'\'' (hint: action states are prep, infra/a, infra/b, infra/c, noundo, last)" err &&
	test_path_is_missing .cairn
'

test_expect_success 'simulate --fail-at in a workflow without actions: exit 2, says nothing can fail' '
	cat >noaction.yaml <<-\EOF &&
	cairn: 1
	name: noaction
	start: done
	states:
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn simulate noaction.yaml --fail-at done 2>err &&
	echo "cairn: --fail-at '\''done'\'': workflow '\''noaction'\'' has no action states, so nothing in it can fail (hint: leave out --fail-at)" >expect &&
	test_cmp expect err
'

test_expect_success 'simulate --fail-undo of a state without an undo: exit 2' '
	test_must_fail_with 2 cairn simulate rb.yaml --fail-at last --fail-undo noundo 2>err &&
	test_grep -F "states with an undo are prep, infra/a, infra/b, last" err &&
	test_must_fail_with 2 cairn simulate rb.yaml --fail-at last:0 2>err &&
	test_grep "the attempt must be a number from 1" err
'

test_expect_success 'simulate prints the same trace every time and touches nothing' '
	rm -rf .cairn fwd.txt undo.txt &&
	cairn simulate rb.yaml --fail-at last --fail-undo infra/a >one &&
	cairn simulate rb.yaml --fail-at last --fail-undo infra/a >two &&
	test_cmp one two &&
	test_path_is_missing .cairn &&
	test_path_is_missing fwd.txt &&
	test_grep "^↶ rollback plan: undo:infra/b, undo:infra/a, undo:prep$" one &&
	test_grep "^result: rollback_failed; a real run would exit 6$" one &&
	cairn simulate rb.yaml --fail-at last --fail-undo infra/a --json >one.json &&
	cairn simulate rb.yaml --fail-at last --fail-undo infra/a --json >two.json &&
	test_cmp one.json two.json &&
	test_grep ! -e "(log: " -e "cairn resume" one.json &&
	jq -e "select(.kind == \"result\") | .message == \"undo of '\''infra/a'\'' failed: simulated failure; undone: infra/b; left: infra/a, prep\"" one.json
'

test_expect_success 'undo on a choice state is refused with its line and column' '
	write_workflow badundo.yaml <<-\EOF &&
	cairn: 1
	name: badundo
	start: pick
	states:
	  pick:
	    choice: []
	    default: done
	    undo: { do: exec, with: { argv: ["true"] } }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate badundo.yaml 2>err &&
	test_grep -F "badundo.yaml:8:5: error: key '\''undo'\'' is not allowed in choice state '\''pick'\''" err
'

test_expect_success 'plan prints the happy path and where each failure leads' '
	cairn plan rb.yaml >out &&
	test_grep "^happy path: prep → infra → noundo → last → done → succeeded (exit 0)$" out &&
	test_grep -E "^  last +→ rollback: undo:infra/b, undo:infra/a, undo:prep → failed \(exit 1\)$" out &&
	test_grep -E "^  prep +→ rollback, nothing to undo → failed \(exit 1\)$" out &&
	cairn plan failmode.yaml >out &&
	test_grep -E "^  two +→ fail, nothing undone → failed \(exit 1\)$" out
'

# A dry run refuses what the real rollback refuses: a workflow file, or a
# file it uses, changed since the run (the real one is exit 2 without
# --allow-changed; its dry run said exit 0).
test_expect_success 'rollback --dry-run of a run whose workflow changed: the refusal of the real one, exit 2' '
	mkdir changed && cd changed &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	mkdir lib &&
	write_workflow lib/part.yaml <<-\EOF &&
	cairn: 1
	name: part
	start: a
	states:
	  a: { do: exec, with: { argv: ["true"] }, undo: { do: exec, with: { argv: ["true"] } }, next: done }
	  done: { succeed: true }
	EOF
	write_workflow top.yaml <<-\EOF &&
	cairn: 1
	name: top
	start: one
	states:
	  one: { use: lib/part.yaml, next: done }
	  done: { succeed: true }
	EOF
	cairn run top.yaml >/dev/null &&
	R=$(last_run) &&
	echo "# changed" >>lib/part.yaml &&
	test_must_fail_with 2 cairn rollback $R 2>real &&
	echo "cairn: workflow file '\''$PWD/top.yaml'\'' (or a workflow file it uses) changed since run $R started, and its undo steps come from it (hint: review the change, then roll back with --allow-changed)" >expect &&
	test_cmp expect real &&
	test_must_fail_with 2 cairn rollback $R --dry-run >plan 2>dry &&
	test_cmp real dry &&
	test_grep "^  1. one/a: exec$" plan &&
	cairn rollback $R --dry-run --allow-changed >/dev/null &&
	test "$(q "SELECT status FROM runs WHERE id = '\''$R'\''")" = succeeded
'

test_done
