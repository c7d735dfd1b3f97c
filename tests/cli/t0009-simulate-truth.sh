#!/bin/bash
# t0009-simulate-truth: proof that simulation tells the truth. For a
# failure at every action of a reference workflow (do states and parallel
# branches), a failing ready check, a failing undo, an action that fails only its first attempt
# and the happy path, a real run (real commands, its own journal) and
# `cairn simulate` with the same failure scripted journal the same states,
# outcomes, retries, transitions, undo plan and final status, and the real
# run's side effects are the ones the simulation predicts, its undos in
# the order of the plan.
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1; then
	test_skip_all 'jq is not installed'
fi

# See the file for how its actions fail and why its branches are timed.
WF=$CAIRN_TEST_LIB_DIR/simulate-reference.yaml

# The part of a JSON event stream (run --json or simulate --json) that says
# what the engine decided, one line an event: no action.started or
# action.spawned, no lock or run bookkeeping, no durations, outputs or ids.
# shellcheck disable=SC2016 # jq's own \( ) interpolation
PROJECT='
if .kind == "state.entered" then "enter \(.state) (\(.payload.kind))"
elif .kind == "action.finished" then
  "finished \(.state) attempt \(.attempt): \(.payload.outcome)"
elif .kind == "probe.finished" then
  "probe \(.state) attempt \(.attempt): \(.payload.outcome)"
elif .kind == "action.retrying" then
  "retry \(.state) after attempt \(.attempt): attempt \(.payload.next_attempt) in \(.payload.delay_ms)ms"
elif .kind == "transition" then
  "transition \(.payload.from) -> \(.payload.to) (\(.payload.reason))"
elif .kind == "rollback.planned" then
  "planned [\([.payload.steps[].undo_path] | join(", "))]"
elif .kind == "run.finished" then "run \(.payload.status)"
else empty end'

# A result line: "STATUS exit CODE[ in STATE]".
# shellcheck disable=SC2016
RESULT='"\(.status) exit \(.exit_code)" + if .state != "" then " in \(.state)" else "" end'

# both DIR [--set NAME=VALUE]... -- [SIMULATE OPTIONS]...: in a fresh DIR,
# runs the reference workflow for real with the params (its own journal,
# events in real.json, exit code in real.rc) and simulates it with the
# same params and the options (sim.json), then compares them: the same
# projected trace, the same inputs in every state.entered, the same final
# status, state and exit code (the real process's against the simulation's
# exit_code). Leaves the projections and results in DIR.
both() {
	local dir=$1 rc=0
	local sets=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		sets+=("$1")
		shift
	done
	shift
	mkdir "$dir" && cd "$dir" || return 1
	CAIRN_JOURNAL=$PWD/journal.db cairn run "$WF" "${sets[@]}" --json \
		>real.json 2>real.err || rc=$?
	echo "$rc" >real.rc
	cairn simulate "$WF" "${sets[@]}" "$@" --json >sim.json || return 1
	jq -r "$PROJECT" sim.json >sim.trace &&
	jq -r "$PROJECT" real.json >real.trace &&
	test_cmp sim.trace real.trace || return 1
	jq -c 'select(.kind == "state.entered") | [.state, .payload.inputs]' \
		sim.json >sim.inputs &&
	jq -c 'select(.kind == "state.entered") | [.state, .payload.inputs]' \
		real.json >real.inputs &&
	test_cmp sim.inputs real.inputs || return 1
	jq -r "select(.kind == \"result\") | $RESULT" sim.json >sim.result &&
	jq -r --arg rc "$rc" "select(.kind == \"result\") | .exit_code = \$rc | $RESULT" \
		real.json >real.result &&
	test_cmp sim.result real.result
}

# effects [FAILED_UNDO]: in a folder of both(), the side effects of the real
# run are what the simulation predicts. The actions that ran (ran.txt,
# without undos) are the action states the simulation entered (cancelled
# branches included: they started); each undo ran once per journaled
# attempt, in journal order; and the undos ran in the order of the plan,
# all of it, or up to FAILED_UNDO's when that undo failed.
effects() {
	jq -r 'select(.kind == "state.entered" and
	              (.payload.kind == "do" or .payload.kind == "branch")) | .state' \
		sim.json | sort -u >expect.forward &&
	{ grep -v '^undo:' ran.txt || test $? = 1; } | sort -u >forward &&
	test_cmp expect.forward forward &&
	jq -r 'select(.kind == "action.finished" and (.state | startswith("undo:"))) | .state' \
		real.json >expect.undo.runs &&
	{ grep '^undo:' ran.txt || test $? = 1; } >undo.runs &&
	test_cmp expect.undo.runs undo.runs &&
	jq -r 'select(.kind == "rollback.planned") | .payload.steps[].undo_path' \
		real.json | awk -v stop="undo:${1:-}" '{ print } $0 == stop { exit }' >expect.undos &&
	uniq undo.runs >undos &&
	test_cmp expect.undos undos
}

