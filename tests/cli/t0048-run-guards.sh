#!/bin/bash
# t0048-run-guards: what a plain run may not do or lose. A gated
# environment (after, approvals) takes releases only through promote; the
# release param is a plain string label; a reader that goes away (a
# closed pipe, a closed terminal's SIGHUP) does not kill a deploy
# mid-step; a fan-out is not held to the soft open-files limit, and a
# hard limit too low for any command is refused first; a step
# with a ready check reports the time of the whole step; a step whose
# inputs cannot be made says so on its own line and names no log that was
# never written.
# shellcheck disable=SC2016 # SQL and jq programs in single quotes
. "$(dirname "$0")/lib.sh"

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  release: { default: "1.0.0" }
environments:
  dev: { vars: { name: dev } }
  staging: { vars: { name: staging }, after: dev }
  prod: { vars: { name: prod }, after: staging, approvals: 2 }
  lab: { vars: { name: lab }, approvals: 1 }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "echo {{ params.release }} > out-{{ vars.name }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'run --env of a gated environment exits 5, journals nothing, runs nothing' '
	cairn run app.yaml --env dev >out &&
	n=$(q "SELECT count(*) FROM events") &&
	test_must_fail_with 5 cairn run app.yaml --env staging >out 2>err &&
	echo "cairn: environment '\''staging'\'' is gated (after dev): a release goes there only through promote, which checks the gates (hint: cairn promote app.yaml --to staging [--release R])" >expect &&
	test_cmp expect err &&
	test_must_fail_with 5 cairn run app.yaml --env prod 2>err &&
	test_grep "environment .prod. is gated (after staging, 2 approvals)" err &&
	test_must_fail_with 5 cairn run app.yaml --env lab 2>err &&
	test_grep "environment .lab. is gated (1 approval)" err &&
	test_path_is_missing out-staging && test_path_is_missing out-prod &&
	test_path_is_missing out-lab &&
	test "$(q "SELECT count(*) FROM events")" = "$n"
'

test_expect_success 'run --env of a gated environment: --json ends with the result line' '
	test_must_fail_with 5 cairn run app.yaml --env staging --json >out 2>/dev/null &&
	jq -e "select(.kind == \"result\") | .exit_code == 5 and .status == \"error\"" out
'

test_expect_success 'promote takes the release there, with its parent run' '
	cairn promote app.yaml --to staging >out &&
	echo 1.0.0 >expect && test_cmp expect out-staging &&
	test -n "$(q "SELECT parent FROM runs WHERE env = \"staging\"")"
'

# The release is the label runs are recorded, shown and promoted by.
bad_release() {
	sed "s/release: { default: \"1.0.0\" }/release: $1/" app.yaml >bad.yaml
}

test_expect_success 'a release param that is not a string is refused at load' '
	bad_release "{ default: 7 }" &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	echo "bad.yaml:4:23: error: param '\''release'\'' must be a string, not an integer: it is the label cairn records, shows and promotes (hint: quote its default: '\''default: \"7\"'\'')" >expect &&
	test_cmp expect err &&
	bad_release "{ type: integer }" &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "bad.yaml:4:20: error: param .release. must be a string, not an integer: .*(hint: declare it .type: string.)" err &&
	bad_release "{ default: 7, type: number }" &&
	test_must_fail_with 2 cairn run bad.yaml --env dev 2>err &&
	test_grep "must be a string, not a number" err
'

test_expect_success 'a secret release param is refused at load' '
	bad_release "{ secret: true }" &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "bad.yaml:4:22: error: param .release. cannot be secret" err
'

test_expect_success 'an environment needing more approvals than its approvers is refused' '
	sed "s/prod: { vars: { name: prod }, after: staging, approvals: 2 }/prod: { vars: { name: prod }, after: staging, approvals: 3, approvers: [a, b] }/" \
		app.yaml >bad.yaml &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "bad.yaml:8:60: error: environment .prod. needs 3 approvals but lists only 2 approvers (hint: lower .approvals. or add approvers)" err
'

