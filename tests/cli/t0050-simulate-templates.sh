#!/bin/bash
# t0050-simulate-templates: a simulation excuses a template only what its
# placeholder outputs cause. A template that fails on params, vars or
# items, a use state's param of the wrong type, a map key that does not
# render, a choice that cannot decide, an undo that reads the outputs of a
# step that was cancelled or failed: each fails in the simulation as in a
# real run (same status, exit code, state and message). A template that
# reads placeholder outputs and does not render still does not fail it.
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1; then
	test_skip_all 'jq is not installed'
fi

# agree DIR WORKFLOW [SIMULATE OPTIONS]...: in a fresh DIR, a real run of
# WORKFLOW (its own journal) and its simulation with the options end
# alike: the same "STATUS exit CODE in STATE" (result) and the same
# message, less what only a real run's has (its log paths, the resume
# hint; a step that exits 1 where the simulation's fails as scripted).
# Leaves real.json and sim.json in DIR.
# shellcheck disable=SC2016 # jq's own \( ) interpolation
RESULT='"\(.status) exit \(.exit_code)" + if .state != "" then " in \(.state)" else "" end'
agree() {
	local dir=$1 wf=$2 rc=0
	shift 2
	mkdir "$dir" && cd "$dir" || return 1
	CAIRN_JOURNAL=$PWD/journal.db cairn run "../$wf" --json >real.json \
		2>real.err || rc=$?
	cairn simulate "../$wf" "$@" --json >sim.json || return 1
	jq -r --arg rc "$rc" "select(.kind == \"result\") | .exit_code = (\$rc | tonumber) | $RESULT" \
		real.json >real.result &&
	jq -r "select(.kind == \"result\") | $RESULT" sim.json >sim.result &&
	test_cmp real.result sim.result &&
	jq -r 'select(.kind == "result") | .message' real.json |
		sed -e 's/ (log: [^)]*)//' -e 's/: exited with status 1;/: simulated failure;/' \
			-e "s/; fix the cause, then 'cairn resume [^']*' retries the rest//" \
			>real.msg &&
	jq -r 'select(.kind == "result") | .message' sim.json >sim.msg &&
	test_cmp real.msg sim.msg
}

# ---- failures that do not come from placeholders -----------------------------

