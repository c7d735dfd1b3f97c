#!/bin/bash
# t0002-run: cairn run end to end with real commands: order of side
# effects, failures, on_failure, retries, timeouts, parallel branches,
# choice, fail messages, wait, outputs, params, --json, logs, journal
# discovery and overrides, file modes, inherited descriptors and secrets.
. "$(dirname "$0")/lib.sh"

# ---- fixtures ----------------------------------------------------------------

write_workflow seq.yaml <<\EOF
cairn: 1
name: seq
start: one
states:
  one:
    do: exec
    with: { argv: [sh, -c, "echo one >>trace.txt"] }
    next: two
  two:
    do: exec
    with: { shell: "echo two >>trace.txt; echo hello from two; echo to stderr >&2" }
    next: three
  three:
    do: exec
    with: { argv: [sh, -c, "echo three >>trace.txt"] }
    next: done
  done: { succeed: true }
EOF

write_workflow fail.yaml <<\EOF
cairn: 1
name: fail
start: prepare
states:
  prepare:
    do: exec
    with: { argv: [sh, -c, "echo prepare >>fail.txt"] }
    next: boom
  boom:
    do: exec
    with: { shell: "echo boom >>fail.txt; echo going down; exit 3" }
    next: never
  never:
    do: exec
    with: { argv: [sh, -c, "echo never >>fail.txt"] }
    next: done
  done: { succeed: true }
EOF

write_workflow onfail.yaml <<\EOF
cairn: 1
name: onfail
start: boom
states:
  boom:
    do: exec
    with: { shell: "echo boom >>onfail.txt; exit 1" }
    on_failure: cleanup
    next: never
  never:
    do: exec
    with: { argv: [sh, -c, "echo never >>onfail.txt"] }
    next: done
  cleanup:
    do: exec
    with: { argv: [sh, -c, "echo cleanup >>onfail.txt"] }
    next: done
  done: { succeed: true }
EOF

