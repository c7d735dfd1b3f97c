#!/bin/bash
# t0025-use-map: use states (with/params defaults/outputs, nesting, where
# the used file is found, failures inside, on_failure) and map states
# (max_concurrency, keys, empty lists, failures, undo, outputs), list
# params, kill -9 and resume in a map and in a used workflow (exactly once,
# secrets redacted), simulate, and the loader's errors for both, as
# docs/workflow-format.md describes them. Each test has its own journal
# (CAIRN_JOURNAL in its own folder).
# shellcheck disable=SC2016 # SQL and jq programs in single quotes
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1 || ! command -v flock >/dev/null 2>&1; then
	test_skip_all 'jq and flock are needed'
fi

# ---- helpers -----------------------------------------------------------------

# in_dir, j, lr, entered, once_case and kill_everywhere: see lib.sh.

# payload KIND STATE: the payloads of the last run's KIND events of STATE.
payload() {
	j "SELECT payload FROM events WHERE run_id = '$(lr)' AND kind = '$1'
	   AND state = '$2' ORDER BY seq"
}

# finished_error: the error of the last run's run.finished.
finished_error() {
	j "SELECT json_extract(payload, '$.error') FROM events
	   WHERE run_id = '$(lr)' AND kind = 'run.finished'"
}

# start_bg ARGS...: "cairn ARGS" in the background (bg.out); $BGPID. The
# test's EXIT trap kills it if the body ends first.
start_bg() {
	"$CAIRN_BIN" "$@" >bg.out 2>&1 &
	BGPID=$!
	trap 'if [ -n "${BGPID:-}" ]; then kill -9 "$BGPID" 2>/dev/null; fi' EXIT
}

# kill_bg: kill -9 of the background cairn; it must die of it.
kill_bg() {
	local rc=0
	kill -9 "$BGPID"
	wait "$BGPID" || rc=$?
	BGPID=
	if [ "$rc" -ne 137 ]; then
		echo "background cairn exited with $rc before the kill"
		cat bg.out
		return 1
	fi
}

# ---- fixtures (in $TRASH; the tests' folders are below it) -------------------

# j.sh TAG [K V]: appends TAG to ./trace and prints {"K":"V"} (exec's json
# output).
cat >j.sh <<\EOF
echo "$1" >>trace
printf '{"%s":"%s"}\n' "${2:-k}" "${3:-v}"
EOF

# inst.sh KEY: a map instance. Counts the instances running at once under
# flock (./running, the highest in ./maxrun), notes "start KEY" and
# "end KEY" in ./trace, touches started.KEY; sleeps the seconds in
# sleep.KEY (default 0.5); exits 7 when fail.KEY exists.
cat >inst.sh <<\EOF
k=$1
(
	flock 9
	c=$(cat running 2>/dev/null || echo 0); c=$((c + 1)); echo $c >running
	m=$(cat maxrun 2>/dev/null || echo 0); [ $c -gt $m ] && echo $c >maxrun
	echo "start $k" >>trace
) 9>lockf
touch "started.$k"
sleep "$(cat "sleep.$k" 2>/dev/null || echo 0.5)"
(
	flock 9
	c=$(cat running); echo $((c - 1)) >running
	echo "end $k" >>trace
) 9>lockf
if [ -e "fail.$k" ]; then exit 7; fi
printf '{"k":"%s"}\n' "$k"
EOF

# A used workflow: a required param, a defaulted one, a list param, an
# undo that reads its params, and outputs.
write_workflow use1/lib/c.yaml <<\EOF
cairn: 1
name: c
params:
  who: {}
  n: { default: 3 }
  hosts: { default: [h0, h1] }
outputs:
  said: "c:{{ params.who }}:{{ params.n }}:{{ states.say.output.json.v }}"
  last_host: "{{ params.hosts[1] }}"
start: say
states:
  say:
    do: exec
    with: { argv: [sh, ../j.sh, "c-{{ params.who }}-{{ params.n }}-{{ params.hosts[0] }}", v, hi] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, "undo-c-{{ params.who }}"] } }
    next: done
  done: { succeed: true }
EOF

write_workflow use1/top.yaml <<\EOF
cairn: 1
name: top
params:
  who: { default: nobody }
start: x
states:
  x:
    use: lib/c.yaml
    with: { who: "{{ params.who }}", hosts: "a,b" }
    next: last
  last:
    do: exec
    with: { argv: [sh, ../j.sh, "last {{ states.x.output.said }} {{ states.x.output.last_host }} {{ params.who }}"] }
    next: done
  done: { succeed: true }
EOF

# a uses b (b.yaml, in lib/) which uses c (c.yaml, beside b.yaml).
write_workflow use1/lib/b.yaml <<\EOF
cairn: 1
name: b
params:
  who: { default: bee }
outputs:
  inner: "b:{{ states.y.output.said }}"
start: y
states:
  y:
    use: c.yaml
    with: { who: "{{ params.who }}-b" }
    next: done
  done: { succeed: true }
EOF

write_workflow use1/nested.yaml <<\EOF
cairn: 1
name: nested
start: x
states:
  x:
    use: lib/b.yaml
    next: last
  last:
    do: exec
    with: { argv: [sh, ../j.sh, "last {{ states.x.output.inner }}"] }
    next: done
  done: { succeed: true }
EOF

# A sub-workflow that reaches its fail state when told to, after two
# actions whose undos read its params.
write_workflow fail1/lib/sub.yaml <<\EOF
cairn: 1
name: sub
params:
  tag: {}
  broken: { default: false }
start: one
states:
  one:
    do: exec
    with: { argv: [sh, ../j.sh, "one-{{ params.tag }}"] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, "undo-one-{{ params.tag }}"] } }
    next: two
  two:
    do: exec
    with: { argv: [sh, ../j.sh, "two-{{ params.tag }}", k, out2] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, "undo-two-{{ params.tag }}-{{ self.output.json.k }}"] } }
    next: check
  check:
    choice:
      - when: "params.broken"
        next: broken
    default: done
  broken: { fail: true, message: "sub is broken" }
  done: { succeed: true }
EOF

write_workflow fail1/top.yaml <<\EOF
cairn: 1
name: top
params:
  tag: { default: TOP }
  broken: { default: true }
start: pre
states:
  pre:
    do: exec
    with: { argv: [sh, ../j.sh, "pre-{{ params.tag }}"] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, "undo-pre-{{ params.tag }}"] } }
    next: u
  u:
    use: lib/sub.yaml
    with: { tag: SUB, broken: "{{ params.broken }}" }
    next: m
  m:
    map:
      items: [x, y]
      do: exec
      with: { argv: [sh, ../j.sh, "m-{{ item }}", k, "{{ item }}"] }
      undo: { do: exec, with: { argv: [sh, ../j.sh, "undo-m-{{ item }}-{{ self.output.json.k }}"] } }
    next: done
  done: { succeed: true }
EOF

