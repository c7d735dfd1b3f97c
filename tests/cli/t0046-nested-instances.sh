#!/bin/bash
# t0046-nested-instances: inside the instances of a map over a used
# workflow, a parallel state's branches and a map of `do` are actions like
# any other: a rollback undoes them (instance by instance, in reverse list
# order; inside one, by the usual rules), simulate and plan name them and
# agree with a real run, and --fail-at / --fail-undo reach them by their
# path in every instance (M/S/B) or in one (M/KEY/S/B).
# shellcheck disable=SC2016 # jq programs in single quotes
. "$(dirname "$0")/lib.sh"

if ! command -v jq >/dev/null 2>&1; then
	test_skip_all 'jq is needed'
fi

write_workflow sub.yaml <<\EOF
cairn: 1
name: sub
params:
  n: { type: string }
start: s1
states:
  s1:
    do: exec
    with: { argv: [sh, -c, "echo s1 {{ params.n }} >>ledger"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo s1 {{ params.n }} >>ledger"] } }
    next: par
  par:
    parallel:
      p:
        do: exec
        with: { argv: [sh, -c, "echo p {{ params.n }} >>ledger"] }
        undo: { do: exec, with: { argv: [sh, -c, "echo undo p {{ params.n }} >>ledger"] } }
      q:
        do: exec
        with: { argv: [sh, -c, "echo q {{ params.n }} >>ledger"] }
        undo: { do: exec, with: { argv: [sh, -c, "echo undo q {{ params.n }} >>ledger"] } }
    next: inner
  inner:
    map:
      items: [x, y]
      max_concurrency: 1
      do: exec
      with: { argv: [sh, -c, "echo inner {{ params.n }} {{ item }} >>ledger"] }
      undo: { do: exec, with: { argv: [sh, -c, "echo undo inner {{ params.n }} {{ item }} >>ledger"] } }
    next: fin
  fin: { succeed: true }
EOF
write_workflow wf.yaml <<\EOF
cairn: 1
name: nest
params:
  fail: { default: "" }
start: m
states:
  m:
    map:
      items: [a, b]
      max_concurrency: 1
      use: sub.yaml
      with: { n: "{{ item }}" }
    next: post
  post:
    do: exec
    with: { argv: [sh, -c, "test '{{ params.fail }}' != post"] }
    next: done
  done: { succeed: true }
EOF

# shellcheck disable=SC2034 # read by the test bodies
PLAN='undo:m/b/inner/y, undo:m/b/inner/x, undo:m/b/par/q, undo:m/b/par/p, undo:m/b/s1, undo:m/a/inner/y, undo:m/a/inner/x, undo:m/a/par/q, undo:m/a/par/p, undo:m/a/s1'

test_expect_success 'a rollback undoes the branches and map instances inside each instance' '
	in_dir real &&
	cp ../sub.yaml ../wf.yaml . &&
	test_must_fail_with 1 cairn run wf.yaml --set fail=post >out &&
	test_grep -F "↶ rollback plan: $PLAN" out &&
	sed -n "/^undo /p" ledger >actual &&
	cat >expect <<-\EOF &&
	undo inner b y
	undo inner b x
	undo q b
	undo p b
	undo s1 b
	undo inner a y
	undo inner a x
	undo q a
	undo p a
	undo s1 a
	EOF
	test_cmp expect actual
'

test_expect_success 'simulate predicts that plan' '
	in_dir sim &&
	cp ../sub.yaml ../wf.yaml . &&
	cairn simulate wf.yaml --fail-at post >out &&
	test_grep -F "↶ rollback plan: $PLAN" out
'

test_expect_success 'rollback of a succeeded run: --dry-run shows that plan, and it runs' '
	in_dir asked &&
	cp ../sub.yaml ../wf.yaml . &&
	cairn run wf.yaml >out &&
	RUN=$(lr) &&
	cairn rollback "$RUN" --dry-run --json >plan.json &&
	jq -r "[.steps[].undo_path] | join(\", \")" plan.json >actual &&
	echo "$PLAN" >expect &&
	test_cmp expect actual &&
	cairn rollback "$RUN" >out &&
	sed -n "/^undo /p" ledger >actual &&
	test_cmp ../real/actual actual
'

test_expect_success '--fail-at and --fail-undo reach a branch inside the instances' '
	in_dir fail &&
	cp ../sub.yaml ../wf.yaml . &&
	cairn simulate wf.yaml --fail-at m/par/q --json >q.json &&
	jq -r "select(.kind == \"action.finished\" and .payload.outcome == \"failed\") | .state" q.json >actual &&
	echo m/a/par/q >expect &&
	test_cmp expect actual &&
	cairn simulate wf.yaml --fail-at m/b/par/q --json >bq.json &&
	jq -r "select(.kind == \"action.finished\" and .payload.outcome == \"failed\") | .state" bq.json >actual &&
	echo m/b/par/q >expect &&
	test_cmp expect actual &&
	cairn simulate wf.yaml --fail-at post --fail-undo m/par/p >out &&
	test_grep "^result: rollback_failed; a real run would exit 6$" out &&
	test_grep -F "✗ undo:m/b/par/p" out
'

test_expect_success 'a path that names no action inside the instances is refused' '
	in_dir refuse &&
	cp ../sub.yaml ../wf.yaml . &&
	test_must_fail_with 2 cairn simulate wf.yaml --fail-at m/a/zz 2>err &&
	test_grep -F "cairn: --fail-at '\''m/a/zz'\'': workflow '\''nest'\'' has no action state '\''m/a/zz'\''" err &&
	test_must_fail_with 2 cairn simulate wf.yaml --fail-at m 2>err &&
	test_grep -F "'\''m'\'' is a map over a used workflow; name a state of it" err
'

test_expect_success 'plan names each action inside the instances once' '
	in_dir plan &&
	cp ../sub.yaml ../wf.yaml . &&
	cairn plan wf.yaml --json >plan.json &&
	jq -r ".failures[].path" plan.json >actual &&
	printf "%s\n" m/s1 m/par/p m/par/q m/inner/x m/inner/y post >expect &&
	test_cmp expect actual &&
	jq -r ".failures[] | select(.path == \"post\") | .rollback | join(\", \")" plan.json >actual &&
	echo "$PLAN" >expect &&
	test_cmp expect actual
'

test_done