cat >count.sh <<\EOF
# count.sh FILE NEEDED: counts its runs in FILE, succeeds from the NEEDED-th.
n=$(cat "$1" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$1"
echo "attempt $n"
[ "$n" -ge "$2" ]
EOF

write_workflow retry.yaml <<\EOF
cairn: 1
name: retry
start: flaky
states:
  flaky:
    do: exec
    with: { argv: [sh, count.sh, flaky.count, "3"] }
    retry: { attempts: 3, delay: 100ms, backoff: 2 }
    next: done
  done: { succeed: true }
EOF

write_workflow retry-out.yaml <<\EOF
cairn: 1
name: retry-out
start: flaky
states:
  flaky:
    do: exec
    with: { argv: [sh, count.sh, out.count, "3"] }
    retry: { attempts: 2, delay: 50ms }
    next: done
  done: { succeed: true }
EOF

write_workflow timeout.yaml <<\EOF
cairn: 1
name: timeout
start: slow
states:
  slow:
    do: exec
    with: { shell: "echo $$ >sh.pid; sleep 30 >/dev/null 2>&1 & echo $! >bg.pid; wait" }
    timeout: 1s
    next: done
  done: { succeed: true }
EOF

cat >meet.sh <<\EOF
# meet.sh ME OTHER TRIES: leaves ME.mark, then waits for OTHER.mark.
touch "$1.mark"
i=0
while [ ! -e "$2.mark" ]; do
	i=$((i + 1))
	if [ "$i" -gt "$3" ]; then
		echo "$1 did not meet $2"
		exit 1
	fi
	sleep 0.05
done
echo "$1 met $2"
EOF

write_workflow parallel.yaml <<\EOF
cairn: 1
name: parallel
start: meet
states:
  meet:
    parallel:
      left: { do: exec, with: { argv: [sh, meet.sh, left, right, "100"] } }
      right: { do: exec, with: { argv: [sh, meet.sh, right, left, "100"] } }
    next: done
  done: { succeed: true }
EOF

# The same two steps one after the other: they cannot meet.
write_workflow serial.yaml <<\EOF
cairn: 1
name: serial
start: left
states:
  left:
    do: exec
    with: { argv: [sh, meet.sh, sleft, sright, "10"] }
    next: right
  right:
    do: exec
    with: { argv: [sh, meet.sh, sright, sleft, "10"] }
    next: done
  done: { succeed: true }
EOF

write_workflow choice.yaml <<\EOF
cairn: 1
name: choice
params:
  color: { default: green }
start: pick
states:
  pick:
    choice:
      - when: "params.color == 'blue'"
        next: blue
      - when: "params.color == 'red'"
        next: red
    default: green
  blue:
    do: exec
    with: { argv: [sh, -c, "echo blue >>choice.txt"] }
    next: done
  red:
    do: exec
    with: { argv: [sh, -c, "echo red >>choice.txt"] }
    next: done
  green:
    do: exec
    with: { argv: [sh, -c, "echo green >>choice.txt"] }
    next: done
  done: { succeed: true }
EOF

write_workflow wait.yaml <<\EOF
cairn: 1
name: wait
start: first
states:
  first:
    do: exec
    with: { argv: [sh, -c, "echo first >>wait.txt"] }
    next: pause
  pause:
    wait: 1s
    next: second
  second:
    do: exec
    with: { argv: [sh, -c, "echo second >>wait.txt"] }
    next: done
  done: { succeed: true }
EOF

cat >produce.sh <<\EOF
printf '{"k": "v-42", "n": 7}\n'
EOF

write_workflow outputs.yaml <<\EOF
cairn: 1
name: outputs
start: produce
states:
  produce:
    do: exec
    with: { argv: [sh, produce.sh] }
    next: consume
  consume:
    do: exec
    with:
      argv: [sh, -c, 'echo "$1 $2 $3" >consumed.txt', sh, "{{ states.produce.output.json.k }}", "n={{ states.produce.output.json.n }}", "code={{ states.produce.output.exit_code }}"]
    next: done
  done: { succeed: true }
EOF

write_workflow params.yaml <<\EOF
cairn: 1
name: params
params:
  release: { default: "1.0.0", pattern: "^[0-9]+\\.[0-9]+\\.[0-9]+$" }
  count: { default: 1, type: integer }
start: show
states:
  show:
    do: exec
    with: { argv: [sh, -c, 'echo "$1 $2" | tee params.txt', sh, "{{ params.release }}", "next={{ params.count + 1 }}"] }
    next: done
  done: { succeed: true }
EOF

# No shell: dash keeps descriptors of its own (10 and up). ls lists its own,
# which are 0-2 and the one it reads /proc/self/fd with.
write_workflow fds.yaml <<\EOF
cairn: 1
name: fds
start: fds
states:
  fds:
    do: exec
    with: { argv: [ls, -l, /proc/self/fd] }
    next: done
  done: { succeed: true }
EOF

# fds_in LOG: "FD TARGET" for each descriptor an `ls -l /proc/self/fd`
# printed into LOG (pipes and sockets without their inode).
fds_in() {
	awk "/ -> / { print \$(NF - 2), \$NF }" "$1" |
		sed -E "s/(pipe|socket):\[[0-9]+\]/pipe/; s|^([0-9]+) /proc/[0-9]+/fd$|\1 ls-dir|"
}

SECRET=tok-5f3a9c1e7b2d
export SECRET

cat >leak.sh <<\EOF
echo "arg: $1" >&2
echo "env: $API_TOKEN" >&2
printf '{"token": "%s"}\n' "$1"
EOF

write_workflow secret.yaml <<\EOF
cairn: 1
name: secret
secrets: [API_TOKEN]
start: leak
states:
  leak:
    do: exec
    with: { argv: [sh, leak.sh, "{{ secrets.API_TOKEN }}"] }
    next: echo
  echo:
    do: exec
    with: { shell: "echo the token is $API_TOKEN; exit 1" }
    on_failure: done
    next: done
  done: { succeed: true }
EOF

# ---- before any journal exists ---------------------------------------------------

test_expect_success 'a --set that breaks the pattern: exit 2, no journal created' '
	test_must_fail_with 2 cairn run params.yaml --set release=latest >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: param '\''release'\'' must match '\''^[0-9]+\\.[0-9]+\\.[0-9]+\$'\'', got '\''latest'\''" >expect &&
	test_cmp expect err &&
	test_path_is_missing .cairn
'

test_expect_success 'a --set of the wrong type, an unknown param, no value: exit 2, no journal' '
	test_must_fail_with 2 cairn run params.yaml --set count=many 2>err &&
	echo "cairn: param '\''count'\'' must be an integer, got '\''many'\''" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn run params.yaml --set colour=red 2>err &&
	echo "cairn: unknown param '\''colour'\'' (hint: declared params are release, count)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn run params.yaml --set count 2>err &&
	echo "cairn: invalid param setting '\''count'\'' (hint: use --set NAME=VALUE)" >expect &&
	test_cmp expect err &&
	test_path_is_missing .cairn
'

test_expect_success 'the first run creates a private journal and run folder, whatever the umask' '
	umask 000 &&
	cairn run params.yaml >out &&
	RUN=$(last_run) &&
	stat -c "%a %n" .cairn .cairn/journal.db .cairn/runs .cairn/runs/$RUN >actual &&
	cat >expect <<-EOF &&
	700 .cairn
	600 .cairn/journal.db
	700 .cairn/runs
	700 .cairn/runs/$RUN
	EOF
	test_cmp expect actual
'

test_expect_success 'the step log is private (0600), whatever the umask' '
	RUN=$(last_run) &&
	stat -c "%a" .cairn/runs/$RUN/show.log >actual &&
	echo 600 >expect &&
	test_cmp expect actual &&
	test_grep "^1.0.0 next=2$" .cairn/runs/$RUN/show.log
'

test_expect_success 'a silent success makes no log file; a silent failure one that says why' '
	write_workflow quiet.yaml <<-\EOF &&
	cairn: 1
	name: quiet
	start: quiet
	states:
	  quiet: { do: exec, with: { argv: ["true"] }, next: mute }
	  mute: { do: exec, with: { argv: ["false"] }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 1 cairn run quiet.yaml >out 2>&1 &&
	RUN=$(last_run) &&
	test_path_is_missing .cairn/runs/$RUN/quiet.log &&
	printf "%s\n" "--- action attempt 1 ---" \
	  "(no output; exited with status 1)" >expect &&
	test_cmp expect .cairn/runs/$RUN/mute.log &&
	test_grep -F "(log: $TRASH/.cairn/runs/$RUN/mute.log)" out
'

# ---- a plain run ---------------------------------------------------------------

test_expect_success 'a run of three states succeeds, side effects in order' '
	cairn run seq.yaml >out 2>err &&
	test_cmp /dev/null err &&
	printf "one\ntwo\nthree\n" >expect &&
	test_cmp expect trace.txt
'

test_expect_success 'the journal holds the run as succeeded, states in order' '
	RUN=$(last_run) &&
	q "SELECT workflow, status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo "seq|succeeded" >expect &&
	test_cmp expect actual &&
	q "SELECT state FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\''
	   AND json_extract(payload, '\''$.outcome'\'') = '\''succeeded'\'' ORDER BY seq" >actual &&
	printf "one\ntwo\nthree\n" >expect &&
	test_cmp expect actual &&
	q "SELECT kind FROM events WHERE run_id = '\''$RUN'\'' ORDER BY seq LIMIT 1" >actual &&
	echo run.started >expect &&
	test_cmp expect actual &&
	q "SELECT kind || '\'' '\'' || json_extract(payload, '\''$.status'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' ORDER BY seq DESC LIMIT 1" >actual &&
	echo "run.finished succeeded" >expect &&
	test_cmp expect actual
'

test_expect_success 'plain output: the run, a line per start and end, then the result' '
	RUN=$(last_run) &&
	sed -E "s/ [0-9.]+m?s$/ D/" out >actual &&
	cat >expect <<-EOF &&
	run $RUN: seq
	start one
	✓ one D
	start two
	✓ two D
	start three
	✓ three D
	run $RUN succeeded in D
	EOF
	test_cmp expect actual
'

test_expect_success 'the log of a state holds its output (stdout and stderr)' '
	RUN=$(last_run) &&
	log=.cairn/runs/$RUN/two.log &&
	test_path_is_file "$log" &&
	head -n 1 "$log" >actual &&
	echo "--- action attempt 1 ---" >expect &&
	test_cmp expect actual &&
	sed 1d "$log" | sort >actual &&
	printf "hello from two\nto stderr\n" >expect &&
	test_cmp expect actual
'

# ---- failures ------------------------------------------------------------------

test_expect_success 'a program that cannot run: its line has a duration like any other' '
	write_workflow norun.yaml <<-\EOF &&
	cairn: 1
	name: norun
	start: e
	states:
	  e:
	    do: exec
	    with: { argv: [./no-such-program] }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 1 cairn run norun.yaml >out 2>&1 &&
	test_grep -E "^✗ e failed: cannot run .\./no-such-program.: no such file or directory \([0-9]+ms\)$" out
'

test_expect_success 'a failing command: exit 1, later states never run' '
	test_must_fail_with 1 cairn run fail.yaml >out 2>err &&
	printf "prepare\nboom\n" >expect &&
	test_cmp expect fail.txt
'

test_expect_success 'the failure message names the state and its log' '
	RUN=$(last_run) &&
	test_grep -F "✗ boom failed: exited with status 3: going down (" out &&
	tail -n 1 out >last &&
	test_grep -E "^run $RUN failed in [0-9.]+m?s: " last &&
	test_grep -F ": state '\''boom'\'' failed: exited with status 3: going down (log: $TRASH/.cairn/runs/$RUN/boom.log)" last &&
	test_grep "going down" .cairn/runs/$RUN/boom.log &&
	q "SELECT status FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo failed >expect &&
	test_cmp expect actual
'

test_expect_success 'on_failure: STATE goes on to that state' '
	cairn run onfail.yaml >out &&
	printf "boom\ncleanup\n" >expect &&
	test_cmp expect onfail.txt &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.from'\''), json_extract(payload, '\''$.to'\''),
	   json_extract(payload, '\''$.reason'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\'' ORDER BY seq" >actual &&
	printf "boom|cleanup|on_failure\ncleanup|done|next\n" >expect &&
	head -n 2 actual >actual2 &&
	test_cmp expect actual2 &&
	test_grep "^→ cleanup (on_failure)$" out
'

# ---- retries and timeouts --------------------------------------------------------

test_expect_success 'a command failing twice then succeeding: 3 attempts journaled' '
	cairn run retry.yaml >out &&
	echo 3 >expect &&
	test_cmp expect flaky.count &&
	RUN=$(last_run) &&
	q "SELECT attempt || '\'' '\'' || json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' ORDER BY seq" >actual &&
	printf "1 failed\n2 failed\n3 succeeded\n" >expect &&
	test_cmp expect actual &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.started'\''" >actual &&
	echo 3 >expect &&
	test_cmp expect actual
'

test_expect_success 'each retry is an action.retrying event with the next attempt' '
	RUN=$(last_run) &&
	q "SELECT state || '\'' '\'' || json_extract(payload, '\''$.next_attempt'\'') || '\'' '\''
	   || json_extract(payload, '\''$.delay_ms'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''action.retrying'\'' ORDER BY seq" >actual &&
	printf "flaky 2 100\nflaky 3 200\n" >expect &&
	test_cmp expect actual &&
	test_grep "^↻ flaky: attempt 2 in 100ms$" out &&
	test_grep "^↻ flaky: attempt 3 in 200ms$" out &&
	test_grep "^start flaky (attempt 3)$" out &&
	grep -c -- "--- action attempt" .cairn/runs/$RUN/flaky.log >n &&
	echo 3 >expect &&
	test_cmp expect n
'

test_expect_success 'retries run out: exit 1 after exactly the allowed attempts' '
	test_must_fail_with 1 cairn run retry-out.yaml >out &&
	echo 2 >expect &&
	test_cmp expect out.count &&
	RUN=$(last_run) &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.started'\''" >actual &&
	test_cmp expect actual
'

test_expect_success 'a timeout stops the whole process group; the attempt is timed_out' '
	test_must_fail_with 1 cairn run timeout.yaml >out &&
	test -s sh.pid &&
	test -s bg.pid &&
	if proc_alive "$(cat bg.pid)"; then
		echo "the background sleep $(cat bg.pid) survived the timeout"
		kill "$(cat bg.pid)"
		exit 1
	fi &&
	if proc_alive "$(cat sh.pid)"; then
		echo "the shell $(cat sh.pid) survived the timeout"
		exit 1
	fi &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.outcome'\'') || '\'' '\'' || json_extract(payload, '\''$.error'\'')
	   FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\''" >actual &&
	echo "timed_out timed out after 1s" >expect &&
	test_cmp expect actual &&
	test_grep -F "state '\''slow'\'' failed: timed out after 1s (log: " out
'

# ---- parallel, choice, wait ---------------------------------------------------------

test_expect_success 'parallel branches run at the same time' '
	cairn run parallel.yaml >out &&
	RUN=$(last_run) &&
	test_grep "^left met right$" .cairn/runs/$RUN/meet.left.log &&
	test_grep "^right met left$" .cairn/runs/$RUN/meet.right.log &&
	q "SELECT state FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\''
	   ORDER BY state" >actual &&
	printf "meet/left\nmeet/right\n" >expect &&
	test_cmp expect actual
'

test_expect_success 'control: the same steps one after the other cannot meet' '
	test_must_fail_with 1 cairn run serial.yaml >out &&
	test_grep -F "state '\''left'\'' failed" out
'

test_expect_success 'choice takes the default without --set' '
	cairn run choice.yaml >out &&
	echo green >expect &&
	test_cmp expect choice.txt &&
	test_grep "^→ green (default)$" out
'

test_expect_success 'choice takes the branch whose when holds, from --set' '
	rm choice.txt &&
	cairn run choice.yaml --set color=red >out &&
	cairn run choice.yaml --set color=blue >out2 &&
	printf "red\nblue\n" >expect &&
	test_cmp expect choice.txt &&
	test_grep "^→ blue (when: params.color == '\''blue'\'')$" out2 &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.to'\'') || '\'' '\'' || json_extract(payload, '\''$.reason'\'')
	   FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''transition'\'' AND state = '\''pick'\''" >actual &&
	echo "blue when: params.color == '\''blue'\''" >expect &&
	test_cmp expect actual
'

test_expect_success 'a fail state'\''s message is rendered: params, outputs, secrets as ***' '
	write_workflow failmsg.yaml <<-\EOF &&
	cairn: 1
	name: failmsg
	params:
	  colour: { default: blue }
	secrets: [TOKEN]
	start: look
	states:
	  look:
	    do: exec
	    with: { argv: [sh, -c, "echo {\\\"live\\\": \\\"blue\\\"}"] }
	    next: pick
	  pick:
	    choice:
	      - when: states.look.output.json.live == params.colour
	        next: refuse
	    default: done
	  refuse:
	    fail: true
	    message: "colour {{ params.colour }} is live ({{ states.look.output.json.live }}); token {{ secrets.TOKEN }}"
	  done: { succeed: true }
	EOF
	TOKEN=tok-s3cret test_must_fail_with 1 cairn run failmsg.yaml >out 2>&1 &&
	test_grep -F "reached fail state '\''refuse'\'': colour blue is live (blue); token ***" out &&
	{ grep -rF tok-s3cret .cairn out; test $? -eq 1; } &&
	# an output the run never made: the message as written
	sed "s/token {{ secrets.TOKEN }}/{{ states.look.output.json.nothing }}/" failmsg.yaml >failmsg2.yaml &&
	TOKEN=zz-unused test_must_fail_with 1 cairn run failmsg2.yaml >out 2>&1 &&
	test_grep -F "reached fail state '\''refuse'\'': colour {{ params.colour }} is live ({{ states.look.output.json.live }}); {{ states.look.output.json.nothing }}" out
'

test_expect_success 'a fail state'\''s message must hold valid references' '
	write_workflow failref.yaml <<-\EOF &&
	cairn: 1
	name: failref
	start: refuse
	states:
	  refuse: { fail: true, message: "colour {{ params.colour }}" }
	EOF
	test_must_fail_with 2 cairn validate failref.yaml >out 2>&1 &&
	test_grep "failref.yaml:5:.*unknown param .colour." out
'

test_expect_success 'a wait state waits its time before going on' '
	cairn run wait.yaml >out &&
	printf "first\nsecond\n" >expect &&
	test_cmp expect wait.txt &&
	test_grep "^… pause: waiting " out &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.wait_until_ms'\'') - time_ms FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''pause'\''" >left &&
	test "$(cat left)" -gt 900 &&
	test "$(cat left)" -le 1000 &&
	q "SELECT (SELECT time_ms FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''second'\'')
	   >= (SELECT json_extract(payload, '\''$.wait_until_ms'\'') FROM events
	       WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''pause'\'')" >ok &&
	echo 1 >expect &&
	test_cmp expect ok
