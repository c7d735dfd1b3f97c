#!/bin/bash
# t0065-idle-loops: loops of states that run nothing. A loop of choices
# is refused by the loader; one the loader cannot see (through a used
# workflow that only succeeds) fails the run once a cursor has entered
# ENGINE__IDLE_MAX (10,000) states in a row with nothing started, and a
# simulation stops at its own limit. Each used to overflow the stack:
# entering a state entered the next from inside it.
. "$(dirname "$0")/lib.sh"

write_workflow choices.yaml <<\EOF
cairn: 1
name: choices
params: { a: { default: "x" } }
start: c1
states:
  c1:
    choice:
      - when: "params.a == 'x'"
        next: c2
    default: done
  c2:
    choice:
      - when: "params.a == 'y'"
        next: done
    default: c1
  done: { succeed: true }
EOF

test_expect_success 'a loop of choices alone: validate and run refuse it at its state, exit 2, nothing journaled' '
	test_must_fail_with 2 cairn validate choices.yaml 2>err &&
	echo "choices.yaml:6:3: error: the choices c1 → c2 → c1 form a loop that runs nothing between its decisions, so nothing can change them and once taken it never ends (hint: put an action or a wait state in the loop, or lead the branch elsewhere)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn run choices.yaml 2>err &&
	test_path_is_missing .cairn/journal.db
'

write_workflow nothing.yaml <<\EOF
cairn: 1
name: nothing
start: ok
states:
  ok: { succeed: true }
EOF

write_workflow again.yaml <<\EOF
cairn: 1
name: again
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
    undo: { do: exec, with: { argv: [rm, -f, built] } }
    next: step
  step: { use: nothing.yaml, next: check }
  check:
    choice:
      - when: "states.build.output.exit_code == 0"
        next: step
    default: done
  done: { succeed: true }
EOF

test_expect_success 'a loop the loader cannot see: the run fails at 10,000 idle entries, deep in no stack' '
	cairn validate again.yaml >/dev/null &&
	test_must_fail_with 1 cairn run again.yaml >out 2>err &&
	RUN=$(last_run) &&
	test "$(q "SELECT status FROM runs WHERE id = '\''$RUN'\''")" = failed &&
	test_grep "state .* entered after 10000 states in a row that started no action and waited for nothing: a loop that would never end" out &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\''")" -gt 10000 &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\''")" -lt 10010 &&
	test_path_is_missing built &&
	cairn verify >/dev/null
'

test_expect_success 'its simulation stops at its limit and names the loop (exit 3)' '
	test_must_fail_with 3 cairn simulate again.yaml >out 2>err &&
	test_grep "simulation stopped after 100000 state entries, in the loop " err
'

write_workflow mapped.yaml <<\EOF
cairn: 1
name: mapped
params: { items: { type: list, default: [] } }
start: fan
states:
  fan:
    map: { items: "{{ params.items }}", use: nothing.yaml }
    next: check
  check:
    choice:
      - when: "true"
        next: fan
    default: done
  done: { succeed: true }
EOF

test_expect_success 'a map over nothing in a loop: the run fails the same way' '
	test_must_fail_with 1 cairn run mapped.yaml >out 2>err &&
	test_grep "entered after 10000 states in a row" out
'

test_done