# An action of a used workflow fails: mode picks which one. act has
# on_failure: rollback (the used workflow fails); inner has on_failure:
# fix (it stays inside); nomatch matches no choice.
write_workflow fail2/lib/sub.yaml <<\EOF
cairn: 1
name: sub2
params:
  mode: {}
start: one
states:
  one:
    do: exec
    with: { argv: [sh, ../j.sh, one] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, undo-one] } }
    next: pick
  pick:
    choice:
      - when: "params.mode == 'act'"
        next: act
      - when: "params.mode == 'inner'"
        next: inner
  act:
    do: exec
    with: { argv: [sh, -c, "echo act >>trace; exit 3"] }
    on_failure: rollback
    next: done
  inner:
    do: exec
    with: { argv: [sh, -c, "echo inner >>trace; exit 3"] }
    on_failure: fix
    next: done
  fix:
    do: exec
    with: { argv: [sh, ../j.sh, fix] }
    next: done
  done: { succeed: true }
EOF

write_workflow fail2/rb.yaml <<\EOF
cairn: 1
name: rb
params:
  mode: { default: act }
start: pre
states:
  pre:
    do: exec
    with: { argv: [sh, ../j.sh, pre] }
    undo: { do: exec, with: { argv: [sh, ../j.sh, undo-pre] } }
    next: u
  u:
    use: lib/sub.yaml
    with: { mode: "{{ params.mode }}" }
    next: done
  done: { succeed: true }
EOF

write_workflow fail2/recover.yaml <<\EOF
cairn: 1
name: recover
params:
  mode: { default: act }
start: u
states:
  u:
    use: lib/sub.yaml
    with: { mode: "{{ params.mode }}" }
    on_failure: recover
    next: after
  after:
    do: exec
    with: { argv: [sh, ../j.sh, after] }
    next: done
  recover:
    do: exec
    with: { argv: [sh, ../j.sh, recover] }
    next: done
  done: { succeed: true }
EOF

# ---- use ---------------------------------------------------------------------

test_expect_success 'use: with, param defaults, a list param from "a,b", outputs' '
	in_dir use1 &&
	cairn run top.yaml --set who=top >out &&
	cat >expect <<-\EOF &&
	c-top-3-a
	last c:top:3:hi b top
	EOF
	test_cmp expect trace &&
	payload state.entered x | jq -c -S . >actual &&
	echo "{\"file\":\"$PWD/lib/c.yaml\",\"inputs\":{\"hosts\":[\"a\",\"b\"],\"n\":3,\"who\":\"top\"},\"kind\":\"use\"}" >expect &&
	test_cmp expect actual &&
	payload state.finished x >actual &&
	echo "{\"outcome\":\"succeeded\",\"outputs\":{\"last_host\":\"b\",\"said\":\"c:top:3:hi\"}}" >expect &&
	jq -c -S . actual >actual.n &&
	test_cmp expect actual.n &&
	entered >actual &&
	printf "%s\n" x x/say x/done last done >expect &&
	test_cmp expect actual &&
	j "SELECT json_extract(payload, '\''$.to'\'') || '\'' '\'' || json_extract(payload, '\''$.reason'\'')
	   FROM events WHERE run_id = '\''$(lr)'\'' AND kind = '\''transition'\'' ORDER BY seq" >actual &&
	printf "%s\n" "x/say use" "x/done next" "last next" "done next" >expect &&
	test_cmp expect actual
'

test_expect_success 'use: cairn show --json names the used states x/STATE' '
	in_dir use1 &&
	cairn show --json "$(lr)" >show.json &&
	jq -r ".states[] | \"\(.path) \(.kind) \(.phase)\"" show.json >actual &&
	cat >expect <<-\EOF &&
	x use succeeded
	x/say do succeeded
	x/done succeed entered
	last do succeeded
	done succeed entered
	EOF
	test_cmp expect actual
'

test_expect_success 'use: a path is relative to the using file, not to the working folder' '
	in_dir use1 &&
	rm -f trace &&
	mkdir -p ../elsewhere/lib &&
	echo "not: a workflow" >../elsewhere/lib/c.yaml &&
	cd ../elsewhere &&
	cairn run ../use1/top.yaml >out &&
	echo "last c:nobody:3:hi b nobody" >expect &&
	tail -n 1 trace >actual &&
	test_cmp expect actual &&
	cairn validate ../use1/nested.yaml >out &&
	echo "../use1/nested.yaml: ok (workflow '\''nested'\'', 7 states)" >expect &&
	test_cmp expect out
'

test_expect_success 'nested use (a uses b uses c): runs, paths x/y/STATE' '
	in_dir use1 &&
	rm -f trace &&
	cairn run nested.yaml >out &&
	echo "c-bee-b-3-h0" >expect &&
	echo "last b:c:bee-b:3:hi" >>expect &&
	test_cmp expect trace &&
	cairn show --json "$(lr)" >show.json &&
	jq -r ".states[].path" show.json >actual &&
	printf "%s\n" x x/y x/y/say x/y/done x/done last done >expect &&
	test_cmp expect actual
'

write_workflow std/lib/hello.yaml <<\EOF
cairn: 1
name: hello
params:
  who: { default: world }
outputs:
  greeting: "hello {{ params.who }}"
start: done
states:
  done: { succeed: true }
EOF