'

# ---- outputs and params ----------------------------------------------------------

test_expect_success 'outputs: json fields and exit_code flow into a later state' '
	cairn run outputs.yaml >out &&
	echo "v-42 n=7 code=0" >expect &&
	test_cmp expect consumed.txt &&
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.outputs.json.k'\'') || '\'' '\'' || json_extract(payload, '\''$.outputs.exit_code'\'')
	   FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''produce'\''" >actual &&
	echo "v-42 0" >expect &&
	test_cmp expect actual
'

test_expect_success 'the resolved inputs are journaled on state.entered' '
	RUN=$(last_run) &&
	q "SELECT json_extract(payload, '\''$.inputs.argv[4]'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''consume'\''" >actual &&
	echo "v-42" >expect &&
	test_cmp expect actual
'

test_expect_success 'params: defaults, and --set typed values' '
	cairn run params.yaml >out &&
	echo "1.0.0 next=2" >expect &&
	test_cmp expect params.txt &&
	cairn run params.yaml --set count=3 --set release=2.5.0 >out &&
	echo "2.5.0 next=4" >expect &&
	test_cmp expect params.txt &&
	RUN=$(last_run) &&
	q "SELECT release || '\'' '\'' || params FROM runs WHERE id = '\''$RUN'\''" >actual &&
	echo "2.5.0 {\"count\":3,\"release\":\"2.5.0\"}" >expect &&
	test_cmp expect actual