# The reader of the run output goes away while the run is in its first
# step. Before, cairn died of SIGPIPE right after journaling the next
# step start, leaving an interrupted run that needed --assume.
write_workflow pipe.yaml <<\EOF
cairn: 1
name: pipe
start: first
states:
  first:
    do: exec
    with: { argv: [sleep, "0.5"] }
    next: second
  second:
    do: exec
    # a child of cairn still dies of SIGPIPE: its signals are the defaults
    with: { argv: [bash, -c, "yes | head -c 1 >/dev/null; echo ${PIPESTATUS[0]} >yes.status"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a closed stdout does not stop the run; children keep SIGPIPE' '
	{ cairn run pipe.yaml; echo $? >rc; } | head -c 1 >/dev/null &&
	echo 0 >expect && test_cmp expect rc &&
	test "$(q "SELECT status FROM runs WHERE id = \"$(last_run)\"")" = succeeded &&
	echo 141 >expect && test_cmp expect yes.status
'

# A closed terminal or ssh session sends SIGHUP: the run goes on, as for
# a closed pipe. Before, cairn died at once (exit 129) and left its step
# running under init, without its reader.
write_workflow hup.yaml <<\EOF
cairn: 1
name: hup
start: first
states:
  first:
    do: exec
    with: { argv: [sh, -c, "touch hup.started; until [ -e hup.go ]; do sleep 0.05; done"] }
    next: second
  second:
    do: exec
    with: { argv: [touch, hup.second] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'SIGHUP (a closed terminal) does not stop the run' '
	"$CAIRN_BIN" run hup.yaml >hup.out 2>&1 &
	pid=$! &&
	wait_for_file hup.started 10 &&
	kill -HUP "$pid" &&
	sleep 0.2 &&
	kill -0 "$pid" &&
	touch hup.go &&
	{ wait "$pid"; echo $? >rc; } &&
	echo 0 >expect && test_cmp expect rc &&
	test_path_is_file hup.second &&
	test "$(q "SELECT status FROM runs WHERE id = \"$(last_run)\"")" = succeeded
'

# A fan-out holds two pipes for each running step: cairn raises its soft
# limit on open files to the hard one, and gives its steps the limit it
# was started with (programs using select() break past 1,023).
test_expect_success 'a fan-out wider than the soft open-files limit allows; steps keep that limit' '
	{
		printf "cairn: 1\nname: fan\nstart: p\nstates:\n  p:\n    parallel:\n" &&
		for i in $(seq 1 20); do
			printf "      b%d: { do: exec, with: { argv: [sh, -c, \"sleep 0.3; ulimit -Sn >lim.%d\"] } }\n" "$i" "$i"
		done &&
		printf "    next: done\n  done: { succeed: true }\n"
	} >fan.yaml &&
	test "$(ulimit -Hn)" = unlimited || test "$(ulimit -Hn)" -ge 200 &&
	(ulimit -Sn 40 && exec "$CAIRN_BIN" run fan.yaml) >fan.out 2>&1 &&
	test_grep "^run [0-9A-Z]* succeeded" fan.out &&
	for i in $(seq 1 20); do
		echo 40 >expect && test_cmp expect "lim.$i" || exit 1
	done
'

# Under a few dozen open files SQLite, libuv and the pipes fail wherever
# the limit falls (a step failed and rolled back at 14-16, libuv aborted
# at 8, a reader blamed the journal at 5): every command says so first.
test_expect_success 'a hard open-files limit under 64 is refused first, by every command' '
	n=$(q "SELECT count(*) FROM events") &&
	for lim in 8 12 63; do
		(ulimit -n "$lim" && exec "$CAIRN_BIN" run app.yaml --env dev) >out 2>err
		test $? = 2 || exit 1
		echo "cairn: the open-files limit is $lim and its hard limit allows no more; cairn needs at least 64: raise it (ulimit -n 1024, or LimitNOFILE= for a service)" >expect &&
		test_cmp expect err &&
		! test -s out || exit 1
	done &&
	for cmd in status history verify "resume $(last_run)"; do
		# shellcheck disable=SC2086 # cmd holds the words of a command
		(ulimit -n 12 && exec "$CAIRN_BIN" $cmd) >out 2>err
		test $? = 2 && test_grep "open-files limit is 12" err || exit 1
	done &&
	test "$(q "SELECT count(*) FROM events")" = "$n" &&
	(ulimit -n 12 && exec "$CAIRN_BIN" --version) >out &&
	test_grep "^cairn " out &&
	(ulimit -n 64 && exec "$CAIRN_BIN" run app.yaml --env dev) >out 2>&1 &&
	test_grep "^run [0-9A-Z]* succeeded" out &&
	(ulimit -Sn 10 && ulimit -Hn 64 && exec "$CAIRN_BIN" status) >out 2>&1
'

write_workflow ready.yaml <<\EOF
cairn: 1
name: ready
start: a
states:
  a:
    do: exec
    with: { argv: [sleep, "0.4"] }
    ready: { do: exec, with: { argv: ["true"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a step with a ready check takes the time of the action and the check' '
	cairn run ready.yaml >out &&
	ms=$(q "SELECT json_extract(payload, \"\$.duration_ms\") FROM events
	        WHERE run_id = \"$(last_run)\" AND kind = \"action.finished\"") &&
	test "$ms" -ge 400 &&
	test_grep "^✓ a [0-9]*ms$" out &&
	shown=$(sed -n "s/^✓ a \([0-9]*\)ms$/\1/p" out) &&
	test "$shown" -ge 400
'

write_workflow inputs.yaml <<\EOF
cairn: 1
name: inputs
params:
  names: { default: [] }
start: gen
states:
  gen:
    do: secrets.generate
    with: { names: "{{ params.names }}", file: x.env }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a step whose inputs cannot be made: a ✗ line, and no log named' '
	test_must_fail_with 1 cairn run inputs.yaml >out 2>&1 &&
	test_grep "^✗ gen failed: input .names. must be a non-empty list" out &&
	test_grep "state .gen. failed: cannot resolve the inputs of .gen." out &&
	! grep "(log: " out &&
	test_path_is_missing ".cairn/runs/$(last_run)/gen.log"
'

test_done
