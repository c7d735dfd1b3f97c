#!/bin/bash
# t0017-ready: the `ready:` check of an action (run after it succeeds, sees
# its outputs as self.output, decides the attempt; a state that ran but
# never got ready is undone by a rollback, once, with its action's
# outputs, also when a stop cut the check short), and `undo: false`.
. "$(dirname "$0")/lib.sh"

write_workflow ready.yaml <<\EOF
cairn: 1
name: ready
start: svc
states:
  svc:
    do: exec
    with: { shell: "echo started >>log.txt; echo '{\"port\": 4711}'" }
    ready: { do: exec, with: { shell: "echo 'check {{ self.output.json.port }}' | tee -a log.txt; test -e ok" } }
    undo: { do: exec, with: { shell: "echo stopped >>log.txt" } }
    retry: { attempts: 2, delay: 10ms }
    next: after
  after:
    do: exec
    with: { shell: "echo 'after {{ states.svc.output.json.port }}' >>log.txt" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a ready check that passes: the state succeeds with the action outputs' '
	rm -rf .cairn log.txt && touch ok &&
	cairn run ready.yaml >out &&
	printf "started\ncheck 4711\nafter 4711\n" >expect &&
	test_cmp expect log.txt &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.outputs.json.port'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''svc'\''" >actual &&
	echo 4711 >expect &&
	test_cmp expect actual &&
	test_grep "^--- ready check attempt 1 ---$" .cairn/runs/$RUN/svc.log &&
	test_grep "^check 4711$" .cairn/runs/$RUN/svc.log
'

test_expect_success 'a ready check that fails fails the attempt; retries run both again' '
	rm -rf .cairn log.txt ok &&
	test_must_fail_with 1 cairn run ready.yaml >out &&
	test_grep "✗ svc failed: not ready: exited with status 1" out &&
	printf "started\ncheck 4711\nstarted\ncheck 4711\nstopped\n" >expect &&
	test_cmp expect log.txt
'

test_expect_success 'the state that ran but was never ready is undone once' '
	RUN=$(last_run) &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\''
	   AND state = '\''svc'\'' AND json_extract(payload, '\''$.took_effect'\'')" >actual &&
	echo 2 >expect &&
	test_cmp expect actual &&
	test_grep "^↶ rollback plan: undo:svc$" out
'

# A branch cancelled while its ready check runs (a sibling failed) did
# run its action: the rollback plans its undo, which must see the
# action's outputs, not those of the check the stop cut short.
write_workflow cancelled.yaml <<\EOF
cairn: 1
name: cancelled
start: both
states:
  both:
    parallel:
      svc:
        do: exec
        with: { shell: "echo started >>log.txt; echo '{\"port\": 4711}'" }
        ready: { do: exec, with: { shell: "sleep 30" } }
        undo: { do: exec, with: { shell: "echo 'stopped {{ self.output.json.port }}' >>log.txt" } }
      bad:
        do: exec
        with: { shell: "sleep 0.3; exit 1" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a branch cancelled in its ready check is undone with its action outputs' '
	rm -rf .cairn log.txt &&
	test_must_fail_with 1 cairn run cancelled.yaml >out &&
	test_grep "✗ both/svc cancelled" out &&
	test_grep "^↶ rollback plan: undo:both/svc$" out &&
	printf "started\nstopped 4711\n" >expect &&
	test_cmp expect log.txt &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.outputs.json.port'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''both/svc'\''" >actual &&
	echo 4711 >expect &&
	test_cmp expect actual
'

test_expect_success 'a ready check is not allowed to have a probe' '
	write_workflow bad.yaml <<-\EOF &&
	cairn: 1
	name: bad
	start: a
	states:
	  a:
	    do: exec
	    with: { argv: ["true"] }
	    ready: { do: exec, with: { argv: ["true"] }, probe: { do: exec } }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep -F "bad.yaml:8:50: error: key '\''probe'\'' is not allowed in the ready of state '\''a'\'' (hint: a ready check takes do, with, timeout and retry)" err
'

test_expect_success 'undo: false means no undo at all' '
	write_workflow noundo.yaml <<-\EOF &&
	cairn: 1
	name: noundo
	start: a
	states:
	  a:
	    do: exec
	    with: { shell: "echo a >>log.txt" }
	    undo: false
	    next: b
	  b:
	    do: exec
	    with: { argv: ["false"] }
	    next: done
	  done: { succeed: true }
	EOF
	rm -rf .cairn log.txt &&
	test_must_fail_with 1 cairn run noundo.yaml >out &&
	test_grep "^↶ rollback plan: nothing to undo$" out
'

test_done
