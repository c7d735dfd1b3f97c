#!/bin/bash
# t0045-map-fail-late: a map with `fail_fast: false` runs every instance
# past a failure and fails once all have ended, naming every failed
# instance (a health matrix reports every sick service, not the first);
# the same for a map over a used workflow, whose finished instances are
# undone; resume after kill -9 carries the unfinished instances on instead
# of cancelling them; simulate does as a run does; the loader's checks.
# The default (fail_fast: true) is checked beside it.
# shellcheck disable=SC2016 # SQL and jq programs in single quotes
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1; then
	test_skip_all 'jq is needed'
fi

# outcomes: "PATH OUTCOME" of the last run's action.finished events, sorted.
outcomes() {
	j "SELECT state || ' ' || json_extract(payload, '$.outcome') FROM events
	   WHERE run_id = '$(lr)' AND kind = 'action.finished' ORDER BY state"
}

# finished_error: the error of the last run's run.finished.
finished_error() {
	j "SELECT json_extract(payload, '$.error') FROM events
	   WHERE run_id = '$(lr)' AND kind = 'run.finished'"
}

# The matrix: b and d are sick. One at a time, so each instance after b
# starts only after b has failed.
write_workflow matrix.yaml <<\EOF
cairn: 1
name: matrix
start: health
states:
  health:
    map:
      items: [a, b, c, d, e]
      max_concurrency: 1
      fail_fast: false
      do: exec
      with: { argv: [sh, -c, "echo {{ item }} >>ran.txt; case {{ item }} in b|d) echo '{{ item }} is sick'; exit 1;; esac"] }
    next: done
  done: { succeed: true }
EOF
sed 's/fail_fast: false$/fail_fast: true/' matrix.yaml >fast.yaml

test_expect_success 'fail_fast: false runs every instance and names each failure' '
	in_dir all &&
	test_must_fail_with 1 cairn run ../matrix.yaml >out &&
	sort ran.txt >actual &&
	printf "%s\n" a b c d e >expect &&
	test_cmp expect actual &&
	outcomes >actual &&
	printf "%s\n" "health/a succeeded" "health/b failed" "health/c succeeded" \
		"health/d failed" "health/e succeeded" >expect &&
	test_cmp expect actual &&
	finished_error >err &&
	test_grep -F "state '\''health/b'\'' failed: exited with status 1: b is sick (log: " err &&
	test_grep -F "; 1 more instance failed: health/d" err &&
	test_grep -F "; 1 more instance failed: health/d" out
'

test_expect_success 'fail_fast: true (the default) starts no instance after a failure' '
	in_dir fast &&
	test_must_fail_with 1 cairn run ../fast.yaml >out &&
	sort ran.txt >actual &&
	printf "%s\n" a b >expect &&
	test_cmp expect actual &&
	finished_error >err &&
	test_grep ! "more instance" err
'

test_expect_success 'simulate --fail-at an instance runs the others too' '
	in_dir sim &&
	cairn simulate ../matrix.yaml --fail-at health/a --json >trace.json &&
	jq -e "select(.kind == \"result\") | .exit_code == 1" trace.json &&
	jq -r "select(.kind == \"action.finished\") | .state + \" \" + .payload.outcome" trace.json | sort >actual &&
	printf "%s\n" "health/a failed" "health/b succeeded" "health/c succeeded" \
		"health/d succeeded" "health/e succeeded" >expect &&
	test_cmp expect actual
'

test_expect_success 'graph labels a map that runs every instance' '
	cairn graph matrix.yaml >g.dot &&
	test_grep -F "max_concurrency: 1\\nfail_fast: false" g.dot &&
	cairn graph fast.yaml >g.dot &&
	test_grep ! fail_fast g.dot
'

test_expect_success 'fail_fast must be a boolean, and only a map has it' '
	write_workflow badff.yaml <<-\EOF &&
	cairn: 1
	name: badff
	start: m
	states:
	  m:
	    map: { items: [a], fail_fast: sometimes, do: exec, with: { argv: ["true"] } }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate badff.yaml 2>err &&
	test_grep -F "badff.yaml:6:35: error: '\''fail_fast'\'' in the map of state '\''m'\'' must be a boolean, got a string" err &&
	write_workflow badpar.yaml <<-\EOF &&
	cairn: 1
	name: badpar
	start: p
	states:
	  p:
	    parallel: { a: { do: exec, with: { argv: ["true"] } } }
	    fail_fast: false
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate badpar.yaml 2>err &&
	test_grep -F "badpar.yaml:7:5: error: " err
'

# A map over a used workflow: each instance starts a thing (undone by a
# rollback) then checks it; b's check fails and rolls its own instance
# back. The others finish; the map's failure then undoes them.
write_workflow svc.yaml <<\EOF
cairn: 1
name: svc
params:
  name: { type: string }
