#!/bin/bash
# t0023-audit: what the journal answers about deploys (show --json,
# history filters, status per environment) and how runs share it
# (locks, readers while a run writes).
. "$(dirname "$0")/lib.sh"

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  release: { default: "1.0.0" }
  fail: { default: "no" }
  note: { default: "" }
  hold: { default: "0" }
secrets: [TOKEN]
environments:
  dev: { vars: { name: dev } }
  staging: { vars: { name: staging }, after: dev }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "sleep {{ params.hold }}; echo {{ params.release }} | tee live-{{ vars.name }}"] }
    undo: { do: exec, with: { argv: [rm, -f, "live-{{ vars.name }}"] } }
    next: validate
  validate:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

test_must_be_empty_file() {
	if [ -s "$1" ]; then echo "$1 is not empty:"; cat "$1"; return 1; fi
}

# live ENV: the release status says is live in ENV.
live() { cairn status --json | jq -r --arg e "$1" 'select(.env == $e) | .live.release // "none"'; }

test_expect_success 'show --json: actor, file hash, params with a secret redacted, parent' '
	TOKEN=s3cr3tvalue CAIRN_ACTOR=alice cairn run app.yaml --env dev --set release=1.0.0 --set note=s3cr3tvalue &&
	dev=$(last_run) &&
	cairn promote app.yaml --to staging &&
	st=$(last_run) &&
	cairn show "$st" --json >s.json &&
	jq -e --arg d "$dev" ".run.parent == \$d" s.json &&
	cairn show "$dev" --json >d.json &&
	jq -e ".run.actor == \"alice\" and .run.params.note == \"***\"" d.json &&
	jq -e --arg h "$(sha256sum app.yaml | cut -d" " -f1)" ".run.file_sha256 == \$h" d.json &&
	test_grep ! s3cr3tvalue .cairn/journal.db &&
	cairn show "$st" >s.txt &&
	test_grep "^parent    $dev" s.txt &&
	cairn show "$st" --logs >l.txt &&
	test_grep "| --- action attempt 1 ---" l.txt &&
	test_grep "| 1.0.0$" l.txt &&
	rm .cairn/runs/$st/deploy.log &&
	cairn show "$st" --logs >l.txt &&
	test_grep "| 1.0.0$" l.txt &&
	test_grep ! "action attempt" l.txt
'

test_expect_success 'status shows what is live after a deploy' '
	test "$(live dev)" = 1.0.0 &&
	test "$(live staging)" = 1.0.0 &&
	dev=$(q "SELECT id FROM runs WHERE env = \"dev\" AND status = \"succeeded\"") &&
	cairn status >st &&
	test_grep "^app  *dev  *1.0.0  *$dev" st
'

test_expect_success 'a failed deploy that rolled back leaves the old release live' '
	test_must_fail_with 1 cairn run app.yaml --env dev --set release=2.0.0 --set fail=yes &&
	test "$(live dev)" = 1.0.0
'

test_expect_success 'after cairn rollback the previous release is live again' '
	cairn run app.yaml --env dev --set release=3.0.0 &&
	r3=$(last_run) &&
	test "$(live dev)" = 3.0.0 &&
	cairn rollback "$r3" &&
	test "$(live dev)" = 1.0.0
'

test_expect_success 'history filters: env, workflow, release, status, since, limit' '
	cairn history --env staging --json >h1 && test "$(wc -l <h1)" = 1 &&
	cairn history --release 3.0.0 --json >h2 && test "$(jq -r .status h2)" = rolled_back &&
	cairn history --status failed --json >h3 && test "$(jq -r .release h3)" = 2.0.0 &&
	cairn history --workflow nope >h4 && test_grep "no runs" h4 &&
	cairn history --since 2000-01-01 --limit 2 --json >h5 && test "$(wc -l <h5)" = 2 &&
	cairn history --since 2999-01-01 >h6 && test_grep "no runs" h6 &&
	test_must_fail_with 2 cairn history --since yesterday 2>e &&
	test_grep "cairn: --since: .yesterday. is not a date" e
