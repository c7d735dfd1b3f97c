#!/bin/bash
# t0022-promotion: cairn promote gated on the journal (after, approvals,
# approvers), cairn approve, --through, and the approval state kind.
. "$(dirname "$0")/lib.sh"

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  release: { default: "1.0.0" }
  fail: { default: "no" }
environments:
  dev: { vars: { name: dev } }
  staging: { vars: { name: staging }, after: dev }
  prod: { vars: { name: prod }, after: staging, approvals: 2, approvers: [alice, bob, carol] }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "echo {{ params.release }} > out-{{ vars.name }}"] }
    next: validate
  validate:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

# runs: the rows that are runs (not approval or refusal records).
runs() { q "SELECT count(*) FROM runs WHERE status NOT IN ('approved','refused')"; }
# refused ENV ARGS...: cairn promote must exit 5, start no run and journal
# exactly one promotion.refused (and nothing else).
refused() {
	local before ev_before
	before=$(runs) && ev_before=$(q "SELECT count(*) FROM events") &&
	test_must_fail_with 5 cairn promote app.yaml "$@" 2>err &&
	test "$(runs)" = "$before" &&
	test "$(q "SELECT count(*) FROM events")" = $((ev_before + 1)) &&
	test "$(q "SELECT kind FROM events ORDER BY seq DESC LIMIT 1")" = promotion.refused
}

test_expect_success 'a release that never ran in dev is refused for staging' '
	cairn run app.yaml --env dev --set release=0.9.0 &&
	refused --to staging --release 1.1.0 &&
	test_grep "cairn: promotion to staging refused: release 1.1.0 has no succeeded run in dev; it never ran there" err &&
	test_path_is_missing out-staging
'

test_expect_success 'a release that failed in dev is refused, naming the run and state' '
	test_must_fail_with 1 cairn run app.yaml --env dev --set release=1.1.0 --set fail=yes &&
	failed=$(last_run) &&
	refused --to staging --release 1.1.0 &&
	test_grep "last attempt $failed failed at validate" err
'

test_expect_success 'after a succeeded dev run staging is accepted, with the dev run as parent' '
	cairn run app.yaml --env dev --set release=1.1.0 &&
	dev=$(last_run) &&
	cairn promote app.yaml --to staging >out &&
	staging=$(last_run) &&
	test "$(cat out-staging)" = 1.1.0 &&
	test "$(q "SELECT parent || \" \" || release FROM runs WHERE id = \"$staging\"")" = "$dev 1.1.0" &&
	cairn show "$staging" --json >show.json &&
	jq -e --arg d "$dev" ".run.parent == \$d and (.events[0].payload.parent == \$d)" show.json
'

test_expect_success 'prod refuses without approvals' '
	refused --to prod &&
	test_grep "needs 2 approvals from distinct actors for prod, has 0" err
'

test_expect_success 'two approvals from one actor count once' '
	CAIRN_ACTOR=alice cairn approve prod --workflow app --release 1.1.0 &&
	CAIRN_ACTOR=alice cairn approve prod --workflow app --release 1.1.0 --comment again &&
	refused --to prod &&
	test_grep "has 1 (alice)" err
'

test_expect_success 'an approver not in approvers does not count' '
	CAIRN_ACTOR=dave cairn approve prod --workflow app --release 1.1.0 &&
	refused --to prod &&
	test_grep "not counted, not approvers (alice, bob, carol): dave" err &&
	test_path_is_missing out-prod
'

test_expect_success 'every refusal is journaled and history lists it' '
	cairn history --status refused >h &&
	test "$(grep -c refused h)" = 5 &&
	q "SELECT payload FROM events WHERE kind = \"promotion.refused\"" >p &&
	test_grep "\"gate\":\"approvals\"" p &&
	test_grep "\"gate\":\"after\"" p &&
	cairn verify
'

test_expect_success 'prod is accepted after enough approvals (comment journaled)' '
	CAIRN_ACTOR=bob cairn approve prod --workflow app --release 1.1.0 --comment lgtm &&
	q "SELECT payload FROM events WHERE kind = \"approval.granted\"" >a &&
	test_grep "\"comment\":\"lgtm\"" a &&
	cairn promote app.yaml --to prod &&
	test "$(cat out-prod)" = 1.1.0
'

test_expect_success '--through stops at the first refusal' '
	rm -f out-* &&
	test_must_fail_with 5 cairn promote app.yaml --through prod --release 2.0.0 2>err &&
	test "$(cat out-dev)" = 2.0.0 &&
	test "$(cat out-staging)" = 2.0.0 &&
	test_path_is_missing out-prod &&
	test_grep "promotion to prod refused" err &&
	test "$(q "SELECT parent FROM runs WHERE env = \"staging\" ORDER BY created_ms DESC LIMIT 1")" = \
	     "$(q "SELECT id FROM runs WHERE env = \"dev\" AND status = \"succeeded\" ORDER BY created_ms DESC LIMIT 1")"
'

