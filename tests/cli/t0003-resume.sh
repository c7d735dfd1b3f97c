#!/bin/bash
# t0003-resume: interrupting runs (SIGINT, kill -9) and carrying them on
# with cairn resume: probes, --assume, changed workflow files, locks.
. "$(dirname "$0")/lib.sh"

# ---- fixtures ----------------------------------------------------------------

# long.sh NAME: a long step; it returns at once when the file "go" exists.
cat >long.sh <<\EOF
echo "$1" >>trace.txt
touch "$1.started"
[ -e go ] || sleep 20
touch "$1.done"
EOF

# A non-idempotent step with a probe that says whether it finished.
write_workflow probe.yaml <<\EOF
cairn: 1
name: probe
start: prep
states:
  prep:
    do: exec
    with: { argv: [sh, -c, "echo prep >>trace.txt"] }
    idempotent: true
    next: long
  long:
    do: exec
    with: { argv: [sh, ../long.sh, long] }
    probe:
      do: exec
      with: { argv: [test, -e, long.done] }
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

# The same, but the probe finds that the step took effect.
write_workflow probe-ok.yaml <<\EOF
cairn: 1
name: probe-ok
start: prep
states:
  prep:
    do: exec
    with: { argv: [sh, -c, "echo prep >>trace.txt"] }
    idempotent: true
    next: long
  long:
    do: exec
    with: { argv: [sh, ../long.sh, long] }
    probe:
      do: exec
      with: { argv: [test, -e, long.started] }
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

# orphan.sh: the first attempt records its pids and sleeps; a later one
# notes whether the first one is still alive.
cat >orphan.sh <<\EOF
if [ -e first.pid ]; then
	for p in $(cat first.pid); do
		st=$(sed -n 's/^.*) \(.\) .*$/\1/p' "/proc/$p/stat" 2>/dev/null)
		if [ -n "$st" ] && [ "$st" != Z ]; then
			echo "overlap $p" >>trace.txt
		fi
	done
	echo again >>trace.txt
	exit 0
fi
sleep 20 >/dev/null 2>&1 &
echo "$$ $!" >first.pid.tmp
mv first.pid.tmp first.pid
echo first >>trace.txt
wait
EOF

write_workflow kill9.yaml <<\EOF
cairn: 1
name: kill9
start: step
states:
  step:
    do: exec
    with: { argv: [sh, ../orphan.sh] }
    idempotent: true
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