# ---- the reference workflow ----------------------------------------------------

test_expect_success 'the reference workflow: 10 actions, 3 branches, a ready check, a choice, retries, undos' '
	cairn plan "$WF" --json >plan.json &&
	jq -r ".failures[] | .path + if .ready then \" (not ready)\" else \"\" end" plan.json >actual &&
	cat >expect <<-\EOF &&
	prepare
	create_db
	create_db (not ready)
	fanout/cache
	fanout/db
	fanout/web
	migrate
	blue_switch
	green_switch
	announce
	check
	EOF
	test_cmp expect actual &&
	jq -r ".happy_path | join(\" \")" plan.json >actual &&
	echo "prepare create_db fanout migrate route blue_switch settle announce check done" >expect &&
	test_cmp expect actual
'

test_expect_success 'happy path: simulation and real run agree' '
	both happy -- &&
	echo "succeeded exit 0" >expect &&
	test_cmp expect real.result &&
	effects &&
	test_path_is_file web.effect
'

# The undo plans the simulation of each failure must come to (and the real
# run too, through both()): checked here so that a simulation and a real
# run that agree on a wrong plan fail.
plan_for() {
	case $1 in
	prepare) echo '[]' ;;
	create_db) echo '[undo:prepare]' ;;
	fanout/cache) echo '[undo:fanout/web, undo:fanout/db, undo:create_db, undo:prepare]' ;;
	fanout/db) echo '[undo:fanout/web, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	fanout/web) echo '[undo:fanout/db, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	migrate) echo '[undo:fanout/web, undo:fanout/db, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	blue_switch) echo '[undo:migrate, undo:fanout/web, undo:fanout/db, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	green_switch) echo '[undo:migrate, undo:fanout/web, undo:fanout/db, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	announce | check) echo '[undo:blue_switch, undo:migrate, undo:fanout/web, undo:fanout/db, undo:fanout/cache, undo:create_db, undo:prepare]' ;;
	esac
}

