#!/bin/bash
# t0058-abandon: cairn abandon ends a run that waits, was interrupted or
# whose rollback failed where it stands, undoing nothing, in one commit;
# it refuses a run that still runs, has a step that still runs, or
# finished, and an abandoned run is closed to every other command.
. "$(dirname "$0")/lib.sh"

# hold.sh RUN HOLD: the build step. It leaves built.RUN behind (its undo
# removes it); with HOLD=yes it says so and holds until the file go exists.
cat >hold.sh <<\EOF
touch "built.$1"
if [ "$2" = yes ]; then
	touch holding
	while [ ! -e go ]; do sleep 0.1; done
fi
EOF

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
params:
  hold: { default: "no" }
start: build
states:
  build:
    do: exec
    with: { argv: [sh, hold.sh, "{{ run.id }}", "{{ params.hold }}"] }
    undo: { do: exec, with: { argv: [rm, -f, "built.{{ run.id }}"] } }
    next: gate
  gate: { approval: {}, next: done }
  done: { succeed: true }
EOF

status() { q "SELECT status FROM runs WHERE id = '$1'"; }
# payload RUN KIND FIELD: a field of RUN's event of KIND.
payload() {
	q "SELECT json_extract(payload, '\$.$3') FROM events WHERE run_id = '$1' AND kind = '$2'"
}

test_expect_success 'a run that still runs, and a waiting one while another runs: exit 4, nothing journaled' '
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	A=$(last_run) && echo $A >A &&
	start_run run gated.yaml --set hold=yes &&
	wait_for_file holding 10 &&
	B=$(last_run) && echo $B >B && test "$A" != "$B" &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 4 cairn abandon $B 2>err &&
	test_grep "^cairn: run $B is still running (pid [0-9]* on .*): stop it first (Ctrl-C, or kill [0-9]*: it ends interrupted), then abandon it$" err &&
	test_must_fail_with 4 cairn abandon $A 2>err &&
	test_grep "^cairn: workflow .gated. is locked by run $B (pid " err &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after &&
	test "$(status $A)" = waiting &&
	touch go &&
	wait_run 3 &&
	test "$(status $B)" = waiting
'

test_expect_success 'a waiting run that a newer one replaced: the refusals name abandon' '
	A=$(cat A) && B=$(cat B) &&
	cairn approve $B >/dev/null &&
	cairn resume $B >/dev/null &&
	test "$(status $B)" = succeeded &&
	test_must_fail_with 2 cairn resume $A 2>err &&
	test_grep "or .cairn abandon $A. ends it where it stands)$" err &&
	test_must_fail_with 2 cairn reject $A 2>err &&
	test_grep "or .cairn abandon $A. ends it where it stands)$" err &&
	cairn status $A >st &&
	test_grep "cairn abandon $A. ends it where it stands$" st &&
	cairn status >st &&
	test_grep " $A\$" st
'

test_expect_success 'abandon ends it where it stands: one line, nothing undone, journaled with who and why' '
	A=$(cat A) && B=$(cat B) &&
	CAIRN_ACTOR=carol cairn abandon $A --comment "replaced by $B" >out &&
	echo "run $A abandoned by carol (it was waiting at state '\''gate'\''): nothing was undone; what it did stays as it is ('\''cairn show $A'\'' lists it)" >expect &&
	test_cmp expect out &&
	test_path_is_file built.$A &&
	test "$(status $A)" = abandoned &&
	test "$(q "SELECT finished_ms > 0 FROM runs WHERE id = '\''$A'\''")" = 1 &&
	q "SELECT kind || \"|\" || state FROM events WHERE run_id = \"$A\" ORDER BY seq DESC LIMIT 2" >kinds &&
	printf "%s\n" "run.finished|" "run.abandoned|gate" >expect &&
	test_cmp expect kinds &&
	test "$(payload $A run.finished status)" = abandoned &&
	test "$(payload $A run.abandoned actor)" = carol &&
	test "$(payload $A run.abandoned comment)" = "replaced by $B" &&
	test "$(payload $A run.abandoned was)" = waiting &&
	test "$(payload $A run.abandoned superseded_by)" = $B &&
	user=$(payload $A run.abandoned user) &&
	test -n "$user" && test "$user" != carol &&
	test "$(q "SELECT count(*) FROM locks")" = 0 &&
	cairn verify >/dev/null
'

test_expect_success 'status, history, show and report say so' '
	A=$(cat A) &&
	cairn status >st &&
	! grep -q "$A" st &&
	cairn history --status abandoned >h &&
	test "$(grep -c abandoned h)" = 1 &&
	test_grep "^$A  *gated .* abandoned " h &&
	cairn show $A >show &&
	test_grep "^status    abandoned$" show &&
	test_grep "^          abandoned by carol: replaced by .* (it was waiting; nothing was undone)$" show &&
	test_grep "^gate  *approval  *abandoned " show &&
	test_grep "^build  *do  *succeeded " show &&
	cairn report --run $A -o report.html >/dev/null &&
	test_grep -F "<span class=\"status abandoned\">abandoned</span>" report.html &&
	test_grep -F "<g class=\"step abandoned\"><title>gate: abandoned, " report.html
'