# Not idempotent, no probe: resume must ask.
write_workflow ask.yaml <<\EOF
cairn: 1
name: ask
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, ../long.sh, deploy] }
    on_failure: recover
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    next: done
  recover:
    do: exec
    with: { argv: [sh, -c, "echo recover >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

# An idempotent long step (resume simply runs it again).
write_workflow simple.yaml <<\EOF
cairn: 1
name: simple
start: long
states:
  long:
    do: exec
    with: { argv: [sh, ../long.sh, long] }
    idempotent: true
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

# A step that ends on its own shortly after it started.
write_workflow short.yaml <<\EOF
cairn: 1
name: short
start: brief
states:
  brief:
    do: exec
    with: { shell: "touch brief.started; sleep 0.5; echo brief >>trace.txt" }
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

export CAIRN_ACTOR=tester@example

# ---- SIGINT, then resume with a probe ------------------------------------------------

test_expect_success 'SIGINT during a long step: exit 3, the run is interrupted' '
	mkdir a && cp probe.yaml a/ &&
	cd a
	start_run run --grace 1s probe.yaml
	wait_for_file long.started 10
	kill -INT "$BGPID"
	wait_run 3
	RUN=$(last_run) &&
	tail -n 1 bg.out >last &&
	echo "run $RUN interrupted by SIGINT; continue it with '\''cairn resume $RUN'\''" >expect &&
	test_cmp expect last &&
	q "SELECT status FROM runs" >actual &&
	echo interrupted >expect &&
	test_cmp expect actual &&
	q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE kind = '\''action.finished'\'' AND state = '\''long'\''" >actual &&
	echo interrupted >expect &&
	test_cmp expect actual &&
	test_path_is_missing long.done
'

test_expect_success 'cairn status RUN says it is interrupted and how to resume' '
	cd a &&
	RUN=$(last_run) &&
	cairn status "$RUN" >out &&
	cat >expect <<-EOF &&
	run $RUN (probe): interrupted, in state '\''long'\''
	continue it with '\''cairn resume $RUN'\''
	EOF
	test_cmp expect out &&
	cairn status --json "$RUN" >out.json &&
	jq -e ".status == \"interrupted\" and .current == \"long\"" out.json
'

test_expect_success 'cairn resume finishes it; the probe said no, so the step ran again' '
	cd a &&
	RUN=$(last_run) &&
	touch go &&
	cairn resume >out &&
	printf "prep\nlong\nlong\nafter\n" >expect &&
	test_cmp expect trace.txt &&
	q "SELECT status FROM runs" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual &&
	q "SELECT kind || '\'' '\'' || attempt || '\'' '\'' || coalesce(json_extract(payload, '\''$.outcome'\''), '\''-'\'')
	   FROM events WHERE state = '\''long'\'' AND kind IN
	   ('\''probe.finished'\'', '\''action.started'\'', '\''action.finished'\'') ORDER BY seq" >actual &&
	cat >expect <<-\EOF &&
	action.started 1 -
	action.finished 1 interrupted
	probe.finished 1 failed
	action.started 2 -
	action.finished 2 succeeded
	EOF
	test_cmp expect actual &&
	q "SELECT count(*) FROM events WHERE kind = '\''run.resumed'\''" >actual &&
	echo 1 >expect &&
	test_cmp expect actual &&
	test_grep -E "^✗ long \(probe: it did not take effect\) failed: exited with status 1 \\(" out &&
	tail -n 1 out >last &&
	test_grep -E "^run $RUN succeeded in " last
'

test_expect_success 'a probe that finds the step took effect: it is not run again' '
	mkdir b && cp probe-ok.yaml b/ &&
	cd b
	start_run run --grace 1s probe-ok.yaml
	wait_for_file long.started 10
	kill -INT "$BGPID"
	wait_run 3
	touch go &&
	cairn resume >out &&
	printf "prep\nlong\nafter\n" >expect &&
	test_cmp expect trace.txt &&
	test_grep -E "^✓ long \(probe: it took effect\) " out &&
	q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events WHERE kind = '\''probe.finished'\''" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual
'

test_expect_success '--grace 0 gives running steps none: they are stopped at once' '
	mkdir g0 && cp short.yaml g0/ &&
	cd g0
	start_run run --grace 0 short.yaml
	wait_for_file brief.started 10
	kill -INT "$BGPID"
	wait_run 3
	test_path_is_missing trace.txt &&
	q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE kind = '\''action.finished'\'' AND state = '\''brief'\''" >actual &&
	test "$(cat actual)" != succeeded
'

test_expect_success 'a step that ends within the grace keeps its success; resume goes on' '
	mkdir g && cp short.yaml g/ &&
	cd g
	start_run run --grace 5s short.yaml
	wait_for_file brief.started 10
	kill -INT "$BGPID"
	wait_run 3
	echo brief >expect &&
	test_cmp expect trace.txt &&
	q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE kind = '\''action.finished'\'' AND state = '\''brief'\''" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual &&
	cairn resume >out &&
	printf "brief\nafter\n" >expect &&
	test_cmp expect trace.txt
'

# ---- kill -9 ----------------------------------------------------------------------

test_expect_success 'kill -9 of the engine leaves its step running' '
	mkdir c && cp kill9.yaml c/ &&
	cd c
	start_run run kill9.yaml
	wait_for_file first.pid 10
	kill -9 "$BGPID"
	wait_run 137
	for p in $(cat first.pid); do
		proc_alive "$p" || { echo "$p is gone already"; exit 1; }
	done
'

test_expect_success 'after kill -9, status shows the run interrupted' '
	cd c &&
	RUN=$(last_run) &&
	cairn status "$RUN" >out &&
	cat >expect <<-EOF &&
	run $RUN (kill9): interrupted, in state '\''step'\''
	continue it with '\''cairn resume $RUN'\''
	EOF
	test_cmp expect out
'

test_expect_success 'after kill -9, history shows the run interrupted' '
	cd c &&
	RUN=$(last_run) &&
	cairn history --json >out &&
	jq -r "[.id, .status] | join(\" \")" out >actual &&
	echo "$RUN interrupted" >expect &&
	test_cmp expect actual
'

test_expect_success 'after kill -9, show calls the step unfinished, not running' '
	cd c &&
	RUN=$(last_run) &&
	cairn show "$RUN" >out &&
	test_grep "^status    interrupted$" out &&
	test_grep "^step  *do  *unfinished " out &&
	! grep -q " running " out
'

test_expect_success 'after kill -9, rollback refuses the run, whose step was cut short, and --dry-run says so' '
	cd c &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 2 cairn rollback "$RUN" >out 2>err &&
	echo "cairn: run $RUN is interrupted, and its step '\''step'\'' was cut short: whether it took effect is for resume to settle before anything is undone (hint: '\''cairn resume $RUN'\'' settles it, by a re-run, its probe or your --assume, and goes on)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn rollback "$RUN" --dry-run >plan 2>err2 &&
	test_grep "^run $RUN ([a-z0-9-]*, interrupted): " plan &&
	test_grep "^nothing was changed (dry run)$" plan &&
	test_cmp err err2 &&
	journal_state >after &&
	test_cmp before after
'

# history shows cli_run_status() (a "running" run whose engine is gone is
# "interrupted") but --status filters on the stored runs.status.
test_expect_success 'history --status interrupted lists the run whose engine died' '
	cd c &&
	RUN=$(last_run) &&
	cairn history --json --status interrupted >out &&
	jq -r .id out >actual &&
	echo "$RUN" >expect &&
	test_cmp expect actual &&
	cairn history --json --status running >out &&
	test_cmp /dev/null out
'

test_expect_success 'resume RUN stops the orphaned process group first, then finishes' '
	cd c &&
	RUN=$(last_run) &&
	cairn resume "$RUN" >out &&
	printf "first\nagain\nafter\n" >expect &&
	test_cmp expect trace.txt &&
	for p in $(cat first.pid); do
		if proc_alive "$p"; then
			echo "$p survived the resume"
			kill -9 "$p"
			exit 1
		fi
	done &&
	q "SELECT status FROM runs" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual
'

# ---- no probe: --assume ---------------------------------------------------------------

test_expect_success 'setup: interrupt a non-idempotent step without probe' '
	mkdir d && cp ask.yaml d/ &&
	cd d
	start_run run --grace 1s ask.yaml
	wait_for_file deploy.started 10
	kill -INT "$BGPID"
	wait_run 3
	echo deploy >expect &&
	test_cmp expect trace.txt
'

test_expect_success 'resume refuses to guess: exit 3, says what --assume would do' '
	cd d &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 3 cairn resume "$RUN" >out 2>err &&
	test_cmp /dev/null err &&
	cat >expect <<-EOF &&
	run $RUN needs a decision: state '\''deploy'\'' was running (attempt 1) when the run stopped; it is not idempotent and has no probe, so cairn cannot tell whether it took effect: check, then run '\''cairn resume $RUN --assume succeeded'\'' to count it as done and go on to after, or '\''cairn resume $RUN --assume failed'\'' to treat the attempt as failed (retry or on_failure)
	EOF
	test_cmp expect out &&
	journal_state >after &&
	test_cmp before after &&
	echo deploy >expect &&
	test_cmp expect trace.txt
'

test_expect_success 'the same without a run id, and with --json' '
	cd d &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 3 cairn resume >out &&
	test_grep "^run $RUN needs a decision: " out &&
	test_must_fail_with 3 cairn resume --json "$RUN" >out.json &&
	jq -e --arg run "$RUN" ".kind == \"result\" and .exit_code == 3 and .status == \"waiting\" and
		.run == \$run and .state == \"deploy\" and (.message|contains(\"--assume succeeded\"))" out.json &&
	journal_state >after &&
	test_cmp before after
'

# The dead engine's step must not go on while the operator checks: it is
# stopped before the question, as before a re-run.
write_workflow ask9.yaml <<\EOF
cairn: 1
name: ask9
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, 'echo $$ >>pids; sleep 30 & echo $! >>pids; wait; touch late.done'] }
    on_failure: done
    next: done
  done: { succeed: true }