write_workflow list-item.yaml <<\EOF
cairn: 1
name: list-item
params: { svcs: { default: [auth] } }
start: b
states:
  b: { do: exec, with: { argv: [sh, -c, "echo {{ params.svcs[1] }}"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a param item that is not there fails the simulation as the run' '
	agree list-item list-item.yaml &&
	echo "failed exit 1 in b" >expect &&
	test_cmp expect sim.result &&
	echo "state '\''b'\'' failed: cannot resolve the inputs of '\''b'\'': params.svcs[1] is not set (params.svcs has 1 items); rolled back: nothing to undo" >expect &&
	test_cmp expect sim.msg
'

write_workflow sub/port.yaml <<\EOF
cairn: 1
name: port
params: { port: { type: integer } }
start: p
states:
  p: { do: exec, with: { argv: [echo, "{{ params.port }}"] }, next: done }
  done: { succeed: true }
EOF

write_workflow bad-param.yaml <<\EOF
cairn: 1
name: bad-param
params: { port: { default: "80a" } }
start: u
states:
  u: { use: sub/port.yaml, with: { port: "{{ params.port }}" }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a used workflow'\''s param of the wrong type fails the simulation as the run' '
	agree bad-param bad-param.yaml &&
	echo "failed exit 1 in u" >expect &&
	test_cmp expect sim.result &&
	test_grep "param '\''port'\'' must be an integer, got a string" sim.msg
'

write_workflow bad-key.yaml <<\EOF
cairn: 1
name: bad-key
params: { svcs: { default: [auth, api] } }
start: m
states:
  m:
    map:
      items: "{{ params.svcs }}"
      key: "{{ item.n }}"
      do: exec
      with: { argv: [echo, "{{ item }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a map key that does not render from real items fails the simulation as the run' '
	agree bad-key bad-key.yaml &&
	echo "state '\''m'\'' failed: item.n is not set (item is a string); rolled back: nothing to undo" >expect &&
	test_cmp expect sim.msg
'

write_workflow bad-when.yaml <<\EOF
cairn: 1
name: bad-when
params: { svcs: { default: [auth] } }
start: c
states:
  c:
    choice:
      - when: "params.svcs[1] == 'api'"
        next: done
    default: done
  done: { succeed: true }
EOF

test_expect_success 'a choice that cannot decide on a param fails the simulation as the run' '
	agree bad-when bad-when.yaml &&
	echo "choice '\''c'\'': params.svcs[1] is not set (params.svcs has 1 items)" >expect &&
	test_cmp expect sim.msg
'

# The rest of a template that reads a placeholder still counts: params.x
# is not set whatever the outputs of a say.
write_workflow mixed.yaml <<\EOF
cairn: 1
name: mixed
params: { svcs: { default: [auth] } }
start: a
states:
  a: { do: exec, with: { argv: [echo, '{"id":"A"}'] }, next: b }
  b: { do: exec, with: { argv: [echo, "{{ states.a.output.json.id }}-{{ params.svcs[1] }}"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a template that reads a placeholder and a missing param fails on the param' '
	agree mixed mixed.yaml &&
	test_grep "params.svcs\[1\] is not set" sim.msg
'

# ---- undos of steps that did not finish ----------------------------------------

# a fails at 0.2 s while b sleeps: b is cancelled before it prints, has
# no json output, and its undo cannot render.
write_workflow cancelled.yaml <<\EOF
cairn: 1
name: cancelled
start: par
states:
  par:
    parallel:
      a: { do: exec, with: { argv: [sh, -c, "sleep 0.2; exit 1"] } }
      b:
        do: exec
        with: { argv: [sh, -c, "sleep 2; echo '{\"id\":\"B\"}'"] }
        undo: { do: exec, with: { argv: [echo, "undo {{ self.output.json.id }}"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'the undo of a cancelled branch that reads its outputs: rollback_failed in both' '
	agree cancelled cancelled.yaml --fail-at par/a &&
	echo "rollback_failed exit 6 in undo:par/b" >expect &&
	test_cmp expect sim.result &&
	echo "undo of '\''par/b'\'' failed: self.output.json.id is not set; undone: nothing; left: par/b" >expect &&
	test_cmp expect sim.msg
'

# process.start reports its outputs when cancelled (it stops its service
# and says which): its default undo renders from them, in a real run as
# in the simulation.
write_workflow cancelled-start.yaml <<\EOF
cairn: 1
name: cancelled-start
start: par
states:
  par:
    parallel:
      a: { do: exec, with: { argv: [sh, -c, "sleep 0.2; exit 1"] } }
      svc:
        do: process.start
        with: { argv: [sleep, "300"], pid_file: svc.pid, wait: 5s }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'the default undo of a cancelled process.start: undone in both' '
	agree cancelled-start cancelled-start.yaml --fail-at par/a &&
	echo "failed exit 1 in par" >expect &&
	test_cmp expect sim.result &&
	test_grep -F "rolled back: par/svc" sim.msg &&
	jq -s -e "map(select(.kind == \"action.finished\" and .state == \"par/svc\")) |
		map(.payload.outcome) == [\"cancelled\"]" sim.json &&
	test_path_is_missing svc.pid
'

# The same branch with a probe that finds it took effect: the probe's
# outputs (exec's: an exit_code, no json) are what its undo sees, in both.
test_expect_success 'a cancelled branch its probe finds took effect: undone with the probe'\''s outputs in both' '
	sed -e "s/name: cancelled/name: probed/" \
		-e "s/self.output.json.id/self.output.exit_code/" \
		-e "s/^\(        undo:\)/        probe: { do: exec, with: { argv: [\"true\"] } }\n\1/" \
		cancelled.yaml >probed.yaml &&
	test_grep "probe:" probed.yaml &&
	agree probed probed.yaml --fail-at par/a &&
	echo "failed exit 1 in par" >expect &&
	test_cmp expect sim.result
'

write_workflow failed-state.yaml <<\EOF
cairn: 1
name: failed-state
start: a
states:
  a:
    do: exec
    with: { argv: [echo, a] }
    undo: { do: exec, with: { argv: [echo, "undo {{ states.b.output.exit_code }}"] } }
    next: b
  b: { do: exec, with: { argv: [sh, -c, "exit 1"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'an undo that reads the outputs of the state that failed: rollback_failed in both' '
	agree failed-state failed-state.yaml --fail-at b &&
	echo "rollback_failed exit 6 in undo:a" >expect &&
	test_cmp expect sim.result &&
	echo "undo of '\''a'\'' failed: states.b.output.exit_code is not set; undone: nothing; left: a" >expect &&
	test_cmp expect sim.msg
'

# ---- what placeholders cause is still excused ------------------------------------

# Real outputs make each of these render; placeholders do not, and the
# simulation goes on: the input as written, the param as it came, one
# instance for items it cannot know, a `when` it cannot decide false.
write_workflow from-outputs.yaml <<\EOF
cairn: 1
name: from-outputs
start: a
states:
  a:
    do: exec
    with: { argv: [echo, '{"id":"A","port":8080,"svcs":[{"n":"x"},{"n":"y"}],"ready":true}'] }
    next: b
  b: { do: exec, with: { argv: [echo, "{{ states.a.output.json.id }}"] }, next: u }
  u: { use: sub/port.yaml, with: { port: "{{ states.a.output.json.port }}" }, next: m }
  m:
    map:
      items: "{{ states.a.output.json.svcs }}"
      key: "{{ item.n }}"
      do: exec
      with: { argv: [echo, "{{ item.n }}"] }
    next: c
  c:
    choice:
      - when: "states.a.output.json.ready"
        next: done
    default: done
  done: { succeed: true }
EOF

test_expect_success 'templates that read placeholder outputs do not fail the simulation' '
	agree from-outputs from-outputs.yaml &&
	echo "succeeded exit 0" >expect &&
	test_cmp expect sim.result &&
	jq -c "select(.kind == \"state.entered\" and .state == \"b\") | .payload.inputs.argv" \
		sim.json >actual &&
	echo "[\"echo\",\"{{ states.a.output.json.id }}\"]" >expect &&
	test_cmp expect actual &&
	jq -r "select(.kind == \"state.entered\") | .state" sim.json >states &&
	test_grep "^m/0$" states &&
	jq -r "select(.kind == \"state.entered\") | .state" real.json >states &&
	test_grep "^m/x$" states
'

# A value from placeholders that fails an adapter's check (tcp.wait's
# port is an integer; a's json is {} here) does not fail it either; a
# real value does, in a ready check's inputs as in an action's.
write_workflow checks.yaml <<\EOF
cairn: 1
name: checks
params: { port: { default: "80a" } }
start: a
states:
  a: { do: exec, with: { argv: [echo, '{}'] }, next: w }
  w: { do: tcp.wait, with: { port: "{{ states.a.output.json }}", within: 1s }, next: r }
  r:
    do: exec
    with: { argv: ["true"] }
    ready: { do: tcp.wait, with: { port: "{{ params.port }}", within: 1s } }
    next: x
  x: { do: tcp.wait, with: { port: "{{ params.port }}", within: 1s }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'an adapter check fails only on a value that is not a placeholder' '
	cairn simulate checks.yaml --json >sim.json &&
	jq -r "select(.kind == \"result\") | .message" sim.json >actual &&
	echo "state '\''r'\'' failed: not ready: input '\''port'\'' must be an integer, not a string; rolled back: nothing to undo" >expect &&
	test_cmp expect actual &&
	sed "/ready:/d" checks.yaml >no-ready.yaml &&
	cairn simulate no-ready.yaml --json >sim.json &&
	jq -r "select(.kind == \"result\") | .message" sim.json >actual &&
	echo "state '\''x'\'' failed: cannot resolve the inputs of '\''x'\'': input '\''port'\'' must be an integer, not a string; rolled back: nothing to undo" >expect &&
	test_cmp expect actual
'

# ---- what comes from placeholders is marked --------------------------------------

# w's outputs are placeholders; e reads one of them, its undo all it
# needs (file.write's default undo reads self.output.path and .backup);
# c decides on one, d on a param; u's port comes from one.
write_workflow marks.yaml <<\EOF
cairn: 1
name: marks
params: { go: { default: true } }
start: w
states:
  w: { do: file.write, with: { path: f, content: x }, next: e }
  e: { do: exec, with: { argv: [echo, "{{ states.w.output.path }}", "{{ params.go }}"] }, next: c }
  c:
    choice:
      - when: "states.w.output.previous"
        next: done
    default: d
  d:
    choice:
      - when: "params.go"
        next: u
    default: done
  u: { use: sub/port.yaml, with: { port: "{{ states.w.output.sha256 }}" }, next: fails }
  fails: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'the trace marks inputs and decisions made of placeholders' '
	cairn simulate marks.yaml --fail-at fails >out &&
	cat >expect <<-\EOF &&
	enter w
	  ✓ w (attempt 1)
	→ e (next)
	enter e [placeholders: argv]
	  ✓ e (attempt 1)
	→ c (next)
	enter c (choice)
	→ d (default) [decided on placeholders]
	enter d (choice)
	→ u (when: params.go)
	enter u (use) [placeholders: port]
	→ u/p (use)
	enter u/p [placeholders: argv]
	  ✓ u/p (attempt 1)
	→ u/done (next)
	enter u/done (succeed)
	→ fails (next)
	enter fails
	  ✗ fails (attempt 1): failed
	→ rollback (on_failure)
	↶ rollback plan: undo:w
	enter undo:w [placeholders: path, restore_from]
	  ✓ undo:w (attempt 1)
	■ failed
	result: failed; a real run would exit 1
	EOF
	test_cmp expect out
'

# (A real run fails at u: a SHA-256 is no port. Its events are checked
# only for what they lack.)
test_expect_success '--json marks them with a placeholders member, which a real run'\''s events lack' '
	cairn simulate marks.yaml --fail-at fails --json >sim.json &&
	jq -c "select(.payload.placeholders) | [.kind, .state, .payload.placeholders]" \
		sim.json >actual &&
	cat >expect <<-\EOF &&
	["action.finished","w",true]
	["state.entered","e",["argv"]]
	["action.finished","e",true]
	["transition","c",true]
	["state.entered","u",["port"]]
	["state.entered","u/p",["argv"]]
	["action.finished","u/p",true]
	["state.entered","undo:w",["path","restore_from"]]
	["action.finished","undo:w",true]
	EOF
	test_cmp expect actual &&
	test_must_fail_with 1 cairn run marks.yaml --json >real.json &&
	test_grep ! placeholders real.json
'

test_done