test_expect_success 'bad usage of promote and approve exits 2 and journals nothing' '
	journal_snapshot >before &&
	test_must_fail_with 2 cairn promote app.yaml 2>e1 &&
	test_must_fail_with 2 cairn promote app.yaml --to nowhere 2>e2 &&
	test_grep "has no environment .nowhere." e2 &&
	test_must_fail_with 2 cairn approve prod --workflow app 2>e3 &&
	test_grep "needs both --workflow and --release" e3 &&
	test_must_fail_with 2 cairn approve "$(last_run)" 2>e4 &&
	test_grep "is not waiting for an approval" e4 &&
	journal_snapshot >after &&
	test_cmp before after
'

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
start: build
states:
  build:
    do: exec
    with: { argv: [touch, built] }
    next: gate
  gate:
    approval: { approvals: 2, approvers: [alice, bob] }
    next: ship
  ship:
    do: exec
    with: { argv: [touch, shipped] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'an approval state waits (exit 3), approve, resume goes on' '
	test_must_fail_with 3 cairn run gated.yaml >out &&
	run=$(last_run) &&
	test_grep "run $run waits for 2 more approvals at state .gate. (approvers: alice, bob): cairn approve $run" out &&
	test "$(q "SELECT status FROM runs WHERE id = \"$run\"")" = waiting &&
	test "$(q "SELECT count(*) FROM locks")" = 0 &&
	test_path_is_missing shipped &&
	CAIRN_ACTOR=alice cairn approve "$run" &&
	test_must_fail_with 3 cairn resume "$run" >out2 &&
	test_grep "waits for 1 more approval at state" out2 &&
	test_path_is_missing shipped &&
	CAIRN_ACTOR=bob cairn approve "$run" --comment ok &&
	cairn resume "$run" &&
	test_path_is_file shipped &&
	test "$(q "SELECT status FROM runs WHERE id = \"$run\"")" = succeeded
'

test_expect_success 'simulate and plan pass an approval and say so; graph draws it' '
	cairn simulate gated.yaml >sim &&
	test_grep "approval (simulated: passes)" sim &&
	cairn graph gated.yaml >g.dot &&
	test_grep "shape=house" g.dot
'

test_expect_success 'the loader checks approvers and approval states' '
	write_workflow bad1.yaml <<-\EOF &&
	cairn: 1
	name: b
	environments:
	  dev: { approvers: [] }
	start: done
	states:
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad1.yaml 2>e &&
	test_grep "bad1.yaml:4:21: error: .approvers. in environment .dev. must be a non-empty list" e &&
	write_workflow bad2.yaml <<-\EOF &&
	cairn: 1
	name: b
	start: g
	states:
	  g: { approval: { approvals: 3, approvers: [a, b] }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad2.yaml 2>e &&
	test_grep "bad2.yaml:5:31: error: .approval. of state .g. needs 3 approvals but lists only 2 approvers" e &&
	write_workflow bad3.yaml <<-\EOF &&
	cairn: 1
	name: b
	environments:
	  dev: { after: prod }
	  prod: { after: dev }
	start: done
	states:
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad3.yaml 2>e &&
	test_grep "bad3.yaml:4:17: error: environment .dev. comes after itself" e
'

# Each wall-clock read 1 ms after the last (tests/helpers/clock_step.c), so
# that two reads in one command never fall in the same millisecond.
: "${CAIRN_CLOCK_STEP:=$CAIRN_SRCDIR/build/tests/clock_step.so}"
# An ASan build wants its runtime first among the libraries; the shim
# only wraps clock_gettime, so its place does not matter here.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

test_expect_success 'approval and refusal records take no time (finished = created)' '
	test_path_is_file "$CAIRN_CLOCK_STEP" &&
	LD_PRELOAD=$CAIRN_CLOCK_STEP CAIRN_ACTOR=erin \
		cairn approve prod --workflow app --release 9.9.9 &&
	LD_PRELOAD=$CAIRN_CLOCK_STEP \
		test_must_fail_with 5 cairn promote app.yaml --to staging --release 9.9.9 &&
	q "SELECT status, finished_ms - created_ms FROM runs WHERE release = \"9.9.9\" ORDER BY created_ms" >took &&
	printf "approved|0\nrefused|0\n" >expect &&
	test_cmp expect took
'

test_expect_success 'report draws the newest run, not a newer record, and counts them apart' '
	CAIRN_ACTOR=erin cairn approve prod --workflow app --release 9.9.10 &&
	run=$(q "SELECT id FROM runs WHERE status NOT IN (\"approved\",\"refused\") ORDER BY created_ms DESC, id DESC LIMIT 1") &&
	nrec=$(q "SELECT count(*) FROM runs WHERE status IN (\"approved\",\"refused\")") &&
	cairn report -o r.html &&
	test_grep "^<h2>Run $run</h2>$" r.html &&
	test_grep "<tr class=\"chosen\"><td class=\"id\"><a href=\"#run\">$run<" r.html &&
	test_grep " · $(runs) runs and $nrec promotion records (approvals, refusals) · " r.html
'

test_done