EOF

# two_pids: the step wrote its shell's and its child's pid.
two_pids() { [ -f pids ] && [ "$(wc -l <pids)" -ge 2 ]; }

test_expect_success 'after kill -9, resume stops the step before it asks' '
	mkdir k && cp ask9.yaml k/ &&
	cd k
	start_run run ask9.yaml
	wait_until 10 "the step did not start" two_pids &&
	kill -9 "$BGPID" &&
	wait_run 137 &&
	for p in $(cat pids); do
		proc_alive "$p" || { echo "$p is gone before the resume"; exit 1; }
	done &&
	RUN=$(last_run) &&
	test_must_fail_with 3 cairn resume "$RUN" >out &&
	test_grep "needs a decision: state '\''deploy'\'' was running" out &&
	for p in $(cat pids); do
		if proc_alive "$p"; then
			echo "$p still runs while cairn asks"
			kill -9 "$p"
			exit 1
		fi
	done &&
	cairn resume "$RUN" --assume failed >out
'

test_expect_success 'resume --assume succeeded goes on; decision.assumed is journaled' '
	cd d &&
	RUN=$(last_run) &&
	cairn resume "$RUN" --assume succeeded >out &&
	printf "deploy\nafter\n" >expect &&
	test_cmp expect trace.txt &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'') || '\'' '\'' || json_extract(payload, '\''$.actor'\'')
	   FROM events WHERE kind = '\''decision.assumed'\''" >actual &&
	echo "deploy succeeded tester@example" >expect &&
	test_cmp expect actual &&
	test_grep "^! deploy: assumed succeeded (by tester@example)$" out &&
	q "SELECT status FROM runs" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual
'

test_expect_success 'resume --assume failed takes the failure path' '
	mkdir d2 && cp ask.yaml d2/ &&
	cd d2
	start_run run --grace 1s ask.yaml
	wait_for_file deploy.started 10
	kill -INT "$BGPID"
	wait_run 3
	RUN=$(last_run) &&
	cairn resume "$RUN" --assume failed >out &&
	printf "deploy\nrecover\n" >expect &&
	test_cmp expect trace.txt &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE kind = '\''decision.assumed'\''" >actual &&
	echo "deploy failed" >expect &&
	test_cmp expect actual &&
	q "SELECT json_extract(payload, '\''$.to'\'') || '\'' '\'' || json_extract(payload, '\''$.reason'\'')
	   FROM events WHERE kind = '\''transition'\'' AND state = '\''deploy'\''" >actual &&
	echo "recover on_failure" >expect &&
	test_cmp expect actual
'

# Two branches interrupted at once: one that needs a decision, one that
# is idempotent (re-run, never decided by a plain --assume).
write_workflow two.yaml <<\EOF
cairn: 1
name: two
start: both
states:
  both:
    parallel:
      ask:
        do: exec
        with: { argv: [sh, ../long.sh, ask] }
      idem:
        do: exec
        with: { argv: [sh, ../long.sh, idem] }
        idempotent: true
    on_failure: recover
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, "echo after >>trace.txt"] }
    next: done
  recover:
    do: exec
    with: { argv: [sh, -c, "echo recover >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

# kill_two DIR: in a fresh DIR, a run of two.yaml killed (-9) while both
# branches run.
kill_two() {
	mkdir "$1" && cp two.yaml "$1"/ && cd "$1" &&
	start_run run two.yaml &&
	wait_for_file ask.started 10 && wait_for_file idem.started 10 &&
	kill -9 "$BGPID" &&
	wait_run 137
}

test_expect_success 'two branches interrupted: only the one that needs it is asked about; a plain --assume leaves the idempotent one to re-run' '
	kill_two m1 &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 3 cairn resume >out &&
	test_grep "needs a decision: state .both/ask. was running (attempt 1)" out &&
	test_grep ! "both/idem" out &&
	test_must_fail_with 3 cairn resume --json >out.json &&
	tail -n 1 out.json | jq -e ".decide == [\"both/ask\"]" &&
	journal_state >after &&
	test_cmp before after &&
	touch go &&
	cairn resume --assume succeeded >out &&
	grep -c "^idem$" trace.txt >n && echo 2 >expect && test_cmp expect n &&
	grep -c "^ask$" trace.txt >n && echo 1 >expect && test_cmp expect n &&
	test "$(tail -n 1 trace.txt)" = after &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'')
	   FROM events WHERE kind = '\''decision.assumed'\''" >actual &&
	echo "both/ask succeeded" >expect &&
	test_cmp expect actual
'

test_expect_success '--assume PATH=ANSWER decides that step, even an idempotent one; a path that decides nothing is refused' '
	kill_two m2 &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume --assume both/ask=failed --assume both/zz=failed >out 2>err &&
	echo "cairn: run $RUN has no interrupted step '\''both/zz'\'': --assume both/zz=failed would decide nothing (hint: '\''cairn resume $RUN'\'' without it names the steps to decide)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn resume --assume both/ask=failed --assume failed 2>err &&
	echo "cairn: run $RUN: every step to decide has its own --assume PATH=...: the plain --assume failed would decide nothing (hint: leave it out)" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after &&
	touch go &&
	cairn resume --assume both/idem=succeeded --assume both/ask=failed >out &&
	grep -c "^idem$" trace.txt >n && echo 1 >expect && test_cmp expect n &&
	test "$(tail -n 1 trace.txt)" = recover &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'')
	   FROM events WHERE kind = '\''decision.assumed'\'' ORDER BY state" >actual &&
	printf "both/ask failed\nboth/idem succeeded\n" >expect &&
	test_cmp expect actual &&
	q "SELECT json_extract(payload, '\''$.assume_steps'\'') FROM events
	   WHERE kind = '\''run.resumed'\''" >actual &&
	echo "[\"both/idem=succeeded\",\"both/ask=failed\"]" >expect &&
	test_cmp expect actual