test_expect_success 'an abandoned run is closed: resume, rollback, reject, approve and abandon refuse it, nothing journaled' '
	A=$(cat A) &&
	journal_state >before &&
	test_must_fail_with 2 cairn resume $A --allow-superseded 2>err &&
	test_grep "already finished (abandoned): nothing to resume" err &&
	test_must_fail_with 2 cairn rollback $A --allow-superseded 2>err &&
	echo "cairn: run $A was abandoned: it ended where it stood, and is not undone on request (hint: '\''cairn show $A'\'' lists what it did)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn rollback $A --dry-run 2>err &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn reject $A --allow-superseded 2>err &&
	test_grep "is not waiting for an approval (it is abandoned)" err &&
	test_must_fail_with 2 cairn approve $A 2>err &&
	test_must_fail_with 2 cairn abandon $A 2>err &&
	echo "cairn: run $A already finished (abandoned): there is nothing to abandon" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after &&
	test_path_is_file built.$A
'

test_expect_success 'a finished run, a promotion record and bad input: exit 2, nothing journaled' '
	B=$(cat B) &&
	cairn approve dev --workflow gated --release 1 >/dev/null &&
	REC=$(last_run) &&
	journal_state >before &&
	test_must_fail_with 2 cairn abandon $B 2>err &&
	echo "cairn: run $B already finished (succeeded): there is nothing to abandon (hint: '\''cairn rollback $B'\'' undoes it)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn abandon $REC 2>err &&
	test_grep "$REC is a promotion record (approved), not a run: there is nothing to abandon" err &&
	test_must_fail_with 2 cairn abandon 2>err &&
	test_grep "^cairn: abandon needs one run id" err &&
	test_must_fail_with 2 cairn abandon NOSUCHRUN 2>err &&
	test_must_fail_with 2 cairn abandon $B --comment "$(printf "\377")" 2>err &&
	test_grep "not UTF-8" err &&
	journal_state >after &&
	test_cmp before after
'

test_expect_success '--json: one object with the run, what it was and where' '
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	R=$(last_run) &&
	CAIRN_ACTOR=dan cairn abandon $R --json >out &&
	test "$(wc -l <out)" = 1 &&
	jq -e --arg r "$R" ".run == \$r and .status == \"abandoned\" and .was == \"waiting\" and .state == \"gate\" and .actor == \"dan\"" out >/dev/null &&
	jq -e "has(\"superseded_by\") | not" out >/dev/null
'

# The abandonment is one transaction: killed right after its only commit
# (the second of the command: opening a journal to write commits once), it
# is whole; a commit of its own for the lock, an event or the row would
# leave the run half-closed here, and make a third.
test_expect_success 'one commit: killed right after it, the run is closed and the lock free' '
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	R=$(last_run) &&
	CAIRN_TEST_KILL_AFTER_COMMIT=3 cairn abandon $R >/dev/null &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	R=$(last_run) &&
	st=0 && CAIRN_TEST_KILL_AFTER_COMMIT=2 "$CAIRN_BIN" abandon $R >/dev/null 2>&1 || st=$? &&
	test $st = 137 &&
	test "$(status $R)" = abandoned &&
	test "$(payload $R run.finished status)" = abandoned &&
	test "$(q "SELECT count(*) FROM locks")" = 0 &&
	cairn verify >/dev/null
'

write_workflow killed.yaml <<\EOF
cairn: 1
name: killed
start: step
states:
  step:
    do: exec
    with: { argv: [sh, -c, "echo $$ >step.pid; kill -9 $PPID; exec sleep 30"] }
    next: done
  done: { succeed: true }
EOF

# gone PID: the process has ended (a zombie nobody reaps counts as ended).
gone() { ! test -e /proc/$1 || grep -q ") Z " /proc/$1/stat; }

test_expect_success 'a killed run whose step still runs: exit 4 naming it; once it ends, abandon closes the run and frees its lock' '
	"$CAIRN_BIN" run killed.yaml >/dev/null 2>&1 || : &&
	R=$(last_run) &&
	wait_for_file step.pid 10 &&
	P=$(cat step.pid) &&
	! gone $P &&
	test "$(q "SELECT count(*) FROM locks WHERE workflow = '\''killed'\''")" = 1 &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 4 cairn abandon $R 2>err &&
	echo "cairn: run $R has a step that still runs: '\''step'\'' (pid $P) (hint: wait until it ends, or '\''cairn resume $R'\'' carries the run on, stopping or adopting it)" >expect &&
	test_cmp expect err &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after &&
	kill $P &&
	wait_until 10 "the step did not end" gone $P &&
	cairn abandon $R >out &&
	test_grep "^run $R abandoned by .* (it was interrupted at state .step.): nothing was undone" out &&
	test "$(payload $R run.abandoned was)" = interrupted &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$R'\'' AND kind = '\''lock.taken_over'\''")" = 0 &&
	test "$(q "SELECT count(*) FROM locks WHERE workflow = '\''killed'\''")" = 0 &&
	cairn status $R >st &&
	test_grep "^run $R (killed): abandoned$" st
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
    next: boom
  boom:
    do: exec
    with: { argv: ["false"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a run whose rollback failed: status offers abandon, which closes it with the undo left' '
	test_must_fail_with 6 cairn run stuck.yaml >/dev/null &&
	R=$(last_run) &&
	cairn status $R >st &&
	test_grep "'\''cairn abandon $R'\'' closes it)$" st &&
	cairn abandon $R --comment "removed by hand" >out &&
	test_grep "it was rollback_failed)" out &&
	test "$(status $R)" = abandoned &&
	test_path_is_file built &&
	test_must_fail_with 2 cairn resume $R 2>err &&
	test_grep "already finished (abandoned)" err
'

test_done