'

test_expect_success 'two runs on one workflow and env: one runs, the other exits 4 naming it' '
	(cairn run app.yaml --env dev --set hold=3 >first 2>&1; echo $? >first.rc) &
	for i in $(seq 50); do
		test "$(q "SELECT count(*) FROM locks")" = 1 && break; sleep 0.1
	done &&
	holder=$(q "SELECT run_id FROM locks") &&
	test_must_fail_with 4 cairn run app.yaml --env dev 2>second &&
	test_grep "locked by run $holder" second &&
	cairn promote app.yaml --to staging --release 1.0.0 &&
	wait &&
	test "$(cat first.rc)" = 0
'

test_expect_success 'status and history never fail or block while a run writes' '
	(cairn run app.yaml --env dev --set hold=2 >/dev/null 2>&1; echo $? >w.rc) &
	for i in $(seq 20); do
		timeout 5 "$CAIRN_BIN" status >>s.out 2>>s.err ||
			echo "status exited $?" >>exits
		timeout 5 "$CAIRN_BIN" history --limit 5 >>h.out 2>>h.err ||
			echo "history exited $?" >>exits
		sleep 0.1
	done &&
	wait &&
	test "$(cat w.rc)" = 0 &&
	test_must_be_empty_file exits &&
	test_must_be_empty_file s.err && test_must_be_empty_file h.err &&
	test_grep "IN PROGRESS" s.out
'

# The journal holds JSON, which holds only UTF-8: an actor that is not
# is kept with '?' for each bad byte (never an empty event), one too long
# is cut at a character; a workflow path or an approval that is not UTF-8
# is refused, with nothing journaled.
write_workflow utf.yaml <<\EOF
cairn: 1
name: utf
environments:
  dev: {}
  prod: { approvals: 1 }
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'an actor that is not UTF-8 is journaled with ? for its bad bytes' '
	CAIRN_ACTOR=$(printf "bob\377") cairn run utf.yaml --env dev >out &&
	cairn show "$(last_run)" --json >s.json &&
	jq -e ".run.actor == \"bob?\" and (.events[0].payload.workflow == \"utf\")" s.json &&
	long=$(printf "x%.0s" $(seq 1 298))é &&
	CAIRN_ACTOR=$long cairn run utf.yaml --env dev >out &&
	cairn show "$(last_run)" --json >s.json &&
	jq -e ".events[0].payload.actor | length == 298" s.json &&
	cairn verify >out
'

test_expect_success 'a workflow path or an approval that is not UTF-8: exit 2, nothing journaled' '
	q "SELECT count(*) FROM events" >before &&
	cp utf.yaml "$(printf "w\377.yaml")" &&
	test_must_fail_with 2 cairn run "$(printf "w\377.yaml")" --env dev 2>err &&
	test_grep "its path is not UTF-8 text" err &&
	test_must_fail_with 2 cairn approve prod --workflow utf --release "$(printf "1\377")" 2>err &&
	test_grep "approve: --release is not UTF-8 text" err &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after
'

test_expect_success 'approve shows a release or actor with control characters as \xHH, journals them as given' '
	CAIRN_ACTOR=$(printf "eve\033[2J") cairn approve prod --workflow utf --release "$(printf "2\033]0;T\007")" >out &&
	! grep -q "$(printf "[\001-\037]")" out &&
	test_grep "^approved release 2\\\\x1b\]0;T\\\\x07 of utf for prod by eve\\\\x1b\[2J (" out &&
	q "SELECT payload FROM events ORDER BY seq DESC LIMIT 1" >p.json &&
	jq -e ".release == \"2\u001b]0;T\u0007\" and (.actor | startswith(\"eve\u001b[2J\"))" p.json
'

test_done