start: up
states:
  up:
    do: exec
    with: { argv: [sh, -c, "echo up {{ params.name }} >>ledger"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo down {{ params.name }} >>ledger"] } }
    next: check
  check:
    do: exec
    with: { argv: [sh, -c, "test {{ params.name }} != b || { echo b answers 503; exit 1; }"] }
    next: done
  done: { succeed: true }
EOF
write_workflow svcmap.yaml <<\EOF
cairn: 1
name: svcmap
start: services
states:
  services:
    map:
      items: [a, b, c]
      max_concurrency: 1
      fail_fast: false
      use: svc.yaml
      with: { name: "{{ item }}" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a map over a used workflow: every instance runs, then all are undone' '
	in_dir usemap &&
	cp ../svc.yaml ../svcmap.yaml . &&
	test_must_fail_with 1 cairn run svcmap.yaml >out &&
	printf "%s\n" "up a" "up b" "up c" "down c" "down b" "down a" >expect &&
	test_cmp expect ledger &&
	finished_error >err &&
	test_grep -F "b answers 503" err &&
	test_grep ! "more instance" err
'

# start_bg ARGS...: "cairn ARGS" in the background (bg.out); $BGPID. The
# test's EXIT trap kills it if the body ends first.
start_bg() {
	"$CAIRN_BIN" "$@" >bg.out 2>&1 &
	BGPID=$!
	trap 'if [ -n "${BGPID:-}" ]; then kill -9 "$BGPID" 2>/dev/null; fi' EXIT
}

# b fails at once; c waits for the file "go". kill -9 while c waits, then
# resume: c carries on (it is not cancelled), d and e start, and the run
# fails naming b and d.
write_workflow slow.yaml <<\EOF
cairn: 1
name: slow
start: health
states:
  health:
    map:
      items: [a, b, c, d, e]
      max_concurrency: 2
      fail_fast: false
      do: exec
      idempotent: true
      with: { argv: [sh, -c, "echo {{ item }} >>ran.txt; if [ {{ item }} = c ]; then touch c.started; i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done; fi; case {{ item }} in b|d) echo '{{ item }} is sick'; exit 1;; esac"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'resume after kill -9 carries the other instances on' '
	in_dir resume &&
	start_bg run ../slow.yaml &&
	pid=$BGPID &&
	wait_for_file c.started 10 &&
	wait_until 10 "b has not failed" eval "test \"\$(j \"SELECT count(*) FROM events WHERE kind = '\''action.finished'\'' AND state = '\''health/b'\''\")\" = 1" &&
	kill -9 $pid &&
	{ wait $pid; test $? = 137; } &&
	BGPID= &&
	touch go &&
	test_must_fail_with 1 cairn resume >out &&
	outcomes >actual &&
	test_grep "^health/c succeeded$" actual &&
	test_grep ! cancelled actual &&
	test_grep "^health/e succeeded$" actual &&
	finished_error >err &&
	test_grep -F "state '\''health/b'\'' failed" err &&
	test_grep -F "1 more instance failed: health/d" err
'

# The same over a used workflow: c's check waits for "go" while b has
# failed; after kill -9, resume asks about c's check (not idempotent), as
# c's instance carries on, rather than cancelling it.
test_expect_success 'resume after kill -9 carries a used workflow'\''s instances on' '
	in_dir useresume &&
	sed "s/test {{ params.name }} != b/if [ {{ params.name }} = c ]; then touch c.started; i=0; while [ ! -e go ] \&\& [ \$i -lt 600 ]; do sleep 0.05; i=\$((i + 1)); done; fi; test {{ params.name }} != b/" ../svc.yaml >svc.yaml &&
	sed "s/max_concurrency: 1/max_concurrency: 3/" ../svcmap.yaml >svcmap.yaml &&
	start_bg run svcmap.yaml &&
	pid=$BGPID &&
	wait_for_file c.started 10 &&
	wait_until 10 "b has not failed" eval "test \"\$(j \"SELECT count(*) FROM events WHERE kind = '\''action.finished'\'' AND state = '\''services/b/check'\''\")\" = 1" &&
	kill -9 $pid &&
	{ wait $pid; test $? = 137; } &&
	BGPID= &&
	touch go &&
	test_must_fail_with 3 cairn resume >out &&
	test_grep -F "needs a decision: state '\''services/c/check'\'' was running" out &&
	test_must_fail_with 1 cairn resume --assume succeeded >out &&
	outcomes >actual &&
	test_grep ! cancelled actual &&
	test_grep "^down c$" ledger &&
	finished_error >err &&
	test_grep -F "b answers 503" err
'

# A parallel state whose branches fail together says "branches", not the
# instances of a map.
write_workflow par.yaml <<\EOF
cairn: 1
name: par
start: p
states:
  p:
    parallel:
      a: { do: exec, with: { argv: [/nonexistent/a] } }
      b: { do: exec, with: { argv: [/nonexistent/b] } }
      c: { do: exec, with: { argv: [/nonexistent/c] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'branches of a parallel state that fail together are called branches' '
	test_must_fail_with 1 cairn run par.yaml >out 2>err &&
	test_grep "^run [0-9A-Z]* failed in .*: state .p/[abc]. failed: cannot run ./nonexistent/[abc].: no such file or directory (log: .*); 2 more branches failed: p/[abc], p/[abc]; rolled back: nothing to undo$" out &&
	test_grep ! "instance" out
'

test_done