'

# Two branches that both need a decision, each with an undo.
write_workflow twoask.yaml <<\EOF
cairn: 1
name: twoask
start: both
states:
  both:
    parallel:
      a:
        do: exec
        with: { argv: [sh, ../long.sh, a] }
        undo: { do: exec, with: { argv: [sh, -c, "echo undo-a >>trace.txt"] } }
      b:
        do: exec
        with: { argv: [sh, ../long.sh, b] }
        undo: { do: exec, with: { argv: [sh, -c, "echo undo-b >>trace.txt"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'both branches answered failed: each journaled as decided, neither cancelled nor undone' '
	mkdir m3 && cp twoask.yaml m3/ && cd m3 &&
	start_run run twoask.yaml &&
	wait_for_file a.started 10 && wait_for_file b.started 10 &&
	kill -9 "$BGPID" &&
	wait_run 137 &&
	touch go &&
	test_must_fail_with 1 cairn resume --assume both/a=failed --assume both/b=failed >out &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'')
	   FROM events WHERE kind = '\''decision.assumed'\'' ORDER BY state" >actual &&
	printf "both/a failed\nboth/b failed\n" >expect &&
	test_cmp expect actual &&
	test "$(q "SELECT count(*) FROM events WHERE kind = '\''action.finished'\''
	           AND json_extract(payload, '\''$.outcome'\'') = '\''cancelled'\''")" = 0 &&
	test_grep ! "undo-" trace.txt
'

write_workflow waits.yaml <<\EOF
cairn: 1
name: waits
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: w }
  w: { wait: 30s, next: b }
  b: { do: exec, with: { argv: [sh, -c, "echo b >>trace.txt"] }, next: done }
  done: { succeed: true }
EOF

# in_wait: the run has entered its wait state.
in_wait() { [ "$(q "SELECT count(*) FROM events WHERE kind = 'state.entered' AND state = 'w'" 2>/dev/null)" = 1 ]; }

test_expect_success '--assume where nothing needs deciding: exit 2, nothing journaled' '
	mkdir -p n && cp waits.yaml n/ &&
	cd n
	start_run run waits.yaml
	wait_until 10 "the run did not reach its wait" in_wait &&
	kill -INT "$BGPID" &&
	wait_run 3 &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume "$RUN" --assume failed >out 2>err &&
	echo "cairn: run $RUN has no interrupted step to decide about: --assume failed would decide nothing (hint: '\''cairn resume $RUN'\'' without it)" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after
'

test_expect_success '--assume takes succeeded, failed or PATH=one of them, one plain answer, each path once' '
	cd d2 &&
	test_must_fail_with 2 cairn resume --assume maybe 2>err &&
	echo "cairn: --assume takes '\''succeeded'\'', '\''failed'\'' or '\''PATH=succeeded|failed'\'', not '\''maybe'\''" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn resume --assume deploy=maybe 2>err &&
	test_grep "not .deploy=maybe." err &&
	test_must_fail_with 2 cairn resume --assume =failed 2>err &&
	test_grep "not .=failed." err &&
	test_must_fail_with 2 cairn resume --assume failed --assume succeeded 2>err &&
	test_grep "give one plain answer" err &&
	test_must_fail_with 2 cairn resume --assume deploy=failed --assume deploy=succeeded 2>err &&
	test_grep "decides step .deploy. twice" err
'

# ---- a changed workflow file ---------------------------------------------------------

test_expect_success 'setup: interrupt a run of simple.yaml' '
	mkdir e && cp simple.yaml e/ &&
	cd e
	start_run run --grace 1s simple.yaml
	wait_for_file long.started 10
	kill -INT "$BGPID"
	wait_run 3
	sha256sum simple.yaml | cut -d" " -f1 >old.sha
'

test_expect_success 'resume refuses a changed workflow file: exit 2, nothing written' '
	cd e &&
	RUN=$(last_run) &&
	echo "# a change" >>simple.yaml &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume "$RUN" >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: workflow file '\''$TRASH/e/simple.yaml'\'' changed since run $RUN started (hint: review the change, then resume with --allow-changed)" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after
'

test_expect_success 'resume or rollback when the workflow file no longer loads: one line, exit 2' '
	cd e &&
	RUN=$(last_run) &&
	cp simple.yaml keep.yaml &&
	printf "broken: [\n" >>simple.yaml &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume "$RUN" >out 2>err &&
	test_cmp /dev/null out &&
	test "$(wc -l <err)" = 1 &&
	test_grep "^$TRASH/e/simple.yaml:[0-9]*:[0-9]*: error: malformed YAML: .*; run $RUN cannot resume until its workflow file loads$" err &&
	test_must_fail_with 2 cairn rollback "$RUN" >out 2>err &&
	test "$(wc -l <err)" = 1 &&
	test_grep "; run $RUN cannot be rolled back until its workflow file loads$" err &&
	mv simple.yaml broken.yaml &&
	test_must_fail_with 2 cairn resume "$RUN" >out 2>err &&
	echo "cairn: cannot read '\''$TRASH/e/simple.yaml'\'': No such file or directory; run $RUN cannot resume until its workflow file loads" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after &&
	mv keep.yaml simple.yaml
'

test_expect_success 'resume --allow-changed goes on and journals workflow.changed' '
	cd e &&
	RUN=$(last_run) &&
	touch go &&
	cairn resume "$RUN" --allow-changed >out &&
	printf "long\nlong\nafter\n" >expect &&
	test_cmp expect trace.txt &&
	sha256sum simple.yaml | cut -d" " -f1 >new.sha &&
	q "SELECT json_extract(payload, '\''$.old_sha256'\'') || '\'' '\'' || json_extract(payload, '\''$.new_sha256'\'')
	   || '\'' '\'' || json_extract(payload, '\''$.actor'\'') FROM events WHERE kind = '\''workflow.changed'\''" >actual &&
	echo "$(cat old.sha) $(cat new.sha) tester@example" >expect &&
	test_cmp expect actual &&
	q "SELECT json_extract(payload, '\''$.allow_changed'\'') FROM events WHERE kind = '\''run.resumed'\''" >actual &&
	echo 1 >expect &&
	test_cmp expect actual
'

test_expect_success 'resume --allow-changed says so on the terminal' '
	cd e &&
	test_grep "^! the workflow file changed since the run started (--allow-changed)$" out
'

test_expect_success 'resume says the run resumed' '
	cd e &&
	RUN=$(last_run) &&
	test_grep "^run $RUN resumed$" out
'

test_expect_success 'resume of a finished run: exit 2' '
	cd e &&
	RUN=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume "$RUN" >out 2>err &&
	echo "cairn: run $RUN already finished (succeeded): nothing to resume" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn resume 2>err &&
	echo "cairn: no unfinished run in this journal to resume" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after
'

test_expect_success 'resume of a finished run whose file is gone, or of a record: exit 2, says why' '
	cd e &&
	RUN=$(last_run) &&
	mkdir -p gone && cp simple.yaml gone/ &&
	cairn run gone/simple.yaml >/dev/null &&
	GONE=$(last_run) &&
	rm gone/simple.yaml &&
	REC=$(cairn approve prod --workflow simple --release 1.0.0 --json | jq -r .record) &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume "$GONE" >out 2>err &&
	echo "cairn: run $GONE already finished (succeeded): nothing to resume" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn resume "$REC" >out 2>err &&
	echo "cairn: $REC is a promotion record (approved), not a run: there is nothing to resume or roll back" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn rollback "$REC" >out 2>err &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after
'

# ---- locks -----------------------------------------------------------------------------

test_expect_success 'a second run of a workflow while one runs: exit 4 naming the holder' '
	mkdir f && cp simple.yaml f/ &&
	cd f
	start_run run simple.yaml
	wait_for_file long.started 10
	echo "$BGPID" >holder.pid
	HOLDER=$(last_run) &&
	q "SELECT count(*) FROM runs" >before &&
	test_must_fail_with 4 cairn run simple.yaml >out 2>err &&
	echo "cairn: workflow '\''simple'\'' is locked by run $HOLDER (pid $BGPID on $(uname -n)) (hint: wait for it to end, or stop it with Ctrl-C or kill $BGPID; '\''cairn status'\'' shows it)" >expect &&
	test_cmp expect err &&
	q "SELECT count(*) FROM runs" >after &&
	test_cmp before after &&
	cairn status "$HOLDER" >status &&
	test_grep "^run $HOLDER (simple): running, in state '\''long'\''$" status
	rc=$?
	kill -9 "$BGPID"
	wait_run 137 && test "$rc" = 0
'

test_expect_success 'resume and run say the lock of an environment in the same words' '
	mkdir fe && sed "s/^name: simple$/name: envd\nenvironments: { dev: {} }/" simple.yaml >fe/envd.yaml &&
	cd fe
	start_run run --grace 1s envd.yaml --env dev
	wait_for_file long.started 10
	kill -INT "$BGPID"
	wait_run 3 &&
	OLD=$(last_run) &&
	rm long.started &&
	start_run run --grace 1s envd.yaml --env dev
	wait_for_file long.started 10
	HOLDER=$(last_run) &&
	test "$HOLDER" != "$OLD" &&
	journal_state >before &&
	test_must_fail_with 4 cairn resume "$OLD" 2>err.resume &&
	test_must_fail_with 4 cairn run envd.yaml --env dev 2>err.run &&
	echo "cairn: workflow '\''envd'\'' env '\''dev'\'' is locked by run $HOLDER (pid $BGPID on $(uname -n)) (hint: wait for it to end, or stop it with Ctrl-C or kill $BGPID; '\''cairn status'\'' shows it)" >expect &&
	test_cmp expect err.resume &&
	test_cmp expect err.run &&
	journal_state >after &&
	test_cmp before after
	rc=$?
	kill -INT "$BGPID"
	wait_run 3 && test "$rc" = 0
'

# Its step still runs: taking the lock over would run the new run
# beside it.
test_expect_success 'after kill -9, a new run waits while the dead run'\''s step runs' '
	cd f &&
	OLD=$(last_run) &&
	q "SELECT count(*) FROM runs" >before &&
	cairn status >st &&
	test_grep "^simple .* $OLD (interrupted)$" st &&
	test_must_fail_with 4 cairn run simple.yaml >out 2>err &&
	test_grep "^cairn: workflow '\''simple'\'' is locked by run $OLD, whose engine is gone but whose step '\''long'\'' still runs (pid [0-9]*) (hint: '\''cairn resume $OLD'\'' carries that run on, stopping or adopting it; or wait until it ends)$" err &&
	q "SELECT count(*) FROM runs" >after &&
	test_cmp before after &&
	pid=$(sed -n "s/.* still runs (pid \([0-9]*\)).*/\1/p" err) &&
	kill -9 -- "-$(ps -o pgid= -p "$pid" | tr -d " ")" &&
	wait_until 10 "the step did not stop" eval "! proc_alive $pid"
'

test_expect_success 'once it has ended, a new run takes the dead lock over (lock.taken_over)' '
	cd f &&
	OLD=$(last_run) &&
	touch go &&
	cairn run simple.yaml >out &&
	NEW=$(last_run) &&
	test "$NEW" != "$OLD" &&
	q "SELECT json_extract(payload, '\''$.run_id'\'') || '\'' '\'' || json_extract(payload, '\''$.pid'\'')
	   FROM events WHERE kind = '\''lock.taken_over'\'' AND run_id = '\''$NEW'\''" >actual &&
	echo "$OLD $(cat holder.pid)" >expect &&
	test_cmp expect actual
'

test_expect_success 'status: a killed run older than the live one is not shown unfinished' '
	cd f &&
	OLD=$(sqlite3 .cairn/journal.db "SELECT id FROM runs ORDER BY created_ms LIMIT 1") &&
	cairn status --json >st.json &&
	jq -e "select(.workflow == \"simple\") | (.live.run != \"$OLD\") and (has(\"unfinished_run\") | not) and (.in_progress | not)" st.json
'

test_expect_success 'the take-over is shown on the terminal' '
	cd f &&
	OLD=$(sqlite3 .cairn/journal.db "SELECT id FROM runs ORDER BY created_ms LIMIT 1") &&
	test_grep "^! took over the lock of run $OLD (pid $(cat holder.pid) is gone)$" out
'

test_expect_success 'resume of the killed run, which the new run replaced, needs --allow-superseded; then stops its orphan and finishes it' '
	cd f &&
	OLD=$(sqlite3 .cairn/journal.db "SELECT id FROM runs ORDER BY created_ms LIMIT 1") &&
	test_must_fail_with 2 cairn resume "$OLD" 2>err &&
	test_grep "run $OLD was replaced: run $(last_run) of .simple., started after it, has succeeded" err &&
	cairn resume "$OLD" --allow-superseded >out &&
	q "SELECT status FROM runs WHERE id = '\''$OLD'\''" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual
'

# A loop enters a state again under the same path. Its first visit here
# leaves a daemon behind on purpose (with the state's markers in its
# environment); the second visit is the step a kill -9 interrupts. The
# daemon is not that step: it must neither hold the lock nor be stopped
# by resume.
write_workflow looped/loop.yaml <<\EOF
cairn: 1
name: looped
start: work
states:
  work:
    do: exec
    with:
      argv:
        - sh
        - -c
        - |
          if [ -e visited ]; then
            echo $$ >second.pid; touch second.started
            i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
            echo '{"again": false}'
          else
            touch visited
            sleep 120 >/dev/null 2>&1 </dev/null & echo $! >daemon.pid
            echo '{"again": true}'
          fi
    idempotent: true
    next: again
  again:
    choice:
      - when: "states.work.output.json.again"
        next: work
    default: done
  done: { succeed: true }
EOF

# loop_killed: runs loop.yaml until its second visit of 'work' runs, then
# kill -9s the engine.
loop_killed() {
	rm -f visited go second.started &&
	start_run run loop.yaml &&
	wait_for_file second.started 10 &&
	proc_alive "$(cat daemon.pid)" &&
	kill -9 "$BGPID" &&
	wait_run 137
}

test_expect_success 'a daemon an earlier visit of a looped state left does not hold its lock' '
	cd looped &&
	loop_killed &&
	pid=$(cat second.pid) &&
	kill -9 -- "-$(ps -o pgid= -p "$pid" | tr -d " ")" &&
	wait_until 10 "the step did not stop" eval "! proc_alive $pid" &&
	touch go &&
	cairn run loop.yaml >out &&
	test_grep "^! took over the lock of run " out &&
	proc_alive "$(cat daemon.pid)"
'

test_expect_success 'resume stops the looped state'\''s unfinished visit, not the daemon' '
	cd looped &&
	kill "$(cat daemon.pid)" &&
	loop_killed &&
	pid=$(cat second.pid) &&
	RUN=$(last_run) &&
	touch go &&
	cairn resume "$RUN" >out &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual &&
	! proc_alive "$pid" &&
	proc_alive "$(cat daemon.pid)" &&
	kill "$(cat daemon.pid)"
'

# A parallel state whose branch failed for good is settled: after a crash
# between that failure and the cancellation of its sibling, resume must
# cancel the sibling and fail the run, never ask for a decision about it.
# Needs the crash hook (builds with -Dtest_hooks=true).
write_workflow settled/pf.yaml <<\EOF
cairn: 1
name: settled
start: both
states:
  both:
    parallel:
      bad: { do: exec, with: { argv: ["false"] } }
      slow: { do: exec, with: { argv: [sleep, "5"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'resume after a failed branch cancels its sibling instead of asking' '
	cd settled &&
	found= &&
	for n in 1 2 3 4 5 6 7 8 9 10; do
		rm -rf .cairn &&
		st=0 && CAIRN_TEST_KILL_AFTER_COMMIT=$n cairn run pf.yaml >/dev/null 2>&1 || st=$? &&
		if test $st -ne 137; then
			break
		fi &&
		failed=$(sqlite3 .cairn/journal.db "select count(*) from events where state = '\''both/bad'\'' and kind = '\''action.finished'\''") &&
		slow=$(sqlite3 .cairn/journal.db "select count(*) from events where state = '\''both/slow'\'' and kind = '\''action.finished'\''") &&
		if test "$failed" = 1 && test "$slow" = 0; then
			found=$n && break
		fi
	done &&
	if test -z "$found"; then
		echo "no kill point between the failure and the cancellation (no crash hook?)" &&
		exit 1
	fi &&
	test_must_fail_with 1 cairn resume >out 2>err &&
	test_grep "state '\''both/bad'\'' failed: exited with status 1" out &&
	test_grep "both/slow cancelled" out &&
	test_grep ! "assume" out
'

# An interrupt during a wait state: nothing is running, so the run stops at
# once; resume waits only what is left of the journaled deadline.
write_workflow waiting/w.yaml <<\EOF
cairn: 1
name: waiting
start: pause
states:
  pause:
    wait: 3s
    next: after
  after:
    do: exec
    with: { argv: [touch, after.done] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

test_expect_success 'SIGINT during a wait stops at once; resume waits only the rest' '
	cd waiting &&
	start_run run w.yaml &&
	sleep 1 &&
	kill -INT $BGPID &&
	t0=$(date +%s%N) &&
	wait_run 3 &&
	t1=$(date +%s%N) &&
	test $(( (t1 - t0) / 1000000 )) -lt 1500 &&
	test_path_is_missing after.done &&
	test "$(q "SELECT status FROM runs")" = interrupted &&
	cairn resume >out &&
	t2=$(date +%s%N) &&
	test_path_is_file after.done &&
	# about 2 s of the 3 s wait were left: resume waits those, not 3 s
	# again, and not nothing
	took=$(( (t2 - t1) / 1000000 )) &&
	echo "resume took ${took}ms" &&
	test $took -lt 2700 &&
	test $took -ge 1400
'

# A second Ctrl-C does not wait for the grace period.
write_workflow twice/w.yaml <<\EOF
cairn: 1
name: twice
start: long
states:
  long:
    do: exec
    with: { argv: [sh, -c, "touch started; sleep 30"] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a second SIGINT stops running steps without waiting out the grace' '
	cd twice &&
	start_run run w.yaml --grace 20s &&
	wait_for_file started 10 &&
	kill -INT $BGPID &&
	sleep 0.5 &&
	kill -INT $BGPID &&
	t0=$(date +%s%N) &&
	wait_run 3 &&
	t1=$(date +%s%N) &&
	test $(( (t1 - t0) / 1000000 )) -lt 8000 &&
	test "$(q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events WHERE kind = '\''action.finished'\''")" = interrupted
'

# A third Ctrl-C kills what the second one asked to stop: a step whose
# group ignores SIGTERM would otherwise hold the engine for the 5 s kill
# grace. Both adapters that stop process groups: exec, and process.start
# stopping a service it started (in its `wait`).
write_workflow thrice/w.yaml <<\EOF
cairn: 1
name: thrice
start: long
states:
  long:
    do: exec
    with: { argv: [sh, -c, "trap '' TERM; echo $$ >pid; touch started; sleep 30 & wait"] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF
write_workflow thrice/s.yaml <<\EOF
cairn: 1
name: thrice-service
start: svc
states:
  svc:
    do: process.start
    with:
      argv: [sh, -c, "trap '' TERM; echo $$ >pid; touch started; sleep 30 & wait"]
      wait: 30s
    next: done
  done: { succeed: true }
EOF

# third_sigint FILE: runs FILE, sends SIGINT three times and checks that
# the run ended within 3 s of the third (the kill grace is 5 s) and that
# the step's shell is gone.
third_sigint() {
	start_run run "$1" --grace 20s &&
	wait_for_file started 10 &&
	kill -INT $BGPID &&
	sleep 0.3 &&
	kill -INT $BGPID &&
	sleep 0.5 &&
	kill -0 "$(cat pid)" &&
	kill -INT $BGPID &&
	t0=$(date +%s%N) &&
	wait_run 3 &&
	t1=$(date +%s%N) &&
	echo "$(( (t1 - t0) / 1000000 )) ms after the third SIGINT" &&
	test $(( (t1 - t0) / 1000000 )) -lt 3000 &&
	! kill -0 "$(cat pid)" 2>/dev/null
}

test_expect_success 'a third SIGINT kills a step that ignores SIGTERM at once' '
	cd thrice &&
	third_sigint w.yaml &&
	test "$(q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events WHERE kind = '\''action.finished'\''")" = interrupted
'

test_expect_success 'a third SIGINT kills a service that ignores SIGTERM in its wait' '
	cd thrice &&
	rm -f started pid &&
	third_sigint s.yaml &&
	test "$(q "SELECT json_extract(payload, '\''$.outcome'\'') FROM events WHERE kind = '\''action.finished'\'' AND state = '\''svc'\''")" = interrupted
'

# ---- lazy successes ----------------------------------------------------------
#
# An idempotent action's success that starts nothing rides on the next
# commit (within 0.2 s) instead of making one of its own; a crash before
# that commit makes resume run the action again. quick (idempotent) ends
# once the file "q" exists, strict (not idempotent) at once, slow
# (idempotent) once the file "go" exists.
write_workflow lazy/l.yaml <<\EOF
cairn: 1
name: lazy
start: both
states:
  both:
    parallel:
      quick:
        do: exec
        with: { argv: [sh, -c, "i=0; while [ ! -e q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done; echo quick >>trace.txt"] }
        idempotent: true
      strict:
        do: exec
        with: { argv: [sh, -c, "echo strict >>trace.txt"] }
      slow:
        do: exec
        # at most a minute: a failed test must leave nothing polling behind
        with: { argv: [sh, -c, "echo slow >>trace.txt; touch slow.started; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done"] }
        idempotent: true
    next: done
  done: { succeed: true }
EOF

# finished STATE: how many action.finished events STATE has in the journal.
finished() {
	q "SELECT count(*) FROM events WHERE kind = 'action.finished' AND state = '$1'"
}

# finished_once STATE: STATE's action.finished is committed.
finished_once() { [ "$(finished "$1" 2>/dev/null)" = 1 ]; }

# wait_finished STATE SECONDS: polls the journal until STATE's
# action.finished is committed; fails after SECONDS.
wait_finished() {
	wait_until "$2" "no action.finished of $1 in the journal" finished_once "$1"
}

# lazy_until_quick DIR: in a copy DIR of lazy/, runs l.yaml in the
# background with the success of quick held back (CAIRN_TEST_LAZY_MS: only
# the next commit can carry it) and returns once quick has ended, strict's
# end is committed and slow still runs.
lazy_until_quick() {
	rm -rf "$1" && cp -r lazy "$1" && cd "$1" &&
	CAIRN_TEST_LAZY_MS=600000 start_run run l.yaml &&
	wait_for_file slow.started 20 &&
	wait_finished both/strict 10 &&
	touch q &&
	until grep -qx quick trace.txt; do sleep 0.05; done
}

test_expect_success 'an idempotent success is committed soon even while a sibling runs' '
	rm -rf lazy1 && cp -r lazy lazy1 && cd lazy1 &&
	start_run run l.yaml &&
	wait_for_file slow.started 20 &&
	touch q &&
	wait_finished both/quick 10 &&
	wait_finished both/strict 10 &&
	test "$(finished both/slow)" = 0 &&
	touch go &&
	wait_run 0
'

# Needs the crash hook (builds with -Dtest_hooks=true): CAIRN_TEST_LAZY_MS
# stretches the 0.2 s so that only the next commit can carry the success.
test_expect_success 'a crash loses an idempotent success not yet committed; resume runs it again' '
	lazy_until_quick lazy2 &&
	sleep 0.5 &&
	kill -9 $BGPID &&
	wait_run 137 &&
	# strict (not idempotent) was committed at once, quick was not
	if test "$(finished both/quick)" != 0; then
		echo "quick'\''s success was committed at once (no crash hook?)" &&
		exit 1
	fi &&
	test "$(finished both/slow)" = 0 &&
	touch go &&
	cairn resume >out &&
	test "$(q "SELECT status FROM runs")" = succeeded &&
	# quick and slow ran again, strict did not
	sort trace.txt >actual &&
	printf "quick\nquick\nslow\nslow\nstrict\n" >expect &&
	test_cmp expect actual &&
	test "$(finished both/quick)" = 1 &&
	test "$(finished both/strict)" = 1 &&
	cairn verify >/dev/null
'

test_expect_success 'an event keeps the time it happened, not the time of its commit' '
	lazy_until_quick lazy3 &&
	sleep 1 &&
	touch go &&
	wait_run 0 &&
	# quick'\''s success was committed with slow'\''s, a second later, but
	# its time says when quick ended
	q "SELECT (SELECT time_ms FROM events WHERE kind = '\''action.finished'\'' AND state = '\''both/slow'\'')
	        - (SELECT time_ms FROM events WHERE kind = '\''action.finished'\'' AND state = '\''both/quick'\'')" >gap &&
	echo "quick ended $(cat gap) ms before slow" &&
	test "$(cat gap)" -ge 800
'

# ---- an interrupted run that nothing was cut short in: undone on request ----

test_expect_success 'SIGINT in a wait: status offers rollback, which undoes what the run did' '
	mkdir iw && cd iw &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	write_workflow w.yaml <<-\EOF &&
	cairn: 1
	name: w
	start: a
	states:
	  a: { do: exec, with: { argv: [touch, a] }, undo: { do: exec, with: { argv: [rm, -f, a] } }, next: settle }
	  settle: { wait: 1h, next: b }
	  b: { do: exec, with: { argv: [touch, b] }, next: done }
	  done: { succeed: true }
	EOF
	start_run run w.yaml &&
	wait_until 10 "the run did not reach its wait" eval "test \"\$(q \"SELECT count(*) FROM events WHERE kind = '\''state.entered'\'' AND state = '\''settle'\''\")\" = 1" &&
	kill -INT "$BGPID" &&
	wait_run 3 &&
	RUN=$(last_run) &&
	cairn status "$RUN" >out &&
	test_grep "^continue it with .cairn resume $RUN., or undo what it did with .cairn rollback $RUN.$" out &&
	cairn rollback "$RUN" --dry-run >plan &&
	test_grep "^  1. a: exec$" plan &&
	test_path_is_file a &&
	cairn rollback "$RUN" >out &&
	test_grep "^run $RUN rolled back in .*: rolled back: a$" out &&
	test_path_is_missing a &&
	test_path_is_missing b &&
	test "$(q "SELECT status FROM runs WHERE id = \"$RUN\"")" = rolled_back &&
	test_must_fail_with 2 cairn resume "$RUN" 2>/dev/null
'

# SIGTERM can come between an attempt's action.started and its spawn (a
# wide map starts attempts in waves, each spawned once its start is
# committed): such an attempt never ran. It is journaled as interrupted
# with started: false, and resume runs it without asking whether it took
# effect (it used to ask, exit 3, about steps that never ran). The timing
# is the signal's, so several tries; each must end with every item run
# exactly once and no question.
test_expect_success 'SIGTERM between an attempt start and its spawn: resume runs it again, no question, each item once' '
	mkdir fan && cd fan &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	write_workflow fan.yaml <<-\EOF &&
	cairn: 1
	name: fan
	params: { items: { default: [] } }
	start: fan
	states:
	  fan:
	    map: { items: "{{ params.items }}", max_concurrency: 8, do: exec,
	           with: { argv: [sh, -c, "echo {{ item }} >> ledger"] } }
	    next: done
	  done: { succeed: true }
	EOF
	items="[$(seq -s, 200)]" &&
	seq 200 >expect &&
	seen=0 &&
	for i in $(seq 20); do
		rm -rf .cairn ledger &&
		start_run run fan.yaml --set "items=$items" &&
		wait_until 10 "the run did not start" test -e .cairn/journal.db &&
		sleep 0.$((1 + i % 5)) &&
		kill -TERM "$BGPID" &&
		st=0 && { wait "$BGPID" || st=$?; } && BGPID= &&
		# A fast host may have finished the run before the signal, a slow
		# one (a sanitizer build) not yet have started it: no run to resume.
		if [ $st -ne 0 ] && ! { test -e .cairn/journal.db && test -n "$(last_run)"; }; then continue; fi
		if [ $st -ne 0 ]; then cairn resume >out 2>&1 || { cat out; exit 1; }; fi
		sort -n ledger >got &&
		test_cmp expect got || exit 1
		n=$(q "SELECT count(*) FROM events WHERE kind = '\''action.finished'\'' AND json_extract(payload, '\''\$.started'\'') = 0") &&
		if [ "$n" -gt 0 ]; then seen=$((seen + 1)); fi
		if [ $seen -ge 2 ]; then break; fi
	done &&
	echo "# interrupted before their spawn in $seen of $i tries"
'

test_done