'

# ---- --json -----------------------------------------------------------------------

test_expect_success '--json: every line is a JSON object, the last one the result' '
	rm -f trace.txt &&
	cairn run --json seq.yaml >out.json 2>err &&
	test_cmp /dev/null err &&
	jq -R -e "fromjson | type == \"object\"" out.json >/dev/null &&
	tail -n 1 out.json >result &&
	RUN=$(last_run) &&
	jq -e --arg run "$RUN" ".kind == \"result\" and .exit_code == 0 and .status == \"succeeded\"
		and .run == \$run" result &&
	sed "\$d" out.json >events.json &&
	jq -s -e --arg run "$RUN" "length > 5 and all(.run == \$run) and
		([.[].seq] | . == sort) and (map(.kind) | index(\"run.finished\") == length - 1)" events.json
'

test_expect_success '--json: the kinds start with run.started' '
	head -n 1 out.json >first &&
	jq -e ".kind == \"run.started\"" first
'

test_expect_success '--json: a run that cannot start still ends with a result line' '
	printf "cairn: 1\nname: bad\nstart: nowhere\nstates:\n  a: { succeed: true }\n" >bad.yaml &&
	test_must_fail_with 2 cairn run --json bad.yaml >out.json 2>err &&
	test $(wc -l <out.json) = 1 &&
	jq -e ".kind == \"result\" and .status == \"error\" and .exit_code == 2 and
		(.message | startswith(\"bad.yaml:3:8: error: \"))" out.json &&
	test_grep "^bad.yaml:3:8: error: " err &&
	test_must_fail_with 2 cairn resume --json NOSUCHRUN >out.json 2>err &&
	jq -e ".kind == \"result\" and .exit_code == 2 and (.message | test(\"NOSUCHRUN\"))" out.json &&
	test_must_fail_with 2 cairn rollback --json NOSUCHRUN >out.json 2>err &&
	jq -e ".kind == \"result\" and .exit_code == 2" out.json &&
	cairn run seq.yaml >out.txt &&
	test_must_fail_with 2 cairn run bad.yaml >out.txt 2>err &&
	test_cmp /dev/null out.txt
'

test_expect_success '--json of a failing run: the result has exit_code 1 and the message' '
	rm -f fail.txt &&
	test_must_fail_with 1 cairn run --json fail.yaml >out.json &&
	jq -R -e "fromjson | type == \"object\"" out.json >/dev/null &&
	tail -n 1 out.json >result &&
	RUN=$(last_run) &&
	jq -e --arg log "$TRASH/.cairn/runs/$RUN/boom.log" ".kind == \"result\" and .exit_code == 1 and
		.status == \"failed\" and .state == \"boom\" and
		(.message | endswith(\"state '\''boom'\'' failed: exited with status 3: going down (log: \" + \$log + \"); rolled back: nothing to undo\"))" result
'

# ---- where the journal is -------------------------------------------------------------

test_expect_success 'from a subfolder, the journal of a folder above is used' '
	q "SELECT count(*) FROM runs" >before &&
	mkdir -p sub/deeper &&
	(
		cd sub/deeper &&
		cairn run ../../seq.yaml >out
	) &&
	test_path_is_missing sub/.cairn &&
	test_path_is_missing sub/deeper/.cairn &&
	q "SELECT count(*) FROM runs" >after &&
	test "$(cat after)" -eq $(($(cat before) + 1)) &&
	RUN=$(last_run) &&
	test_path_is_dir .cairn/runs/$RUN
'

test_expect_success 'CAIRN_JOURNAL names another journal' '
	journal_snapshot >before &&
	CAIRN_JOURNAL=$TRASH/elsewhere/j.db cairn run seq.yaml >out &&
	journal_snapshot >after &&
	test_cmp before after &&
	test_path_is_file elsewhere/j.db &&
	RUN=$(last_run elsewhere/j.db) &&
	test_path_is_dir elsewhere/runs/$RUN &&
	CAIRN_JOURNAL=$TRASH/elsewhere/j.db cairn history --json >hist &&
	jq -e --arg run "$RUN" "select(.id == \$run)" hist
'

test_expect_success '--journal wins over CAIRN_JOURNAL' '
	CAIRN_JOURNAL=$TRASH/env/j.db cairn run --journal "$TRASH/opt/j.db" seq.yaml >out &&
	test_path_is_missing env &&
	test_path_is_file opt/j.db &&
	RUN=$(last_run opt/j.db) &&
	test_path_is_dir opt/runs/$RUN
'

# ---- what children get ------------------------------------------------------------------

test_expect_success 'control: the descriptor check sees an inherited descriptor' '
	ls -l /proc/self/fd 7<fds.yaml >fake.log &&
	fds_in fake.log >actual &&
	test_grep "^7 $TRASH/fds.yaml$" actual &&
	test_grep "^3 ls-dir$" actual
'

test_expect_success 'children inherit no descriptor but 0, 1 and 2' '
	cairn run fds.yaml >out &&
	fds_in .cairn/runs/$(last_run)/fds.log >actual &&
	cat >expect <<-\EOF &&
	0 /dev/null
	1 pipe
	2 pipe
	3 ls-dir
	EOF
	test_cmp expect actual
'

test_expect_success 'not even a descriptor cairn itself inherited without close-on-exec' '
	cairn run fds.yaml 7<fds.yaml 9>extra.txt >out &&
	fds_in .cairn/runs/$(last_run)/fds.log >actual &&
	printf "0 /dev/null\n1 pipe\n2 pipe\n3 ls-dir\n" >expect &&
	test_cmp expect actual
'

test_expect_success 'a secret reaches the step but not the journal, logs or terminal' '
	API_TOKEN=$SECRET cairn run secret.yaml >out 2>err &&
	API_TOKEN=$SECRET cairn run --json secret.yaml >out.json 2>err.json &&
	RUN=$(last_run) &&
	sqlite3 .cairn/journal.db .dump >dump &&
	test_grep ! -F "$SECRET" dump &&
	test_grep -F "***" dump &&
	if grep -r -q -F "$SECRET" .cairn; then
		grep -r -l -F "$SECRET" .cairn
		exit 1
	fi &&
	test_grep ! -F "$SECRET" out &&
	test_grep ! -F "$SECRET" err &&
	test_grep ! -F "$SECRET" out.json &&
	test_grep ! -F "$SECRET" err.json
'

test_expect_success 'the secret is *** in the log, the journaled inputs and the outputs' '
	RUN=$(last_run) &&
	head -n 1 .cairn/runs/$RUN/leak.log >actual &&
	echo "--- action attempt 1 ---" >expect &&
	test_cmp expect actual &&
	sed 1d .cairn/runs/$RUN/leak.log | sort >actual &&
	cat >expect <<-\EOF &&
	arg: ***
	env: ***
	{"token": "***"}
	EOF
	test_cmp expect actual &&
	test_grep "^the token is \*\*\*$" .cairn/runs/$RUN/echo.log &&
	q "SELECT json_extract(payload, '\''$.inputs.argv[2]'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''leak'\''" >actual &&
	echo "***" >expect &&
	test_cmp expect actual &&
	q "SELECT json_extract(payload, '\''$.outputs.json.token'\'') FROM events
	   WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''leak'\''" >actual &&
	test_cmp expect actual
'

# The engine's process has its heap resident from the start (common/heap.c:
# one madvise instead of a page fault per page). Read from the step's
# parent, which is cairn: a run this small would otherwise have a few
# hundred KiB of heap resident. Not with a sanitizer's malloc.
write_workflow heap.yaml <<\EOF
cairn: 1
name: heap
start: look
states:
  look:
    do: exec
    with: { argv: [sh, -c, "awk '/\\[heap\\]/ { h = 1 } h && /^Rss:/ { print $2; exit }' /proc/$PPID/smaps >heap-rss.txt"] }
    next: done
  done: { succeed: true }
EOF

kernel=$(uname -r)
kmajor=${kernel%%.*}
kminor=${kernel#*.}
kminor=${kminor%%[!0-9]*}
if ldd "$CAIRN_BIN" 2>/dev/null | grep -q 'lib[at]san' ||
	nm -D "$CAIRN_BIN" 2>/dev/null | grep -q ' __[at]san_init'; then
	test_skip 'cairn run makes about 2 MiB of heap resident before it runs' \
		"a sanitizer build: its malloc is not glibc's"
elif [ "$kmajor" -lt 5 ] || { [ "$kmajor" -eq 5 ] && [ "${kminor:-0}" -lt 14 ]; }; then
	test_skip 'cairn run makes about 2 MiB of heap resident before it runs' \
		"Linux $kernel has no MADV_POPULATE_WRITE (5.14)"
else
	test_expect_success 'cairn run makes about 2 MiB of heap resident before it runs' '
		cairn run heap.yaml >/dev/null &&
		test "$(cat heap-rss.txt)" -ge 2000
	'
fi

test_done