write_workflow std/std.yaml <<\EOF
cairn: 1
name: std
start: u
states:
  u:
    use: cairn:hello.yaml
    with: { who: you }
    next: say
  say:
    do: exec
    with: { argv: [sh, ../j.sh, "{{ states.u.output.greeting }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'use: cairn:NAME.yaml is looked up in $CAIRN_WORKFLOWS' '
	in_dir std &&
	CAIRN_WORKFLOWS=$PWD/lib cairn run std.yaml >out &&
	echo "hello you" >expect &&
	test_cmp expect trace &&
	payload state.entered u | jq -r .file >actual &&
	echo "$PWD/lib/hello.yaml" >expect &&
	test_cmp expect actual
'

test_expect_success 'use: cairn:NAME.yaml that is nowhere is an error at its line and column' '
	in_dir std &&
	mkdir -p empty &&
	test_must_fail_with 2 env CAIRN_WORKFLOWS=$PWD/empty "$CAIRN_BIN" validate std.yaml 2>err &&
	test_grep "^std.yaml:6:10: error: no standard workflow '\''hello.yaml'\'' in $PWD/empty, .* or " err
'

test_expect_success 'use: the cairn:NAME error ends with its hint' '
	in_dir std &&
	mkdir -p empty &&
	test_must_fail_with 2 env CAIRN_WORKFLOWS=$PWD/empty "$CAIRN_BIN" validate std.yaml 2>err &&
	test_grep "in state '\''u'\'' (hint: [^()]*)$" err
'

# ---- failures inside a used workflow ------------------------------------------

test_expect_success 'use: a fail state fails the use state; the run rolls back in journal order with the sub params' '
	in_dir fail1 &&
	test_must_fail_with 1 cairn run top.yaml >out &&
	cat >expect <<-\EOF &&
	pre-TOP
	one-SUB
	two-SUB
	undo-two-SUB-out2
	undo-one-SUB
	undo-pre-TOP
	EOF
	test_cmp expect trace &&
	payload state.finished u >actual &&
	echo "{\"error\":\"reached fail state '\''u/broken'\'': sub is broken\",\"outcome\":\"failed\"}" >expect &&
	jq -c -S . actual >actual.n &&
	test_cmp expect actual.n &&
	j "SELECT payload FROM events WHERE run_id = '\''$(lr)'\'' AND kind = '\''rollback.planned'\''" >plan &&
	jq -r "[.state, (.steps[] | .undo_path)] | join(\" \")" plan >actual &&
	echo "u undo:u/two undo:u/one undo:pre" >expect &&
	test_cmp expect actual &&
	entered "undo:%" >actual &&
	printf "%s\n" undo:u/two undo:u/one undo:pre >expect &&
	test_cmp expect actual &&
	finished_error >actual &&
	echo "reached fail state '\''u/broken'\'': sub is broken; rolled back: u/two, u/one, pre" >expect &&
	test_cmp expect actual &&
	j "SELECT status FROM runs WHERE id = '\''$(lr)'\''" >actual &&
	echo failed >expect &&
	test_cmp expect actual
'

test_expect_success 'use: on_failure rollback inside the used workflow fails the use state and rolls the run back' '
	in_dir fail2 &&
	rm -f trace &&
	test_must_fail_with 1 cairn run rb.yaml >out &&
	printf "%s\n" pre one act undo-one undo-pre >expect &&
	test_cmp expect trace &&
	j "SELECT json_extract(payload, '\''$.from'\'') || '\'' -> '\'' || json_extract(payload, '\''$.to'\'')
	   FROM events WHERE run_id = '\''$(lr)'\'' AND kind = '\''transition'\''
	   AND json_extract(payload, '\''$.reason'\'') = '\''on_failure'\''" >actual &&
	echo "u -> rollback" >expect &&
	test_cmp expect actual &&
	payload state.finished u | jq -r ".outcome + \" \" + .error" >actual &&
	test_grep "^failed state '\''u/act'\'' failed: exited with status 3" actual
'

test_expect_success 'use: on_failure STATE on the use state goes there, nothing rolled back' '
	in_dir fail2 &&
	rm -f trace &&
	cairn run recover.yaml >out &&
	printf "%s\n" one act recover >expect &&
	test_cmp expect trace &&
	j "SELECT count(*) FROM events WHERE run_id = '\''$(lr)'\'' AND kind = '\''rollback.planned'\''" >actual &&
	echo 0 >expect &&
	test_cmp expect actual &&
	payload state.finished u | jq -r .outcome >actual &&
	echo failed >expect &&
	test_cmp expect actual
'

test_expect_success 'use: on_failure STATE inside the used workflow stays inside it' '
	in_dir fail2 &&
	rm -f trace &&
	cairn run recover.yaml --set mode=inner >out &&
	printf "%s\n" one inner fix after >expect &&
	test_cmp expect trace &&
	payload state.finished u | jq -r .outcome >actual &&
	echo succeeded >expect &&
	test_cmp expect actual
'

test_expect_success 'use: a choice of the used workflow that matches nothing fails the use state' '
	in_dir fail2 &&
	rm -f trace &&
	cairn run recover.yaml --set mode=nomatch >out &&
	printf "%s\n" one recover >expect &&
	test_cmp expect trace &&
	payload state.finished u | jq -r .outcome >actual &&
	echo failed >expect &&
	test_cmp expect actual
'

test_expect_success 'cairn rollback RUN undoes used states with their own params, map instances by item' '
	in_dir fail1 &&
	rm -f trace &&
	cairn run top.yaml --set broken=false >out &&
	cairn rollback "$(lr)" >out &&
	# m-x and m-y run at once: either may come first
	{ head -n 3 trace && sed -n "4,5p" trace | sort && tail -n +6 trace; } >actual &&
	cat >expect <<-\EOF &&
	pre-TOP
	one-SUB
	two-SUB
	m-x
	m-y
	undo-m-y-y
	undo-m-x-x
	undo-two-SUB-out2
	undo-one-SUB
	undo-pre-TOP
	EOF
	test_cmp expect actual
'

test_expect_success 'cairn rollback --dry-run shows used states'\'' undos with their own params' '
	in_dir fail1 &&
	rm -f trace &&
	cairn run top.yaml --set broken=false >out &&
	cairn rollback "$(lr)" --dry-run >out &&
	test_grep "undo-two-SUB-out2" out &&
	test_grep "undo-one-SUB" out &&
	test_grep ! "undo-one-TOP" out
'

test_expect_success 'cairn show says a failed use state failed' '
	in_dir fail1 &&
	test_must_fail_with 1 cairn run top.yaml >out &&
	cairn show "$(lr)" >show &&
	test_grep -E "^u +use +failed " show
'

# ---- map -----------------------------------------------------------------------

write_workflow conc/m.yaml <<\EOF
cairn: 1
name: conc
params:
  items: { default: [a, b, c, d, e, f] }
  n: { default: 2 }
start: m
states:
  m:
    map:
      items: "{{ params.items }}"
      max_concurrency: 2
      do: exec
      with: { argv: [sh, ../inst.sh, "{{ item }}"] }
    next: last
  last:
    do: exec
    with: { argv: [sh, ../j.sh, "last {{ states.m.output.a.json.k }} {{ states.m.output.f.json.k }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow conc/all.yaml <<\EOF
cairn: 1
name: all
start: m
states:
  m:
    map:
      items: [a, b, c, d]
      do: exec
      with: { argv: [sh, ../inst.sh, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'map: max_concurrency 2 runs at most 2 at once, each item once, in list order' '
	in_dir conc &&
	cairn run m.yaml >out &&
	echo 2 >expect &&
	test_cmp expect maxrun &&
	echo 0 >expect &&
	test_cmp expect running &&
	for k in a b c d e f; do
		test "$(grep -c "^start $k$" trace)" = 1 &&
		test "$(grep -c "^end $k$" trace)" = 1 || {
			echo "item $k did not run exactly once"; cat trace; exit 1; }
	done &&
	entered "m/%" >actual &&
	printf "m/%s\n" a b c d e f >expect &&
	test_cmp expect actual &&
	tail -n 1 trace >actual &&
	echo "last a f" >expect &&
	test_cmp expect actual
'

test_expect_success 'map: without max_concurrency all items run at once' '
	in_dir conc &&
	rm -f trace maxrun running &&
	for k in a b c d; do echo 1.5 >sleep.$k; done &&
	cairn run all.yaml >out &&
	rm -f sleep.* &&
	echo 4 >expect &&
	test_cmp expect maxrun
'

write_workflow keys/k.yaml <<\EOF
cairn: 1
name: keys
params:
  objs: { default: [{ name: auth, port: 1 }, { name: user, port: 2 }] }
  strs: { default: [x1, y2] }
  mode: { default: key }
start: pick
states:
  pick:
    choice:
      - when: "params.mode == 'key'"
        next: bykey
      - when: "params.mode == 'index'"
        next: byindex
    default: bystr
  bykey:
    map:
      items: "{{ params.objs }}"
      key: "{{ item.name }}-{{ item.port }}"
      do: exec
      with: { argv: [echo, "{{ item.name }}"] }
    next: done
  byindex:
    map:
      items: "{{ params.objs }}"
      do: exec
      with: { argv: [echo, "{{ item.port }}"] }
    next: done
  bystr:
    map:
      items: "{{ params.strs }}"
      do: exec
      with: { argv: [echo, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'map: keys are the key template, else string items, else the index' '
	in_dir keys &&
	cairn run k.yaml >out &&
	entered "bykey/%" >actual &&
	printf "%s\n" bykey/auth-1 bykey/user-2 >expect &&
	test_cmp expect actual &&
	cairn run k.yaml --set mode=index >out &&
	entered "byindex/%" >actual &&
	printf "%s\n" byindex/0 byindex/1 >expect &&
	test_cmp expect actual &&
	cairn run k.yaml --set mode=str >out &&
	entered "bystr/%" >actual &&
	printf "%s\n" bystr/x1 bystr/y2 >expect &&
	test_cmp expect actual &&
	payload state.entered bystr | jq -c .inputs >actual &&
	echo "{\"items\":[\"x1\",\"y2\"],\"keys\":[\"x1\",\"y2\"],\"max_concurrency\":0}" >expect &&
	test_cmp expect actual
'

test_expect_success 'map: two items with one key fail the state, naming them; nothing runs' '
	in_dir keys &&
	test_must_fail_with 1 cairn run k.yaml --set mode=str --set strs=a,b,a >out &&
	finished_error >actual &&
	echo "state '\''bystr'\'' failed: items 0 and 2 have the same key '\''a'\'' (hint: give the map a '\''key'\'' that tells them apart); rolled back: nothing to undo" >expect &&
	test_cmp expect actual &&
	entered "bystr/%" >actual &&
	test_cmp /dev/null actual &&
	test_must_fail_with 1 cairn run k.yaml --set '\''objs=[{"name":"a","port":1},{"name":"a","port":1}]'\'' >out &&
	finished_error >actual &&
	test_grep "^state '\''bykey'\'' failed: items 0 and 1 have the same key '\''a-1'\''" actual
'

test_expect_success 'map: a key that is not 1-63 letters, digits, ._- fails the state, naming the item' '
	in_dir keys &&
	test_must_fail_with 1 cairn run k.yaml --set mode=str --set "strs=ok,a b" >out &&
	finished_error >actual &&
	echo "state '\''bystr'\'' failed: item 1 has the key '\''a b'\'', not 1 to 63 of letters, digits, '\''.'\'', '\''_'\'' and '\''-'\'' (hint: give the map a '\''key'\'' that makes one); rolled back: nothing to undo" >expect &&
	test_cmp expect actual &&
	long=$(printf "%064d" 0) &&
	test_must_fail_with 1 cairn run k.yaml --set mode=str --set "strs=$long" >out &&
	finished_error >actual &&
	test_grep "^state '\''bystr'\'' failed: item 0 has the key '\''$long'\''" actual &&
	test_must_fail_with 1 cairn run k.yaml --set mode=str --set "strs=.." >out &&
	finished_error >actual &&
	test_grep "^state '\''bystr'\'' failed: item 0 has the key '\''..'\''" actual
'

write_workflow empty/e.yaml <<\EOF
cairn: 1
name: empty
params:
  items: { type: list, default: [] }
start: e
states:
  e:
    map:
      items: "{{ params.items }}"
      do: exec
      with: { argv: [sh, ../j.sh, "e-{{ item }}"] }
    next: after
  after:
    do: exec
    with: { argv: [sh, ../j.sh, "after n={{ states.e.output }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'map: an empty list succeeds at once with an empty output' '
	in_dir empty &&
	cairn run e.yaml >out &&
	echo "after n={}" >expect &&
	test_cmp expect trace &&
	entered >actual &&
	printf "%s\n" e after done >expect &&
	test_cmp expect actual
'

test_expect_success 'map: list params from --set, as JSON and as a,b,c' '
	in_dir empty &&
	rm -f trace &&
	cairn run e.yaml --set "items=[\"p\",\"q\"]" >out &&
	cairn run e.yaml --set items=r,s,t >out &&
	head -n 2 trace >actual &&
	printf "%s\n" e-p e-q >expect &&
	sort actual >actual.s &&
	test_cmp expect actual.s &&
	sed -n "4,6p" trace | sort >actual &&
	printf "%s\n" e-r e-s e-t >expect &&
	test_cmp expect actual &&
	j "SELECT json_extract(payload, '\''$.params.items'\'') FROM events WHERE kind = '\''run.started'\'' ORDER BY seq" >actual &&
	printf "%s\n" "[]" "[\"p\",\"q\"]" "[\"r\",\"s\",\"t\"]" >expect &&
	test_cmp expect actual &&
	test_must_fail_with 2 cairn run e.yaml --set "items=[" 2>err &&
	echo "cairn: param '\''items'\'' must be a list, got '\''['\'' (hint: a JSON list, or a,b,c)" >expect &&
	test_cmp expect err
'

# b ends first, then a; c fails while d runs; e never starts. The plan
# undoes d (cancelled, no probe), b and a: reverse item order, not
# reverse completion order (d, a, b).
write_workflow mfail/f.yaml <<\EOF
cairn: 1
name: mfail
start: m
states:
  m:
    map:
      items: [a, b, c, d, e]
      max_concurrency: 2
      do: exec
      with: { argv: [sh, ../inst.sh, "{{ item }}"] }
      undo: { do: exec, with: { argv: [sh, -c, "echo undo-$0 >>trace", "{{ item }}"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'map: a failed instance cancels the running ones, starts no more, undoes in reverse item order' '
	in_dir mfail &&
	echo 1 >sleep.a && echo 0.1 >sleep.b && echo 3 >sleep.c && touch fail.c &&
	echo 30 >sleep.d &&
	test_must_fail_with 1 cairn run f.yaml >out &&
	test_path_is_missing started.e &&
	entered "m/%" >actual &&
	printf "m/%s\n" a b c d >expect &&
	test_cmp expect actual &&
	j "SELECT state || '\'' '\'' || json_extract(payload, '\''$.outcome'\'') FROM events
	   WHERE run_id = '\''$(lr)'\'' AND kind = '\''action.finished'\'' AND state LIKE '\''m/%'\''
	   ORDER BY seq" >actual &&
	printf "%s\n" "m/b succeeded" "m/a succeeded" "m/c failed" "m/d cancelled" >expect &&
	test_cmp expect actual &&
	grep "^undo-" trace >actual &&
	printf "%s\n" undo-d undo-b undo-a >expect &&
	test_cmp expect actual &&
	finished_error >actual &&
	echo "state '\''m/c'\'' failed: exited with status 7 (log: $TRASH/mfail/jnl/runs/$(lr)/m.c.log); rolled back: m/d, m/b, m/a" >expect &&
	test_cmp expect actual
'

# Instance b fails at once and waits 30 s for its retry; a fails for good
# after 0.3 s. b, cancelled in its retry wait, says why as a map's
# instance.
write_workflow mwhy/inst.yaml <<\EOF
cairn: 1
name: inst
params: { item: {} }
start: pick
states:
  pick:
    choice:
      - when: "params.item == 'a'"
        next: slow
    default: again
  slow: { do: exec, with: { shell: "sleep 0.3; exit 1" }, next: done }
  again:
    do: exec
    with: { argv: ["false"] }
    retry: { attempts: 2, delay: 30s }
    next: done
  done: { succeed: true }
EOF

write_workflow mwhy/f.yaml <<\EOF
cairn: 1
name: mwhy
start: m
states:
  m:
    map: { items: [a, b], use: inst.yaml, with: { item: "{{ item }}" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'map: an instance cancelled in its retry wait says another instance failed, not a branch' '
	in_dir mwhy &&
	test_must_fail_with 1 timeout 20 "$CAIRN_BIN" run f.yaml >out &&
	j "SELECT json_extract(payload, '\''$.error'\'') FROM events
	   WHERE run_id = '\''$(lr)'\'' AND kind = '\''action.finished'\'' AND state = '\''m/b/again'\''
	   AND json_extract(payload, '\''$.outcome'\'') = '\''cancelled'\''" >actual &&
	echo "cancelled: another instance of the map failed" >expect &&
	test_cmp expect actual
'

# ---- kill -9 and resume ------------------------------------------------------------

# idempotent instances; c and d wait for ./go when block.c/block.d exist.
write_workflow kmap/km.yaml <<\EOF
cairn: 1
name: kmap
params:
  items: { default: [a, b, c, d, e] }
start: m
states:
  m:
    map:
      items: "{{ params.items }}"
      max_concurrency: 2
      idempotent: true
      do: exec
      with: { argv: [sh, ../blk.sh, "{{ item }}"] }
    next: after
  after:
    do: exec
    with: { argv: [sh, ../j.sh, "after {{ states.m.output.a.json.k }}{{ states.m.output.e.json.k }}"] }
    next: done
  done: { succeed: true }
EOF

# blk.sh KEY: "start KEY PID" in trace; waits for ./go when block.KEY
# exists; "end KEY" in trace.
cat >blk.sh <<\EOF
echo "start $1 $$" >>trace
touch "started.$1"
if [ -e "block.$1" ]; then
	while [ ! -e go ]; do sleep 0.05; done
fi
echo "end $1" >>trace
printf '{"k":"%s"}\n' "$1"
EOF

test_expect_success 'kill -9 in a map (max_concurrency 2): resume finishes every item, verify passes' '
	in_dir kmap &&
	touch block.c block.d &&
	start_bg run km.yaml &&
	# whatever happens, the blocked instances end with the test
	trap '\''if [ -n "${BGPID:-}" ]; then kill -9 "$BGPID"; fi 2>/dev/null; touch "$TRASH/kmap/go"'\'' EXIT &&
	wait_for_file started.d 20 &&
	sleep 0.2 &&
	kill_bg &&
	grep "^start [cd] " trace | cut -d" " -f3 >orphans &&
	rm block.c block.d &&
	cairn resume >out &&
	for p in $(cat orphans); do
		if proc_alive "$p"; then
			kill -9 "$p"; echo "orphan $p survived the resume"; exit 1
		fi
	done &&
	for k in a b c d e; do
		test "$(grep -c "^end $k$" trace)" = 1 || {
			echo "item $k did not end exactly once"; cat trace; exit 1; }
	done &&
	test "$(grep -c "^start a " trace)" = 1 &&
	test "$(grep -c "^start b " trace)" = 1 &&
	test "$(grep -c "^start e " trace)" = 1 &&
	tail -n 1 trace >actual &&
	echo "after ae" >expect &&
	test_cmp expect actual &&
	j "SELECT status FROM runs" >actual &&
	echo succeeded >expect &&
	test_cmp expect actual &&
	cairn verify >out
'

# Non-idempotent steps with probes, in a map and in a used workflow that
# holds a secret param and a map of its own: after a kill at any journal
# commit and a resume, each took effect exactly once.
write_workflow once/lib/sub.yaml <<\EOF
cairn: 1
name: sub
params:
  tag: {}
  token: {}
  hosts: { default: [h1, h2] }
secrets: [API_TOKEN]
outputs:
  got: "{{ params.tag }}"
start: one
states:
  one:
    do: exec
    with: { argv: [sh, ../../eff.sh, "sub-one-{{ params.tag }}", "{{ params.token }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "sub-one-{{ params.tag }} {{ params.token }}", ledger] } }
    next: each
  each:
    map:
      items: "{{ params.hosts }}"
      max_concurrency: 1
      do: exec
      with: { argv: [sh, ../../eff.sh, "sub-{{ item }}-{{ params.tag }}"] }
      probe: { do: exec, with: { argv: [grep, -qx, "sub-{{ item }}-{{ params.tag }}", ledger] } }
    next: done
  done: { succeed: true }
EOF

write_workflow once/top.yaml <<\EOF
cairn: 1
name: once
secrets: [API_TOKEN]
params:
  items: { default: [a, b, c, d] }
start: m
states:
  m:
    map:
      items: "{{ params.items }}"
      max_concurrency: 2
      do: exec
      with: { argv: [sh, ../../eff.sh, "m-{{ item }}"] }
      probe: { do: exec, with: { argv: [grep, -qx, "m-{{ item }}", ledger] } }
    next: u
  u:
    use: lib/sub.yaml
    with: { tag: "{{ params.items[3] }}", token: "{{ secrets.API_TOKEN }}" }
    next: last
  last:
    do: exec
    with: { argv: [sh, ../../eff.sh, "last-{{ states.u.output.got }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "last-{{ states.u.output.got }}", ledger] } }
    next: done
  done: { succeed: true }
EOF

# eff.sh NAME [SECRET]: a step that is not idempotent: one line in ledger.
# It takes a little time, so that the journal commits its start and its
# end apart (more kill points).
cat >eff.sh <<\EOF
sleep 0.05
echo "$1${2:+ $2}" >>ledger
printf '{"k":"%s"}\n' "$1"
EOF

SECRET=zz-s3cret-4711
export API_TOKEN=$SECRET

test_expect_success 'kill at every journal commit in a map and a used workflow: resume, each effect exactly once' '
	cd once &&
	cat >expect <<-EOF &&
	last-d
	m-a
	m-b
	m-c
	m-d
	sub-h1-d
	sub-h2-d
	sub-one-d $SECRET
	EOF
	kill_everywhere ../top.yaml 0 succeeded
'

# The same during a rollback: a used workflow whose map completed reaches
# its fail state; each undo (with probes) reads the used workflow's
# params, one of them a secret.
write_workflow oncerb/lib/sub.yaml <<\EOF
cairn: 1
name: sub
params:
  tag: {}
  token: {}
secrets: [API_TOKEN]
start: one
states:
  one:
    do: exec
    with: { argv: [sh, ../../eff.sh, "one-{{ params.tag }}"] }
    probe: { do: exec, with: { argv: [grep, -qx, "one-{{ params.tag }}", ledger] } }
    undo:
      do: exec
      with: { argv: [sh, ../../eff.sh, "undo-one-{{ params.tag }}", "{{ params.token }}"] }
      probe: { do: exec, with: { argv: [grep, -qx, "undo-one-{{ params.tag }} {{ params.token }}", ledger] } }
    next: each
  each:
    map:
      items: [h1, h2, h3]
      max_concurrency: 2
      do: exec
      with: { argv: [sh, ../../eff.sh, "each-{{ item }}-{{ params.tag }}"] }
      probe: { do: exec, with: { argv: [grep, -qx, "each-{{ item }}-{{ params.tag }}", ledger] } }
      undo:
        do: exec
        with: { argv: [sh, ../../eff.sh, "undo-each-{{ item }}-{{ params.tag }}"] }
        probe: { do: exec, with: { argv: [grep, -qx, "undo-each-{{ item }}-{{ params.tag }}", ledger] } }
    next: bad
  bad: { fail: true, message: nope }
EOF

write_workflow oncerb/top.yaml <<\EOF
cairn: 1
name: oncerb
secrets: [API_TOKEN]
start: u
states:
  u:
    use: lib/sub.yaml
    with: { tag: T, token: "{{ secrets.API_TOKEN }}" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'kill at every journal commit of a rollback inside a used workflow: each undo exactly once' '
	cd oncerb &&
	cat >expect <<-EOF &&
	each-h1-T
	each-h2-T
	each-h3-T
	one-T
	undo-each-h1-T
	undo-each-h2-T
	undo-each-h3-T
	undo-one-T $SECRET
	EOF
	kill_everywhere ../top.yaml 1 failed &&
	grep "^undo-" w/ledger >actual &&
	cat >expect <<-EOF &&
	undo-each-h3-T
	undo-each-h2-T
	undo-each-h1-T
	undo-one-T $SECRET
	EOF
	test_cmp expect actual
'

# A used workflow with a secret param, killed in its long step.
write_workflow kuse/lib/svc.yaml <<\EOF
cairn: 1
name: svc
params:
  name: {}
  token: {}
  port: { default: 8000 }
secrets: [API_TOKEN]
outputs:
  url: "http://127.0.0.1:{{ params.port }}/{{ params.name }}"
start: prep
states:
  prep:
    do: exec
    with: { argv: [sh, -c, 'echo "prep $0 $1" >>trace', "{{ params.name }}", "{{ params.port }}"] }
    idempotent: true
    next: long
  long:
    do: exec
    with: { argv: [sh, -c, 'echo "long $0 $1 $2" >>trace; touch long.started; while [ ! -e go ]; do sleep 0.05; done', "{{ params.name }}", "{{ params.port }}", "{{ params.token }}"] }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

write_workflow kuse/top.yaml <<\EOF
cairn: 1
name: kuse
secrets: [API_TOKEN]
start: svc
states:
  svc:
    use: lib/svc.yaml
    with: { name: api, token: "tok-{{ secrets.API_TOKEN }}", port: 9001 }
    next: after
  after:
    do: exec
    with: { argv: [sh, -c, 'echo "after $0" >>trace', "{{ states.svc.output.url }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'kill -9 inside a used workflow: resume goes on in it with its params, the secret never journaled' '
	in_dir kuse &&
	start_bg run top.yaml &&
	wait_for_file long.started 20 &&
	kill_bg &&
	touch go &&
	cairn resume >out &&
	cat >expect <<-EOF &&
	prep api 9001
	long api 9001 tok-$SECRET
	long api 9001 tok-$SECRET
	after http://127.0.0.1:9001/api
	EOF
	test_cmp expect trace &&
	entered >actual &&
	printf "%s\n" svc svc/prep svc/long svc/done after done >expect &&
	test_cmp expect actual &&
	payload state.entered svc | jq -c .inputs >actual &&
	echo "{\"name\":\"api\",\"port\":9001,\"token\":\"tok-***\"}" >expect &&
	test_cmp expect actual &&
	j "SELECT attempt FROM events WHERE kind = '\''action.started'\'' AND state = '\''svc/long'\'' ORDER BY seq" >actual &&
	printf "%s\n" 1 2 >expect &&
	test_cmp expect actual &&
	for f in jnl/journal.db jnl/journal.db-wal; do
		if [ -e "$f" ] && grep -qF "$SECRET" "$f"; then
			echo "the secret is in $f"; exit 1
		fi
	done &&
	if grep -rqF "$SECRET" jnl; then echo "the secret is in a log"; exit 1; fi &&
	test_grep ! -F "$SECRET" out &&
	cairn verify >out
'

# ---- secrets in used outputs and map items -------------------------------------------

write_workflow secret/sub.yaml <<\EOF
cairn: 1
name: sub
params:
  pw: {}
outputs:
  dsn: "postgres://u:{{ params.pw }}@h"
start: done
states:
  done: { succeed: true }
EOF

write_workflow secret/out.yaml <<\EOF
cairn: 1
name: out
secrets: [API_TOKEN]
start: u
states:
  u:
    use: sub.yaml
    with: { pw: "{{ secrets.API_TOKEN }}" }
    next: gate
  gate:
    do: exec
    with: { argv: [sh, -c, "touch gate.started; while [ ! -e go ]; do sleep 0.05; done"] }
    idempotent: true
    next: use
  use:
    do: exec
    with: { argv: [sh, -c, 'echo "$0" >got', "{{ states.u.output.dsn }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow secret/items.yaml <<\EOF
cairn: 1
name: items
secrets: [API_TOKEN]
start: m
states:
  m:
    map:
      items: ["{{ secrets.API_TOKEN }}", other]
      key: "k{{ item == 'other' }}"
      do: exec
      with: { argv: [sh, -c, 'echo "$0" >>got', "{{ item }}"] }
      undo: { do: exec, with: { argv: [sh, -c, 'echo "undo $0" >>got', "{{ item }}"] } }
    next: bad
  bad: { do: exec, with: { argv: ["false"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a used workflow'\''s output holding a secret: the real value in the run, *** in the journal' '
	in_dir secret &&
	touch go &&
	cairn run out.yaml >out &&
	echo "postgres://u:$SECRET@h" >expect &&
	test_cmp expect got &&
	payload state.finished u | jq -r .outputs.dsn >actual &&
	echo "postgres://u:***@h" >expect &&
	test_cmp expect actual &&
	if grep -rqF "$SECRET" jnl; then echo "the secret is in the journal"; exit 1; fi
'

test_expect_success 'after kill -9 and resume, a used output holding a secret is still the real value' '
	in_dir secret &&
	rm -f go got gate.started &&
	start_bg run out.yaml &&
	trap '\''if [ -n "${BGPID:-}" ]; then kill -9 "$BGPID"; fi 2>/dev/null; touch "$TRASH/secret/go"'\'' EXIT &&
	wait_for_file gate.started 20 &&
	kill_bg &&
	touch go &&
	cairn resume >out &&
	echo "postgres://u:$SECRET@h" >expect &&
	test_cmp expect got
'

test_expect_success 'map: an item holding a secret is passed to its action, *** in the journal' '
	in_dir secret &&
	rm -f got &&
	test_must_fail_with 1 cairn run items.yaml >out &&
	head -n 2 got | sort >actual &&
	printf "%s\n" other "$SECRET" | sort >expect &&
	test_cmp expect actual &&
	payload state.entered m/kfalse | jq -r .item >actual &&
	echo "***" >expect &&
	test_cmp expect actual
'

test_expect_success 'map: the undo of an item holding a secret gets the item, not ***' '
	in_dir secret &&
	rm -f got &&
	test_must_fail_with 1 cairn run items.yaml >out &&
	grep "^undo " got >actual &&
	printf "%s\n" "undo other" "undo $SECRET" >expect &&
	test_cmp expect actual
'

test_expect_success 'map: an item holding a secret never becomes a key' '
	in_dir secret &&
	sed "/^      key:/d" items.yaml >nokey.yaml &&
	cairn run nokey.yaml >out 2>&1 || : &&
	test_grep ! -F "$SECRET" out &&
	if grep -rqF "$SECRET" jnl; then echo "the secret is in the journal"; exit 1; fi &&
	if find jnl -name "*$SECRET*" | grep -q .; then echo "the secret names a log"; exit 1; fi
'

# ---- simulate -----------------------------------------------------------------------

test_expect_success 'simulate: the trace of a use and a map' '
	in_dir fail1 &&
	cairn simulate top.yaml --set broken=false >out &&
	cat >expect <<-\EOF &&
	enter pre
	  ✓ pre (attempt 1)
	→ u (next)
	enter u (use)
	→ u/one (use)
	enter u/one
	  ✓ u/one (attempt 1)
	→ u/two (next)
	enter u/two
	  ✓ u/two (attempt 1)
	→ u/check (next)
	enter u/check (choice)
	→ u/done (default)
	enter u/done (succeed)
	→ m (next)
	enter m (map)
	enter m/x (instance)
	enter m/y (instance)
	  ✓ m/x (attempt 1)
	  ✓ m/y (attempt 1)
	→ done (next)
	enter done (succeed)
	■ succeeded
	result: succeeded; a real run would exit 0
	EOF
	test_cmp expect out
'

test_expect_success 'simulate --fail-at a used state and a map instance: the rollback each leads to' '
	in_dir fail1 &&
	cairn simulate top.yaml --set broken=false --fail-at u/two >out &&
	test_grep "^  ✗ u/two (attempt 1): failed$" out &&
	test_grep "^→ rollback (on_failure)$" out &&
	test_grep "^↶ rollback plan: undo:u/one, undo:pre$" out &&
	tail -n 1 out >actual &&
	echo "result: failed; a real run would exit 1" >expect &&
	test_cmp expect actual &&
	cairn simulate top.yaml --set broken=false --fail-at m/y >out &&
	test_grep "^  ✗ m/y (attempt 1): failed$" out &&
	test_grep "^↶ rollback plan: undo:m/x, undo:u/two, undo:u/one, undo:pre$" out &&
	test_grep "^enter undo:u/two \[placeholders: argv\]$" out
'

test_expect_success 'simulate --fail-at MAP names the map'\''s instances in its hint' '
	in_dir mfail &&
	test_must_fail_with 2 cairn simulate f.yaml --fail-at m 2>err &&
	test_grep ! "action states are none" err &&
	test_grep "is a map state; name one of its instances (hint: --fail-at m/KEY" err
'

test_expect_success 'simulate --fail-at of a map over a used workflow, or one instance of it: name a state of it' '
	in_dir mwhy &&
	test_must_fail_with 2 cairn simulate f.yaml --fail-at m 2>err &&
	test_grep "^cairn: --fail-at .m.: .m. is a map over a used workflow; name a state of it (hint: --fail-at m/S fails state S in every instance, m/KEY/S in one)$" err &&
	test_must_fail_with 2 cairn simulate f.yaml --fail-at m/b 2>err &&
	test_grep "^cairn: --fail-at .m/b.: .m/b. is an instance of map .m. over a used workflow; name a state of it (hint: --fail-at m/b/S fails its state S, m/S that state in every instance)$" err &&
	cairn simulate f.yaml --fail-at m/b/again >out &&
	test_grep "✗ m/b/again (attempt 1): failed" out
'

# ---- the loader -----------------------------------------------------------------------

write_workflow bad/lib/sub.yaml <<\EOF
cairn: 1
name: sub
params:
  port: {}
  name: { default: x }
secrets: [TOKEN]
start: s
states:
  s:
    do: exec
    with: { argv: [echo, "{{ params.port }}", "{{ secrets.TOKEN }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/unknown.yaml <<\EOF
cairn: 1
name: t
secrets: [TOKEN]
start: u
states:
  u:
    use: lib/sub.yaml
    with: { port: 1, prot: 2 }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/missing.yaml <<\EOF
cairn: 1
name: t
secrets: [TOKEN]
start: u
states:
  u:
    use: lib/sub.yaml
    with: { name: y }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/nofile.yaml <<\EOF
cairn: 1
name: t
start: u
states:
  u:
    use: lib/nothere.yaml
    next: done
  done: { succeed: true }
EOF

write_workflow bad/nosecret.yaml <<\EOF
cairn: 1
name: t
start: u
states:
  u:
    use: lib/sub.yaml
    with: { port: 1 }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/cyc1.yaml <<\EOF
cairn: 1
name: cyc1
start: u
states:
  u:
    use: lib/cyc2.yaml
    next: done
  done: { succeed: true }
EOF

write_workflow bad/lib/cyc2.yaml <<\EOF
cairn: 1
name: cyc2
start: u
states:
  u:
    use: ../cyc1.yaml
    next: done
  done: { succeed: true }
EOF

write_workflow bad/self.yaml <<\EOF
cairn: 1
name: self
start: u
states:
  u:
    use: self.yaml
    next: done
  done: { succeed: true }
EOF

write_workflow bad/usemap.yaml <<\EOF
cairn: 1
name: t
start: m
states:
  m:
    map:
      items: [a, b]
      use: lib/sub.yaml
    next: done
  done: { succeed: true }
EOF

write_workflow bad/item.yaml <<\EOF
cairn: 1
name: t
start: a
states:
  a:
    do: exec
    with: { argv: [echo, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/noitems.yaml <<\EOF
cairn: 1
name: t
start: m
states:
  m:
    map:
      do: exec
      with: { argv: [echo, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

write_workflow bad/itemsitem.yaml <<\EOF
cairn: 1
name: t
start: m
states:
  m:
    map:
      items: "{{ item }}"
      do: exec
      with: { argv: [echo, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

# validate_error FILE: cairn validate FILE must exit 2 with exactly the
# line in ./expect on stderr and nothing on stdout.
validate_error() {
	test_must_fail_with 2 cairn validate "$1" >out 2>err &&
	test_cmp /dev/null out &&
	test_cmp expect err
}

test_expect_success 'validate: an unknown key in a use state'\''s with' '
	cd bad &&
	echo "unknown.yaml:8:22: error: unknown param '\''prot'\'' of '\''$PWD/lib/sub.yaml'\'' in the '\''with'\'' of state '\''u'\'' (hint: did you mean '\''port'\''?)" >expect &&
	validate_error unknown.yaml
'

# A value written as it is in a use state's with is checked at load
# against the used workflow's param, as it would be on entry.
write_workflow bad/lib/typed.yaml <<\EOF
cairn: 1
name: typed
params:
  port: { type: integer }
  user: { pattern: "^[a-z]+$", default: app }
  key: { secret: true, pattern: "^k-", default: k-123 }
  label: { default: x }
start: show
states:
  show:
    do: exec
    with: { argv: [sh, -c, "echo {{ params.label }} {{ params.user }} >label.txt"] }
    next: done
  done: { succeed: true }
EOF
write_workflow bad/typed-port.yaml <<\EOF
cairn: 1
name: t
start: u
states:
  u:
    use: lib/typed.yaml
    with: { port: not-a-port }
    next: done
  done: { succeed: true }
EOF
sed 's/with: { port: not-a-port }/with: { port: 80, user: Shop }/' bad/typed-port.yaml >bad/typed-user.yaml
sed 's/with: { port: not-a-port }/with: { port: 80, key: hunter2 }/' bad/typed-port.yaml >bad/typed-key.yaml
sed 's/with: { port: not-a-port }/with: { port: "{{ 80 }}", user: "{{ '"'"'Shop'"'"' }}" }/' bad/typed-port.yaml >bad/typed-late.yaml

test_expect_success 'validate: a literal of the wrong type or pattern in a use state'\''s with' '
	cd bad &&
	echo "typed-port.yaml:7:19: error: param '\''port'\'' must be an integer, got a string, in the '\''with'\'' of state '\''u'\'' (hint: see param '\''port'\'' in '\''$PWD/lib/typed.yaml'\'')" >expect &&
	validate_error typed-port.yaml &&
	echo "typed-user.yaml:7:29: error: param '\''user'\'' must match '\''^[a-z]+\$'\'', got '\''Shop'\'', in the '\''with'\'' of state '\''u'\'' (hint: see param '\''user'\'' in '\''$PWD/lib/typed.yaml'\'')" >expect &&
	validate_error typed-user.yaml &&
	test_must_fail_with 2 cairn validate typed-key.yaml 2>err &&
	test_grep "typed-key.yaml:7:28: error: the value of secret param '\''key'\''" err &&
	test_grep ! hunter2 err &&
	cairn validate typed-late.yaml
'

test_expect_success 'a number or boolean given to a string param is its text' '
	cd bad &&
	sed "s/with: { port: not-a-port }/with: { port: 80, label: 1.5 }/" typed-port.yaml >typed-text.yaml &&
	cairn validate typed-text.yaml &&
	CAIRN_JOURNAL=$PWD/text.db cairn run typed-text.yaml >out &&
	echo "1.5 app" >expect &&
	test_cmp expect label.txt &&
	sed "s/with: { port: not-a-port }/with: { port: 80, user: 12 }/" typed-port.yaml >typed-bool.yaml &&
	test_must_fail_with 2 cairn validate typed-bool.yaml 2>err &&
	test_grep -F "param '\''user'\'' must match '\''^[a-z]+\$'\'', got '\''12'\''" err
'

test_expect_success 'validate: a required param of the used workflow not given' '
	cd bad &&
	echo "missing.yaml:7:5: error: state '\''u'\'' does not give param '\''port'\'' of '\''$PWD/lib/sub.yaml'\'', which has no default (hint: add '\''port: VALUE'\'' to its '\''with'\'')" >expect &&
	validate_error missing.yaml
'

test_expect_success 'validate: the used workflow needs a secret this one does not declare' '
	cd bad &&
	echo "nosecret.yaml:6:5: error: '\''$PWD/lib/sub.yaml'\'', used by state '\''u'\'', needs secret '\''TOKEN'\'' (hint: add it to this workflow'\''s '\''secrets'\'')" >expect &&
	validate_error nosecret.yaml
'

test_expect_success 'validate: use of a missing file points at the use' '
	cd bad &&
	test_must_fail_with 2 cairn validate nofile.yaml 2>err &&
	test_grep "^nofile.yaml:6:10: error: .*lib/nothere.yaml.*No such file or directory" err
'

test_expect_success 'validate: use of a missing file is refused, naming the file' '
	cd bad &&
	test_must_fail_with 2 cairn validate nofile.yaml 2>err &&
	test_grep "$PWD/lib/nothere.yaml'\''\{0,1\}: No such file or directory" err
'

test_expect_success 'validate: a workflow that uses itself, directly or through another' '
	cd bad &&
	echo "self.yaml:6:10: error: '\''self.yaml'\'' in state '\''u'\'' uses itself through '\''use'\'' (hint: a workflow cannot use a workflow that uses it)" >expect &&
	validate_error self.yaml &&
	echo "$PWD/lib/cyc2.yaml:6:10: error: '\''../cyc1.yaml'\'' in state '\''u'\'' uses itself through '\''use'\'' (hint: a workflow cannot use a workflow that uses it)" >expect &&
	validate_error cyc1.yaml
'

test_expect_success 'validate: use inside map (checked as a use: t0028), item outside map or in items, map without items' '
	cd bad &&
	echo "usemap.yaml:8:7: error: state '\''m'\'' does not give param '\''port'\'' of '\''$PWD/lib/sub.yaml'\'', which has no default (hint: add '\''port: VALUE'\'' to its '\''with'\'')" >expect &&
	validate_error usemap.yaml &&
	echo "item.yaml:7:30: error: use of '\''item'\'' outside a map state in state '\''a'\'' (hint: item is only available inside map states)" >expect &&
	validate_error item.yaml &&
	echo "itemsitem.yaml:7:18: error: use of '\''item'\'' outside a map state in state '\''m'\'' (hint: item is only available inside map states)" >expect &&
	validate_error itemsitem.yaml &&
	echo "noitems.yaml:7:7: error: missing key '\''items'\'' in the map of state '\''m'\'' (hint: a list, or a template that gives one, e.g. \"{{ params.services }}\")" >expect &&
	validate_error noitems.yaml
'

test_done
