#!/bin/bash
# t0028-mapuse: a map over a used workflow (map: { use:, with: }): each
# instance runs the used workflow concurrently within max_concurrency,
# journaled as M/KEY and M/KEY/S; outputs by key; a failed instance cancels
# the running ones (process groups gone), never starts the rest, and the
# rollback undoes instance by instance in reverse item order; SIGINT;
# choices, waits, retries, on_failure, nested use and map of do inside an
# instance; kill -9 after
# every journal commit and resume (each effect exactly once, secrets never
# journaled); simulate --fail-at M/S and M/KEY/S; the loader's errors;
# graph, plan and show. Each test has its own folder and journal.
# shellcheck disable=SC2016 # SQL and jq programs in single quotes
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1 || ! command -v flock >/dev/null 2>&1; then
	test_skip_all 'jq and flock are needed'
fi

# in_dir, j, lr, entered and kill_everywhere: see lib.sh.

# jx KIND STATE JSONPATH: that member of the last run's KIND events of
# STATE, one line each.
jx() {
	j "SELECT json_extract(payload, '$3') FROM events WHERE run_id = '$(lr)'
	   AND kind = '$1' AND state = '$2' ORDER BY seq"
}

# planned: the paths of the last run's rollback plan, in order.
planned() {
	j "SELECT json_extract(value, '$.path') FROM events,
	   json_each(json_extract(payload, '$.steps'))
	   WHERE run_id = '$(lr)' AND kind = 'rollback.planned'"
}

# served_pids: the pids of the sleeps the serve states started.
served_pids() {
	j "SELECT json_extract(payload, '$.outputs.pid') FROM events
	   WHERE kind = 'action.finished' AND state LIKE '%/serve'
	   AND json_extract(payload, '$.outcome') = 'succeeded'"
}

