#!/bin/bash
# shellcheck disable=SC2016 # the bodies are single-quoted: lib.sh evals them
# t0051-simulate-loop: a simulation always ends. A loop that placeholder
# outputs keep going (a scripted failure, or nothing at all) stops after a
# bounded number of state entries with one line naming it and why, exit
# 3; plan stops at such a simulation; SIGTERM stops simulate and plan as
# SIGINT does, exit 3.
. "$(dirname "$0")/lib.sh"

# The loop of a write and a check of its output: `previous` is false in
# every placeholder, so the check sends the simulation back for ever.
write_workflow loop.yaml <<\EOF
cairn: 1
name: loop
start: w
states:
  w: { do: file.write, with: { path: f, content: x }, next: check }
  check:
    choice:
      - when: "not states.w.output.previous"
        next: w
    default: last
  last: { succeed: true }
EOF

# shellcheck disable=SC2034 # read by the test bodies (eval)
LOOP_MSG="in the loop w → check → w: choice 'check' decides on placeholder outputs, which keep it going (a real run's outputs may end it)"

test_expect_success 'a loop of placeholders stops after 100000 state entries: exit 3, one line' '
	test_must_fail_with 3 cairn simulate loop.yaml >out 2>err &&
	echo "cairn: simulation stopped after 100000 state entries, $LOOP_MSG" >expect &&
	test_cmp expect err &&
	tail -n 1 out >actual &&
	echo "■ stopped" >expect &&
	test_cmp expect actual &&
	test_path_is_missing f
'

# CAIRN_TEST_SIM_MAX_ENTRIES (a test-hooks build) lowers the limit.
test_expect_success 'the limit counts entries; the loop is followed until it closes' '
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn simulate loop.yaml >out 2>err &&
	echo "cairn: simulation stopped after 8 state entries, $LOOP_MSG" >expect &&
	test_cmp expect err &&
	grep -c "^enter " out >actual &&
	echo 10 >expect &&
	test_cmp expect actual
'

test_expect_success 'simulate --json ends with an error result (exit 3) after run.interrupted' '
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn simulate loop.yaml --json >out 2>err &&
	tail -n 2 out >last &&
	jq -c "[.kind, .payload.error // .message, .exit_code, .status]" last >actual &&
	cat >expect <<-EOF &&
	["run.interrupted","stopped after 8 state entries, $LOOP_MSG",null,null]
	["result","simulation stopped after 8 state entries, $LOOP_MSG",3,"error"]
	EOF
	test_cmp expect actual
'

test_expect_success 'plan stops at a simulation that does not end: exit 3, the line says which' '
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn plan loop.yaml >out 2>err &&
	echo "cairn: simulation of the happy path stopped after 8 state entries, $LOOP_MSG" >expect &&
	test_cmp expect err &&
	test_cmp /dev/null out
'

# A retry loop: a failure goes to fix, which goes back. --fail-at a fails
# every entry of a, so the simulation of that failure loops; the happy
# path does not.
write_workflow retry.yaml <<\EOF
cairn: 1
name: retry
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: done, on_failure: fix }
  fix: { wait: 1s, next: a }
  done: { succeed: true }
EOF

test_expect_success 'a loop that a scripted failure keeps going says so' '
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn simulate retry.yaml --fail-at a 2>err &&
	echo "cairn: simulation stopped after 8 state entries, in the loop a → fix → a: '\''a'\'' fails at every entry, as scripted (a real run'\''s may not)" >expect &&
	test_cmp expect err &&
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn plan retry.yaml >out 2>err &&
	echo "cairn: simulation of a failure at '\''a'\'' stopped after 8 state entries, in the loop a → fix → a: '\''a'\'' fails at every entry, as scripted (a real run'\''s may not)" >expect &&
	test_cmp expect err
'

# A choice on a param: a real run loops the same way.
write_workflow params.yaml <<\EOF
cairn: 1
name: params
params: { again: { default: true } }
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: c }
  c:
    choice:
      - when: "params.again"
        next: a
    default: done
  done: { succeed: true }
EOF

test_expect_success 'a loop that placeholders do not keep going says a real run loops too' '
	CAIRN_TEST_SIM_MAX_ENTRIES=8 test_must_fail_with 3 cairn simulate params.yaml 2>err &&
	echo "cairn: simulation stopped after 8 state entries, in the loop a → c → a: nothing in it depends on placeholder outputs: a real run would loop the same way" >expect &&
	test_cmp expect err &&
	cairn simulate params.yaml --set again=false >out &&
	tail -n 1 out >actual &&
	echo "result: succeeded; a real run would exit 0" >expect &&
	test_cmp expect actual
'

# A loop inside instances of a map over a used workflow: each instance
# polls, and the loop named is the instances' states in turn.
write_workflow sub/poll.yaml <<\EOF
cairn: 1
name: poll
params: { name: { default: x } }
start: p
states:
  p: { do: exec, with: { argv: [echo, "{{ params.name }}"] }, next: c }
  c:
    choice:
      - when: "states.p.output.json.done"
        next: done
    default: w
  w: { wait: 1s, next: p }
  done: { succeed: true }
EOF

write_workflow polls.yaml <<\EOF
cairn: 1
name: polls
params: { svcs: { default: [s1, s2] } }
start: m
states:
  m:
    map: { items: "{{ params.svcs }}", use: sub/poll.yaml, with: { name: "{{ item }}" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a loop inside instances of a map over a used workflow stops too' '
	CAIRN_TEST_SIM_MAX_ENTRIES=20 test_must_fail_with 3 cairn simulate polls.yaml >out 2>err &&
	echo "cairn: simulation stopped after 20 state entries, in the loop m/s2/p → m/s1/c → m/s1/w → m/s1/p → m/s2/c → m/s2/w → m/s2/p: choice '\''m/s2/c'\'' decides on placeholder outputs, which keep it going (a real run'\''s outputs may end it)" >expect &&
	test_cmp expect err &&
	tail -n 1 out >actual &&
	echo "■ stopped" >expect &&
	test_cmp expect actual
'

# ---- signals -----------------------------------------------------------------

# catching PID SIG: the process has its handler for SIG (a number) in
# place, so the signal reaches the engine rather than killing it.
catching() {
	local mask
	mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null) &&
	[ -n "$mask" ] && [ $(( 0x$mask >> ($2 - 1) & 1 )) = 1 ]
}

# stop_with SIG NUM CMD...: runs cairn CMD (on a limit it never reaches)
# until it catches SIG, sends it, and leaves its status in rc, its
# stderr in err.
stop_with() {
	local sig=$1 num=$2 pid st=0
	shift 2
	CAIRN_TEST_SIM_MAX_ENTRIES=1000000000 "$CAIRN_BIN" "$@" >out 2>err &
	pid=$!
	wait_until 20 "cairn $* did not catch SIG$sig" catching "$pid" "$num" || {
		kill -9 "$pid"
		return 1
	}
	kill -"$sig" "$pid"
	wait "$pid" || st=$?
	echo "$st" >rc
}

for cmd in simulate plan; do
	for sig in TERM:15 INT:2; do
		test_expect_success "SIG${sig%:*} stops $cmd: exit 3, the line says so" "
			stop_with ${sig%:*} ${sig#*:} $cmd loop.yaml &&
			echo 3 >expect &&
			test_cmp expect rc &&
			case $cmd in
			simulate) echo 'cairn: simulation interrupted by SIG${sig%:*}' ;;
			plan) echo 'cairn: simulation of the happy path interrupted by SIG${sig%:*}' ;;
			esac >expect &&
			test_cmp expect err
		"
	done
done

test_done
