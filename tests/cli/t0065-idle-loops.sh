#!/bin/bash
# t0065-idle-loops: loops of states that run nothing. A loop of choices
# is refused by the loader; one the loader cannot see (through a used
# workflow that only succeeds) fails the run once a cursor has entered
# ENGINE__IDLE_MAX (10,000) states in a row with nothing started (the
# state it would leave fails, so its failure path applies), and a
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
	test_grep "state .* failed after 10000 states in a row that started no action and waited for nothing: a loop that would never end" out &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\''")" -gt 10000 &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\''")" -lt 10010 &&
	test_path_is_missing built &&
	cairn verify >/dev/null
'

# The same loop with one more choice in it: whichever state the count
# ends at (a top-level one here), the run's failure path runs, and what
# build did is undone.
write_workflow again2.yaml <<\EOF
cairn: 1
name: again2
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
        next: check2
    default: done
  check2:
    choice:
      - when: "true"
        next: step
    default: done
  done: { succeed: true }
EOF

test_expect_success 'wherever the count ends, the failure path runs: what the run did is undone' '
	test_must_fail_with 1 cairn run again2.yaml >out 2>err &&
	test_grep "failed after 10000 states in a row" out &&
	test_grep "rolled back: build" out &&
	test_path_is_missing built &&
	RUN=$(last_run) &&
	test "$(q "SELECT count(*) FROM events e WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\'' AND NOT EXISTS (SELECT 1 FROM events s WHERE s.run_id = e.run_id AND s.kind = '\''state.entered'\'' AND s.state = e.state AND s.seq < e.seq)")" = 0
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
	test_grep "failed after 10000 states in a row" out
'