# stop_served: stops the sleeps the serve states started (their groups).
stop_served() {
	local g
	for g in $(j "SELECT json_extract(payload, '$.outputs.pgid') FROM events
	              WHERE kind = 'action.finished' AND state LIKE '%/serve'
	              AND json_extract(payload, '$.outcome') = 'succeeded'"); do
		kill -- "-$g" 2>/dev/null || :
	done
}

# ---- fixtures ----------------------------------------------------------------

# up.sh KEY: an instance starts: counts the instances up at once under
# flock (./running; the highest in ./maxrun), notes "up KEY" in ./ledger.
cat >up.sh <<\EOF
(
	flock 9
	c=$(cat running 2>/dev/null || echo 0); c=$((c + 1)); echo $c >running
	m=$(cat maxrun 2>/dev/null || echo 0); [ $c -gt $m ] && echo $c >maxrun
	echo "up $1" >>ledger
) 9>lockf
printf '{"k":"%s"}\n' "$1"
EOF

# down.sh KEY: it ends after the seconds in sleep.KEY (default 0.3),
# notes "down KEY"; exits 7 when fail.KEY exists.
cat >down.sh <<\EOF
echo $$ >"down.$1.pid"
sleep "$(cat "sleep.$1" 2>/dev/null || echo 0.3)"
(
	flock 9
	c=$(cat running); echo $((c - 1)) >running
	echo "down $1" >>ledger
) 9>lockf
if [ -e "fail.$1" ]; then exit 7; fi
echo '{}'
EOF

# The used workflow: a required param, a secret one, an undo that reads
# its params, a process with its (default) undo, outputs.
write_workflow lib/svc.yaml <<\EOF
cairn: 1
name: svc
params:
  name: {}
  port: { type: integer }
  token: { default: "" }
outputs:
  url: "http://127.0.0.1:{{ params.port }}/{{ params.name }}"
  up: "{{ states.up.output.json.k }}"
start: up
states:
  up:
    do: exec
    with: { argv: [sh, ../up.sh, "{{ params.name }}"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo-up {{ params.name }} >>ledger"] } }
    next: serve
  serve:
    do: process.start
    with: { argv: [sleep, "300"] }
    next: down
  down:
    do: exec
    with: { argv: [sh, ../down.sh, "{{ params.name }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow top.yaml <<\EOF
cairn: 1
name: top
secrets: [API_TOKEN]
params:
  services:
    type: list
    default: [{name: a, port: 8001}, {name: b, port: 8002}, {name: c, port: 8003}]
start: svc
states:
  svc:
    map:
      items: "{{ params.services }}"
      key: "{{ item.name }}"
      max_concurrency: 2
      use: lib/svc.yaml
      with: { name: "{{ item.name }}", port: "{{ item.port }}", token: "{{ secrets.API_TOKEN }}" }
    next: report
  report:
    do: exec
    with: { argv: [sh, -c, "echo report {{ states.svc.output.b.url }} {{ states.svc.output.c.up }} >>ledger"] }
    next: done
  done: { succeed: true }
EOF

SECRET=tok-9f3e-s3cret
export API_TOKEN=$SECRET

# ---- run ---------------------------------------------------------------------

test_expect_success 'map over use: 3 instances, at most 2 at once, journaled M/KEY/S, outputs by key' '
	in_dir run && cp -r ../lib ../top.yaml . &&
	cairn run top.yaml >out 2>err &&
	test "$(cat maxrun)" = 2 &&
	grep -x "report http://127.0.0.1:8002/b c" ledger &&
	entered "svc%" >actual &&
	sort actual >got &&
	cat >expect <<-EOF &&
	svc
	svc/a
	svc/a/done
	svc/a/down
	svc/a/serve
	svc/a/up
	svc/b
	svc/b/done
	svc/b/down
	svc/b/serve
	svc/b/up
	svc/c
	svc/c/done
	svc/c/down
	svc/c/serve
	svc/c/up
	EOF
	test_cmp expect got &&
	{ jx state.entered svc/b "\$.kind" && jx state.entered svc/b "\$.index" &&
	  jx state.entered svc/b "\$.inputs.name" &&
	  jx state.entered svc/b "\$.inputs.token"; } >actual &&
	printf "%s\n" instance 1 b "***" >expect &&
	test_cmp expect actual &&
	jx state.finished svc/c "\$.outputs.url" >actual &&
	echo "http://127.0.0.1:8003/c" >expect &&
	test_cmp expect actual &&
	# c started only once a or b had ended
	first_down=$(grep -n "^down" ledger | head -1 | cut -d: -f1) &&
	up_c=$(grep -n "^up c" ledger | cut -d: -f1) &&
	test "$up_c" -gt "$first_down"
'

test_expect_success 'a secret given through with is nowhere in the journal' '
	in_dir run &&
	sqlite3 "$CAIRN_JOURNAL" .dump >dump &&
	grep -F "\"token\":\"***\"" dump &&
	test_grep ! -F "$SECRET" dump
'

test_expect_success 'rollback on request: instance by instance, reverse item order, each in reverse' '
	in_dir run &&
	cairn rollback --dry-run "$(lr)" >dry &&
	grep -F "echo undo-up b >>ledger" dry &&
	cairn rollback "$(lr)" >out 2>err &&
	planned >actual &&
	cat >expect <<-EOF &&
	svc/c/serve
	svc/c/up
	svc/b/serve
	svc/b/up
	svc/a/serve
	svc/a/up
	EOF
	test_cmp expect actual &&
	grep "^undo-up" ledger >actual &&
	printf "undo-up %s\n" c b a >expect &&
	test_cmp expect actual &&
	for p in $(served_pids); do
		! proc_alive "$p" || { echo "serve $p still runs"; exit 1; }
	done
'

test_expect_success 'show groups each instance with its states; verify is ok' '
	in_dir run &&
	cairn show "$(lr)" >out &&
	sed -n "/^svc /,/^report/p" out | awk "{print \$1}" >actual &&
	cat >expect <<-EOF &&
	svc
	svc/a
	svc/a/up
	svc/a/serve
	svc/a/down
	svc/a/done
	svc/b
	svc/b/up
	svc/b/serve
	svc/b/down
	svc/b/done
	svc/c
	svc/c/up
	svc/c/serve
	svc/c/down
	svc/c/done
	report
	EOF
	test_cmp expect actual &&
	cairn verify >/dev/null
'

# ---- failure -----------------------------------------------------------------

test_expect_success 'an instance fails: the running one is cancelled, the third never starts, undo by instance' '
	in_dir fail && cp -r ../lib ../top.yaml . &&
	echo 5 >sleep.a && touch fail.b &&
	test_must_fail_with 1 cairn run top.yaml >out 2>err &&
	test -z "$(entered "svc/c%")" &&
	{ jx state.finished svc/a "\$.outcome" && jx state.finished svc/a "\$.cancelled" &&
	  jx state.finished svc/b "\$.outcome" && jx state.finished svc/b "\$.cancelled"; } >actual &&
	printf "%s\n" failed 1 failed 0 >expect &&
	test_cmp expect actual &&
	jx action.finished svc/a/down "\$.outcome" >actual &&
	echo cancelled >expect &&
	test_cmp expect actual &&
	{ ! proc_alive "$(cat down.a.pid)" || { echo "down a still runs"; exit 1; }; } &&
	planned >actual &&
	cat >expect <<-EOF &&
	svc/b/serve
	svc/b/up
	svc/a/serve
	svc/a/up
	EOF
	test_cmp expect actual &&
	grep "^undo-up" ledger >actual &&
	printf "undo-up %s\n" b a >expect &&
	test_cmp expect actual &&
	grep "failed in .*: state .svc/b/down. failed: exited with status 7" out &&
	test "$(j "SELECT status FROM runs")" = failed &&
	for p in $(served_pids); do
		! proc_alive "$p" || { echo "serve $p still runs"; exit 1; }
	done
'

# ---- interrupt ---------------------------------------------------------------

test_expect_success 'SIGINT while instances run: run.interrupted, resume finishes each instance where it was' '
	in_dir int && cp -r ../lib ../top.yaml . &&
	echo 1 >sleep.a && echo 1 >sleep.b &&
	{ "$CAIRN_BIN" run top.yaml >out 2>&1 & pid=$!; } &&
	wait_for_file down.b.pid 10 &&
	kill -INT $pid &&
	rc=0 && { wait $pid || rc=$?; } &&
	test "$rc" = 3 &&
	test "$(j "SELECT status FROM runs")" = interrupted &&
	test -z "$(entered "svc/c%")" &&
	cairn resume >rout 2>&1 &&
	grep -c "^up " ledger >n && echo 3 >expect && test_cmp expect n &&
	grep -c "^down " ledger >n && test_cmp expect n &&
	grep -x "report http://127.0.0.1:8002/b c" ledger &&
	stop_served
'

test_expect_success 'kill -9 inside instances: one question names each instance'"'"'s step and next state; nothing journaled' '
	in_dir ask && cp -r ../lib ../top.yaml . &&
	# both instances in their down step when the kill comes (a loaded
	# machine once had a still in up when b was in down)
	echo 10 >sleep.a && echo 10 >sleep.b &&
	{ "$CAIRN_BIN" run top.yaml >out 2>&1 & pid=$!; } &&
	wait_for_file down.a.pid 10 && wait_for_file down.b.pid 10 &&
	kill -9 $pid && { wait $pid || :; } &&
	j "SELECT count(*) FROM events" >before &&
	test_must_fail_with 3 cairn resume >rout 2>&1 &&
	grep -F "2 steps were running when the run stopped" rout &&
	grep -F "'"'"'svc/a/down'"'"' (attempt 1, then svc/a/done), '"'"'svc/b/down'"'"' (attempt 1, then svc/b/done)" rout &&
	test_must_fail_with 3 cairn resume --json >rj &&
	tail -n 1 rj | jq -e ".kind == \"result\" and .status == \"waiting\" and .state == \"svc/a/down\" and .decide == [\"svc/a/down\", \"svc/b/down\"] and .decide_complete" &&
	j "SELECT count(*) FROM events" >after &&
	test_cmp before after
'

test_expect_success 'deciding one instance'"'"'s step: the other is asked about, both commands given repeat the first decision' '
	in_dir ask &&
	test_must_fail_with 3 cairn resume --assume svc/a/down=succeeded >rout 2>&1 &&
	grep -F "state '"'"'svc/b/down'"'"' was running (attempt 1)" rout &&
	grep -F -- "--assume svc/a/down=succeeded --assume succeeded'"'"' to count it as done and go on to svc/b/done" rout &&
	grep -F -- "--assume svc/a/down=succeeded --assume failed'"'"' to treat the attempt as failed" rout &&
	test_must_fail_with 2 cairn resume --assume svc/c/down=failed --assume svc/a/down=succeeded 2>err &&
	grep -F "has no interrupted step '"'"'svc/c/down'"'"'" err &&
	j "SELECT count(*) FROM events" >after &&
	test_cmp before after
'

test_expect_success 'both decided, the first instance failed: the map rolls back; each decision journaled' '
	in_dir ask &&
	test_must_fail_with 1 cairn resume --assume svc/a/down=failed --assume svc/b/down=succeeded >rout 2>&1 &&
	test "$(j "SELECT status FROM runs")" = failed &&
	j "SELECT state || '"'"' '"'"'|| json_extract(payload, '"'"'$.outcome'"'"') FROM events
	   WHERE kind = '"'"'decision.assumed'"'"' ORDER BY state" >actual &&
	printf "svc/a/down failed\nsvc/b/down succeeded\n" >expect &&
	test_cmp expect actual &&
	grep -x "undo-up a" ledger && grep -x "undo-up b" ledger &&
	stop_served
'

# A choice that cannot decide, and a fail state, inside instances: the
# error names the path the state ran as (M/KEY/S).
write_workflow undecided/lib/pick.yaml <<\EOF
cairn: 1
name: pick
params:
  name: {}
start: pick
states:
  pick:
    choice:
      - when: "{{ params.name == 'b' }}"
        next: bad
  bad: { fail: true, message: "b is bad" }
EOF

write_workflow undecided/top.yaml <<\EOF
cairn: 1
name: undecided
params:
  names: { type: list, default: [a] }
start: m
states:
  m:
    map:
      items: "{{ params.names }}"
      use: lib/pick.yaml
      with: { name: "{{ item }}" }
    on_failure: fail
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a choice that cannot decide, a fail state, in an instance: the error names M/KEY/S' '
	in_dir undecided &&
	test_must_fail_with 1 cairn run top.yaml >out 2>err &&
	grep -F "no branch of choice '"'"'m/a/pick'"'"' matched" out &&
	test_must_fail_with 1 cairn run top.yaml --set names=b >out 2>err &&
	grep -F "reached fail state '"'"'m/b/bad'"'"': b is bad" out
'

# The journal cannot be written (a trigger refuses one instance's event)
# while another instance waits: the run stops at once, not after the wait.
write_workflow fatal/lib/slow.yaml <<\EOF
cairn: 1
name: slow
params:
  name: {}
start: s1
states:
  s1:
    do: exec
    with: { argv: [sh, -c, "test {{ params.name }} = x || sleep 0.5"] }
    idempotent: true
    next: pick
  pick:
    choice:
      - when: "{{ params.name == 'x' }}"
        next: pause
    default: done
  pause: { wait: 60s, next: done }
  done: { succeed: true }
EOF

write_workflow fatal/top.yaml <<\EOF
cairn: 1
name: fatal
start: m
states:
  m:
    map:
      items: [x, y]
      use: lib/slow.yaml
      with: { name: "{{ item }}" }
    next: done
  done: { succeed: true }
EOF

write_workflow fatal/one.yaml <<\EOF
cairn: 1
name: one
start: done
states:
  done: { succeed: true }
EOF

# Write-ahead: a run whose next step cannot be journaled stops there as
# interrupted (exit 3), undoing nothing, and says why.
test_expect_success 'the journal fails while an instance waits: the run ends at once, interrupted' '
	in_dir fatal &&
	cairn run one.yaml >/dev/null &&
	j "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.state = '"'"'m/y/s1'"'"'
	   AND NEW.kind = '"'"'action.finished'"'"' BEGIN SELECT RAISE(ABORT, '"'"'boom'"'"'); END" &&
	rc=0 && { timeout 30 "$CAIRN_BIN" run top.yaml >out 2>err || rc=$?; } &&
	test "$rc" = 3 &&
	grep "^run [0-9A-Z]* stopped: the journal could not record that m/y/s1 [a-z_]* (.*boom.*), and nothing was undone; resume will ask about it; continue it with " out
'

# Instances with no action on their way end as they start: with a limit,
# the next ones must still start (the map once waited for them forever).
write_workflow quick/lib/skip.yaml <<\EOF
cairn: 1
name: skip
params:
  name: {}
outputs:
  got: "{{ params.name }}"
start: pick
states:
  pick:
    choice:
      - when: "{{ params.name == 'never' }}"
        next: done
    default: done
  done: { succeed: true }
EOF

write_workflow quick/top.yaml <<\EOF
cairn: 1
name: quick
start: m
states:
  m:
    map:
      items: [x, y, z]
      max_concurrency: 1
      use: lib/skip.yaml
      with: { name: "{{ item }}" }
    next: last
  last:
    do: exec
    with: { argv: [sh, -c, "echo {{ states.m.output.z.got }} >last"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'instances that end as they start, with max_concurrency: every one runs' '
	in_dir quick &&
	timeout 60 "$CAIRN_BIN" run top.yaml >out 2>err &&
	echo z >expect && test_cmp expect last &&
	timeout 60 "$CAIRN_BIN" simulate top.yaml >sim &&
	grep -x "enter m/z/done (succeed)" sim &&
	grep -x "result: succeeded; a real run would exit 0" sim
'

# A key that is also a state of the used workflow: M/KEY would name both
# the instance and the state M/KEY (resume could not rebuild the instance).
write_workflow clash/top.yaml <<\EOF
cairn: 1
name: clash
start: svc
states:
  svc:
    map:
      items: [{name: a, port: 8001}, {name: up, port: 8002}]
      key: "{{ item.name }}"
      use: lib/svc.yaml
      with: { name: "{{ item.name }}", port: "{{ item.port }}" }
    on_failure: fail
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a key that is also a state of the used workflow: the map fails on entry, nothing starts' '
	in_dir clash && cp -r ../lib . &&
	test_must_fail_with 1 cairn run top.yaml >out 2>err &&
	grep -F "item 1 has the key '"'"'up'"'"', also the name of a state of" out &&
	test "$(entered "svc/%" | wc -l)" = 0 &&
	cairn simulate top.yaml >sim &&
	grep -x "result: failed; a real run would exit 1" sim
'

# ---- inside an instance -------------------------------------------------------

write_workflow rich/lib/rich.yaml <<\EOF
cairn: 1
name: rich
params:
  name: {}
outputs:
  got: "{{ params.name }}-{{ states.inner.output.said }}-{{ states.each.output.y.json.k }}"
start: pick
states:
  pick:
    choice:
      - when: "params.name == 'b'"
        next: flaky
    default: pause
  pause: { wait: 100ms, next: flaky }
  flaky:
    do: exec
    with: { argv: [sh, -c, "test -e ok.{{ params.name }} || { touch ok.{{ params.name }}; exit 1; }; echo flaky-{{ params.name }} >>ledger"] }
    retry: { attempts: 2, delay: 10ms }
    next: broken
  broken:
    do: exec
    with: { argv: [sh, -c, "exit 3"] }
    on_failure: recover
    next: inner
  recover:
    do: exec
    with: { argv: [sh, -c, "echo recover-{{ params.name }} >>ledger"] }
    next: inner
  inner:
    use: leaf.yaml
    with: { who: "{{ params.name }}" }
    next: each
  each:
    map:
      items: [x, y]
      do: exec
      with: { argv: [sh, -c, "printf '{\"k\":\"%s\"}' {{ item }}-{{ params.name }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow rich/lib/leaf.yaml <<\EOF
cairn: 1
name: leaf
params:
  who: {}
outputs:
  said: "leaf-{{ params.who }}"
start: s
states:
  s:
    do: exec
    with: { argv: [sh, -c, "echo leaf-{{ params.who }} >>ledger"] }
    next: done
  done: { succeed: true }
EOF

write_workflow rich/top.yaml <<\EOF
cairn: 1
name: rich-top
start: m
states:
  m:
    map:
      items: [a, b]
      use: lib/rich.yaml
      with: { name: "{{ item }}" }
    next: last
  last:
    do: exec
    with: { argv: [sh, -c, "echo last {{ states.m.output.a.got }} {{ states.m.output.b.got }} >>ledger"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'inside an instance: choice, wait, retry, on_failure to a state, a nested use, a map of do' '
	in_dir rich &&
	cairn run top.yaml >out 2>err &&
	grep -x "last a-leaf-a-y-a b-leaf-b-y-b" ledger &&
	grep -c "^recover-" ledger >n && echo 2 >expect && test_cmp expect n &&
	entered "m/a/%" >actual &&
	cat >expect <<-EOF &&
	m/a/pick
	m/a/pause
	m/a/flaky
	m/a/broken
	m/a/recover
	m/a/inner
	m/a/inner/s
	m/a/inner/done
	m/a/each
	m/a/each/x
	m/a/each/y
	m/a/done
	EOF
	test_cmp expect actual &&
	jx action.finished m/b/flaky "\$.outcome" >actual &&
	printf "%s\n" failed succeeded >expect &&
	test_cmp expect actual &&
	cairn verify >/dev/null
'

# ---- kill -9 at every commit -------------------------------------------------

# eff.sh NAME [SECRET]: a step that is not idempotent: one line in ledger.
cat >eff.sh <<\EOF
sleep 0.05
echo "$1${2:+ $2}" >>ledger
printf '{"k":"%s"}\n' "$1"
EOF

write_workflow once/lib/two.yaml <<\EOF
cairn: 1
name: two
params:
  name: {}
  token: {}
outputs:
  got: "{{ params.name }}-done"
  tok: "{{ params.token }}"
start: one
states:
  one:
    do: exec
    with: { argv: [sh, ../../eff.sh, "one-{{ params.name }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "one-{{ params.name }}", ledger] } }
    next: two
  two:
    do: exec
    with: { argv: [sh, ../../eff.sh, "two-{{ params.name }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "two-{{ params.name }}", ledger] } }
    next: done
  done: { succeed: true }
EOF

write_workflow once/top.yaml <<\EOF
cairn: 1
name: once
secrets: [API_TOKEN]
start: m
states:
  m:
    map:
      items: [a, b, c]
      max_concurrency: 2
      use: lib/two.yaml
      with: { name: "{{ item }}", token: "{{ secrets.API_TOKEN }}" }
    next: last
  last:
    do: exec
    with: { argv: [sh, ../../eff.sh, "last-{{ states.m.output.a.got }}-{{ states.m.output.c.got }}", "{{ states.m.output.c.tok }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "last-{{ states.m.output.a.got }}-{{ states.m.output.c.got }} {{ states.m.output.c.tok }}", ledger] } }
    next: done
  done: { succeed: true }
EOF

# How many commits the run makes depends on timing: completions of a and
# b that land in one loop turn share one (group commit). So the number of
# kills that leave a run to resume is not fixed; kill_everywhere requires
# at least 5, the fewest this workflow can make before its last (a and b's
# starts, their ones, their twos with c's start, c's one, c's two).
test_expect_success 'kill -9 after every commit of a map over use, then resume: each effect exactly once' '
	cd once &&
	printf "%s\n" "last-a-done-c-done $SECRET" one-a one-b one-c two-a two-b two-c >expect &&
	kill_everywhere ../top.yaml 0 succeeded
'

# ---- simulate ----------------------------------------------------------------

test_expect_success 'simulate --fail-at M/KEY/S fails one instance; M/S every one; the trace is the same each time' '
	in_dir sim && cp -r ../lib ../top.yaml . &&
	cairn simulate top.yaml --fail-at svc/b/down >one.1 &&
	cairn simulate top.yaml --fail-at svc/b/down >one.2 &&
	test_cmp one.1 one.2 &&
	grep "✗ svc/b/down (attempt 1): failed" one.1 &&
	test_grep ! "✗ svc/a/down" one.1 &&
	grep "rollback plan: undo:svc/c/up, undo:svc/b/serve, undo:svc/b/up, undo:svc/a/serve, undo:svc/a/up" one.1 &&
	cairn simulate top.yaml --fail-at svc/up >all.1 &&
	cairn simulate top.yaml --fail-at svc/up >all.2 &&
	test_cmp all.1 all.2 &&
	grep "✗ svc/a/up (attempt 1): failed" all.1 &&
	grep "✗ svc/b/up (attempt 1): cancelled" all.1 &&
	test_grep ! "svc/c" all.1 &&
	cairn simulate top.yaml >ok.out &&
	grep "result: succeeded" ok.out &&
	test_grep ! "did not fire" one.1 all.1 ok.out
'

# An instance KEY no item has names nothing the simulation runs: accepted
# (the items may come from outputs), but said, not silently a success.
test_expect_success 'simulate: a --fail-at or --fail-undo that fires nowhere is said' '
	cd sim &&
	cairn simulate top.yaml --fail-at svc/zz/down --fail-at svc/b/down \
		--fail-undo svc/zz/up >out &&
	echo "! --fail-at svc/zz/down did not fire: the simulation never ran that (a branch not taken, an instance KEY no item has; '\''cairn plan'\'' lists what can fail)" >expect &&
	echo "! --fail-undo svc/zz/up did not fire: the simulation never ran that (a branch not taken, an instance KEY no item has; '\''cairn plan'\'' lists what can fail)" >>expect &&
	grep "^!" out >actual &&
	test_cmp expect actual &&
	grep "✗ svc/b/down (attempt 1): failed" out &&
	cairn simulate top.yaml --fail-at svc/zz/down --json >out.json &&
	jq -c "select(.kind == \"result\") | .not_fired" out.json >actual &&
	echo "[{\"option\":\"--fail-at\",\"value\":\"svc/zz/down\"}]" >expect &&
	test_cmp expect actual
'

# ---- loader ------------------------------------------------------------------

test_expect_success 'loader: an unknown with key, use with do, a missing required param, an approval inside' '
	in_dir load && cp -r ../lib . &&
	write_workflow badkey.yaml <<-\EOF &&
	cairn: 1
	name: badkey
	start: m
	states:
	  m:
	    map:
	      items: [a]
	      use: lib/svc.yaml
	      with: { name: "{{ item }}", port: 1, nmae: x }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate badkey.yaml 2>err &&
	grep "badkey.yaml:9:44: error: unknown param .nmae. of .*svc.yaml. in the .with. of state .m." err &&
	write_workflow both.yaml <<-\EOF &&
	cairn: 1
	name: both
	start: m
	states:
	  m:
	    map:
	      items: [a]
	      use: lib/svc.yaml
	      do: exec
	      with: { name: "{{ item }}", port: 1 }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate both.yaml 2>err &&
	grep "both.yaml:9:7: error: the map of state .m. has both .use. and .do." err &&
	write_workflow missing.yaml <<-\EOF &&
	cairn: 1
	name: missing
	start: m
	states:
	  m:
	    map:
	      items: [a]
	      use: lib/svc.yaml
	      with: { name: "{{ item }}" }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate missing.yaml 2>err &&
	grep "missing.yaml:8:7: error: state .m. does not give param .port." err &&
	write_workflow lib/inner.yaml <<-\EOF &&
	cairn: 1
	name: inner
	start: m
	states:
	  m:
	    map: { items: [a], use: svc.yaml, with: { name: "{{ item }}", port: 1 } }
	    next: done
	  done: { succeed: true }
	EOF
	write_workflow nested.yaml <<-\EOF &&
	cairn: 1
	name: nested
	start: m
	states:
	  m:
	    map: { items: [x], use: lib/inner.yaml }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate nested.yaml 2>err &&
	grep "nested.yaml:6:29: error: .*inner.yaml., used by the map of state .m., has a map over a used workflow itself (.m.)" err &&
	# an approval, even in a workflow the used one uses, cannot stop an
	# instance
	write_workflow lib/gate.yaml <<-\EOF &&
	cairn: 1
	name: gate
	start: ok
	states:
	  ok: { approval: {}, next: done }
	  done: { succeed: true }
	EOF
	write_workflow lib/gated.yaml <<-\EOF &&
	cairn: 1
	name: gated
	start: g
	states:
	  g: { use: gate.yaml, next: done }
	  done: { succeed: true }
	EOF
	write_workflow approval.yaml <<-\EOF &&
	cairn: 1
	name: approval
	start: m
	states:
	  m:
	    map: { items: [x], use: lib/gated.yaml }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate approval.yaml 2>err &&
	grep "approval.yaml:6:29: error: .*gated.yaml., used by the map of state .m., has approval state .g/ok. (hint: " err
'

# ---- presentation ------------------------------------------------------------

test_expect_success 'graph (dot renders), plan: the map leads into its used workflow, its states listed once' '
	in_dir present && cp -r ../lib ../top.yaml . &&
	cairn graph top.yaml >g.dot &&
	grep "cluster_svc" g.dot &&
	grep "svc: use svc.yaml per item" g.dot &&
	if command -v dot >/dev/null 2>&1; then dot -Tsvg g.dot >g.svg; fi &&
	cairn graph --format mermaid top.yaml >g.mmd &&
	grep "subgraph f0\[\"svc: use svc.yaml per item\"\]" g.mmd &&
	cairn plan top.yaml >plan.out &&
	grep "happy path: svc → report → done → succeeded" plan.out &&
	grep "^  svc/up  *→ fails svc → rollback" plan.out &&
	test_grep ! "^  svc/a" plan.out
'

# An instance stood in a state that the changed used workflow no longer
# has: resume --allow-changed must refuse, as for a use state. Its path
# (M/KEY/S) resolved to the map itself, and the resume spun for ever.
test_expect_success 'resume --allow-changed of an instance in a state the used workflow lost: exit 2, nothing journaled' '
	mkdir lost && cd lost &&
	export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	mkdir lib &&
	write_workflow lib/svc.yaml <<-\EOF &&
	cairn: 1
	name: svc
	start: a
	states:
	  a: { do: exec, with: { argv: ["true"] }, next: w }
	  w: { wait: 1h, next: b }
	  b: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	write_workflow top.yaml <<-\EOF &&
	cairn: 1
	name: top
	start: many
	states:
	  many: { map: { items: [x], use: lib/svc.yaml }, next: done }
	  done: { succeed: true }
	EOF
	start_run run top.yaml &&
	wait_until 10 "the instance did not reach its wait" eval "test \"\$(q \"SELECT count(*) FROM events WHERE kind = '\''state.entered'\'' AND state = '\''many/x/w'\''\")\" = 1" &&
	kill -9 "$BGPID" &&
	{ wait "$BGPID" || :; } && BGPID= &&
	R=$(last_run) &&
	write_workflow lib/svc.yaml <<-\EOF &&
	cairn: 1
	name: svc
	start: b
	states:
	  b: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	journal_state >before &&
	test_must_fail_with 2 timeout 20 "$CAIRN_BIN" resume $R --allow-changed 2>err &&
	echo "cairn: instance '\''many/x'\'' of run $R is in state '\''many/x/w'\'', which the workflow no longer has" >expect &&
	test_cmp expect err &&
	journal_state >after &&
	test_cmp before after
'

test_done