for s in prepare create_db fanout/cache fanout/db fanout/web migrate \
	blue_switch green_switch announce check; do
	color=blue
	[ "$s" = green_switch ] && color=green
	state=${s%%/*}
	test_expect_success "failure at $s: simulation and real run agree" "
		both fail-${s//\//-} --set fail=$s --set color=$color -- --fail-at $s &&
		echo 'failed exit 1 in $state' >expect &&
		test_cmp expect real.result &&
		echo 'planned $(plan_for "$s")' >expect &&
		grep '^planned ' real.trace >actual &&
		test_cmp expect actual &&
		effects
	"
done

test_expect_success 'a cancelled branch with a probe: probed, joins the plan, undone' '
	cd fail-fanout-cache &&
	cat >expect <<-\EOF &&
	finished fanout/cache attempt 1: failed
	finished fanout/db attempt 1: cancelled
	finished fanout/web attempt 1: cancelled
	probe fanout/web attempt 1: succeeded
	EOF
	grep "^finished fanout/\|^probe " real.trace >actual &&
	test_cmp expect actual &&
	test_path_is_missing web.effect
'

test_expect_success 'a retried action failing every attempt: the same retries and delays' '
	cd fail-migrate &&
	cat >expect <<-\EOF &&
	finished migrate attempt 1: failed
	retry migrate after attempt 1: attempt 2 in 50ms
	finished migrate attempt 2: failed
	retry migrate after attempt 2: attempt 3 in 100ms
	finished migrate attempt 3: failed
	EOF
	grep "^finished migrate \|^retry migrate " real.trace >actual &&
	test_cmp expect actual
'

test_expect_success 'the choice: on a param (green) and on an exit code (blue)' '
	grep "^transition route " happy/real.trace fail-green_switch/real.trace >actual &&
	cat >expect <<-\EOF &&
	happy/real.trace:transition route -> blue_switch (when: states.migrate.output.exit_code == 0)
	fail-green_switch/real.trace:transition route -> green_switch (when: params.color == '"'"'green'"'"')
	EOF
	test_cmp expect actual
'

# ---- failing undos ---------------------------------------------------------------

test_expect_success 'an undo fails: rollback_failed (exit 6) in both, the rest left' '
	both undo-db --set fail=announce --set fail_undo=fanout/db -- \
		--fail-at announce --fail-undo fanout/db &&
	echo "rollback_failed exit 6 in undo:fanout/db" >expect &&
	test_cmp expect real.result &&
	effects fanout/db &&
	jq -c "select(.kind == \"run.finished\") | .payload | [.undone, .failed, .left]" \
		real.json >actual &&
	echo "[[\"blue_switch\",\"migrate\",\"fanout/web\"],\"fanout/db\",[\"fanout/cache\",\"create_db\",\"prepare\"]]" >expect &&
	test_cmp expect actual
'

test_expect_success 'a retried undo fails every attempt: rollback_failed in both' '
	both undo-migrate --set fail=check --set fail_undo=migrate -- \
		--fail-at check --fail-undo migrate &&
	echo "rollback_failed exit 6 in undo:migrate" >expect &&
	test_cmp expect real.result &&
	effects migrate &&
	cat >expect <<-\EOF &&
	undo:blue_switch
	undo:migrate
	undo:migrate
	EOF
	test_cmp expect undo.runs
'

# ---- a ready check that fails -------------------------------------------------------

test_expect_success 'a ready check fails (--fail-ready): its action is undone, in both' '
	both not-ready --set fail_ready=create_db -- --fail-ready create_db &&
	echo "failed exit 1 in create_db" >expect &&
	test_cmp expect real.result &&
	effects &&
	jq -r "select(.kind == \"rollback.planned\") | [.payload.steps[].undo_path] | join(\" \")" \
		real.json >actual &&
	echo "undo:create_db undo:prepare" >expect &&
	test_cmp expect actual
'

test_expect_success '--fail-ready names an action with a ready check' '
	test_must_fail_with 2 cairn simulate "$WF" --fail-ready prepare 2>err &&
	echo "cairn: --fail-ready '\''prepare'\'': workflow '\''simulate-reference'\'' has no action state '\''prepare'\'' with a ready check (hint: states with a ready check are create_db)" >expect &&
	test_cmp expect err
'

# ---- a failure of the first attempt only ----------------------------------------

test_expect_success 'an action fails its first attempt only (migrate:1): retried, succeeds' '
	both flaky --set flaky=migrate -- --fail-at migrate:1 &&
	echo "succeeded exit 0" >expect &&
	test_cmp expect real.result &&
	effects &&
	test_path_is_file migrate.count &&
	grep -c "^migrate$" ran.txt >actual &&
	echo 2 >expect &&
	test_cmp expect actual
'

test_expect_success 'first attempt only, then a later failure: the retried action is undone' '
	both flaky-later --set flaky=migrate --set fail=blue_switch -- \
		--fail-at migrate:1 --fail-at blue_switch &&
	echo "failed exit 1 in blue_switch" >expect &&
	test_cmp expect real.result &&
	effects
'

# ---- a branch whose next attempt is journaled but not started yet -----------------

# A branch retries (after a short delay) while a sibling fails during its
# second attempt. Real run: the second attempt is running, so it is
# cancelled. Simulation: the retry's action.started is journaled in the
# loop turn before the sibling's failure, and the attempt still waits for
# the journal flush to start it (phase QUEUED). A failing sibling cancels
# such an attempt too (it once started after its state had failed), so
# both say cancelled and plan its undo.
write_workflow retry-branch.yaml <<\EOF
cairn: 1
name: retry-branch
start: fan
states:
  fan:
    parallel:
      a:
        do: exec
        with: { shell: 'echo a >>ran.txt; if [ ! -e a.count ]; then touch a.count; exit 1; fi; sleep 0.6' }
        retry: { attempts: 2, delay: 50ms }
        undo: { do: exec, with: { shell: 'echo undo:a >>ran.txt' } }
      b:
        do: exec
        with: { shell: 'echo b >>ran.txt; sleep 0.3; exit 1' }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a sibling fails while a retried branch is queued: cancelled in both' '
	mkdir retry-branch && cd retry-branch &&
	test_must_fail_with 1 env CAIRN_JOURNAL="$PWD/journal.db" \
		"$CAIRN_BIN" run ../retry-branch.yaml --json >real.json &&
	cairn simulate ../retry-branch.yaml --fail-at fan/a:1 --fail-at fan/b \
		--json >sim.json &&
	jq -r "$PROJECT" real.json >real.trace &&
	jq -r "$PROJECT" sim.json >sim.trace &&
	test_grep "^finished fan/a attempt 2: cancelled" real.trace &&
	test_cmp real.trace sim.trace
'

test_done