# Instance b waits; instance a fails, which stops b at once, and b's end
# ends the map from inside a's: the map's on_failure must be taken once.
# With a's failure 64 entries deep (63 choices), the entry the failure
# leads to waits for the outermost engine__enter, and the map's state must
# not look current meanwhile.
cat >deep-inner.yaml <<\EOF
cairn: 1
name: inner
params: { item: {} }
start: pick
states:
  pick:
    choice:
      - when: "params.item == 'a'"
        next: go
    default: hold
  hold: { wait: 30s, next: done }
  go: { do: exec, with: { argv: ["true"] }, next: c0 }
  c0: { choice: [ { when: "true", next: c1 } ], default: done }
  c1: { choice: [ { when: "true", next: c2 } ], default: done }
  c2: { choice: [ { when: "true", next: c3 } ], default: done }
  c3: { choice: [ { when: "true", next: c4 } ], default: done }
  c4: { choice: [ { when: "true", next: c5 } ], default: done }
  c5: { choice: [ { when: "true", next: c6 } ], default: done }
  c6: { choice: [ { when: "true", next: c7 } ], default: done }
  c7: { choice: [ { when: "true", next: c8 } ], default: done }
  c8: { choice: [ { when: "true", next: c9 } ], default: done }
  c9: { choice: [ { when: "true", next: c10 } ], default: done }
  c10: { choice: [ { when: "true", next: c11 } ], default: done }
  c11: { choice: [ { when: "true", next: c12 } ], default: done }
  c12: { choice: [ { when: "true", next: c13 } ], default: done }
  c13: { choice: [ { when: "true", next: c14 } ], default: done }
  c14: { choice: [ { when: "true", next: c15 } ], default: done }
  c15: { choice: [ { when: "true", next: c16 } ], default: done }
  c16: { choice: [ { when: "true", next: c17 } ], default: done }
  c17: { choice: [ { when: "true", next: c18 } ], default: done }
  c18: { choice: [ { when: "true", next: c19 } ], default: done }
  c19: { choice: [ { when: "true", next: c20 } ], default: done }
  c20: { choice: [ { when: "true", next: c21 } ], default: done }
  c21: { choice: [ { when: "true", next: c22 } ], default: done }
  c22: { choice: [ { when: "true", next: c23 } ], default: done }
  c23: { choice: [ { when: "true", next: c24 } ], default: done }
  c24: { choice: [ { when: "true", next: c25 } ], default: done }
  c25: { choice: [ { when: "true", next: c26 } ], default: done }
  c26: { choice: [ { when: "true", next: c27 } ], default: done }
  c27: { choice: [ { when: "true", next: c28 } ], default: done }
  c28: { choice: [ { when: "true", next: c29 } ], default: done }
  c29: { choice: [ { when: "true", next: c30 } ], default: done }
  c30: { choice: [ { when: "true", next: c31 } ], default: done }
  c31: { choice: [ { when: "true", next: c32 } ], default: done }
  c32: { choice: [ { when: "true", next: c33 } ], default: done }
  c33: { choice: [ { when: "true", next: c34 } ], default: done }
  c34: { choice: [ { when: "true", next: c35 } ], default: done }
  c35: { choice: [ { when: "true", next: c36 } ], default: done }
  c36: { choice: [ { when: "true", next: c37 } ], default: done }
  c37: { choice: [ { when: "true", next: c38 } ], default: done }
  c38: { choice: [ { when: "true", next: c39 } ], default: done }
  c39: { choice: [ { when: "true", next: c40 } ], default: done }
  c40: { choice: [ { when: "true", next: c41 } ], default: done }
  c41: { choice: [ { when: "true", next: c42 } ], default: done }
  c42: { choice: [ { when: "true", next: c43 } ], default: done }
  c43: { choice: [ { when: "true", next: c44 } ], default: done }
  c44: { choice: [ { when: "true", next: c45 } ], default: done }
  c45: { choice: [ { when: "true", next: c46 } ], default: done }
  c46: { choice: [ { when: "true", next: c47 } ], default: done }
  c47: { choice: [ { when: "true", next: c48 } ], default: done }
  c48: { choice: [ { when: "true", next: c49 } ], default: done }
  c49: { choice: [ { when: "true", next: c50 } ], default: done }
  c50: { choice: [ { when: "true", next: c51 } ], default: done }
  c51: { choice: [ { when: "true", next: c52 } ], default: done }
  c52: { choice: [ { when: "true", next: c53 } ], default: done }
  c53: { choice: [ { when: "true", next: c54 } ], default: done }
  c54: { choice: [ { when: "true", next: c55 } ], default: done }
  c55: { choice: [ { when: "true", next: c56 } ], default: done }
  c56: { choice: [ { when: "true", next: c57 } ], default: done }
  c57: { choice: [ { when: "true", next: c58 } ], default: done }
  c58: { choice: [ { when: "true", next: c59 } ], default: done }
  c59: { choice: [ { when: "true", next: c60 } ], default: done }
  c60: { choice: [ { when: "true", next: c61 } ], default: done }
  c61: { choice: [ { when: "true", next: c62 } ], default: done }
  c62: { choice: [ { when: "true", next: bad } ], default: done }
  bad: { fail: true }
  done: { succeed: true }
EOF

write_workflow deep.yaml <<\EOF
cairn: 1
name: deep
start: m
states:
  m:
    map: { items: [b, a], use: deep-inner.yaml, with: { item: "{{ item }}" } }
    next: done
    on_failure: recover
  recover: { do: exec, with: { shell: "echo recovered >>trace" }, next: done }
  done: { succeed: true }
EOF

write_workflow shallow.yaml <<\EOF
cairn: 1
name: shallow
start: m
states:
  m:
    map: { items: [b, a], use: deep-inner.yaml, with: { item: "{{ item }}" } }
    next: done
    on_failure: fail
  done: { succeed: true }
EOF

test_expect_success 'a map whose failing instance stops a waiting one takes its on_failure once, however deep' '
	timeout 60 "$CAIRN_BIN" run deep.yaml >out &&
	echo recovered >expect &&
	test_cmp expect trace &&
	RUN=$(last_run) &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\'' AND state = '\''m'\''")" = 1 &&
	test_must_fail_with 1 timeout 60 "$CAIRN_BIN" run shallow.yaml >out &&
	RUN=$(last_run) &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''run.finished'\''")" = 1 &&
	test "$(q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\'' AND state = '\''m'\''")" = 1 &&
	cairn verify >/dev/null
'

test_done
