#!/bin/bash
# t0052-integrity: the commands that act on the journal (resume, rollback,
# the gates of promote) trust a run or an approval record only when its
# events authenticate (hashes, links, the HMAC of a keyed journal), as
# cairn verify would; and what a gate says about what it relied on.
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
    undo: { do: exec, with: { argv: [rm, -f, "out-{{ vars.name }}"] } }
    next: validate
  validate:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

# dump: the journal, to prove a refused command wrote nothing.
dump() { sqlite3 .cairn/journal.db .dump; }
Z1=$(printf %064d 1)
Z2=$(printf %064d 2)
# forge_run ID ENV RELEASE: a succeeded run inserted with junk hashes, as
# anyone who may write the file (and has no key) can; its row and events
# agree, so only the hashes tell.
forge_run() {
	local n h
	n=$(q "SELECT max(seq) FROM events") &&
	h=$(q "SELECT hash FROM events WHERE seq = $n") &&
	q "INSERT INTO runs VALUES('$1','app','/x','00','$2','$3','{}','succeeded','mallory','',1,1,1);
	   INSERT INTO events VALUES($((n + 1)),'$1','run.started','',0,1,'{\"actor\":\"mallory\",\"env\":\"$2\",\"file\":\"/x\",\"file_sha256\":\"00\",\"params\":{},\"release\":\"$3\",\"workflow\":\"app\"}','$h','$Z1');
	   INSERT INTO events VALUES($((n + 2)),'$1','run.finished','',0,1,'{\"status\":\"succeeded\"}','$Z1','$Z2');"
}
# forge_approval ID ACTOR RELEASE: an approval record for prod, junk hashes.
forge_approval() {
	local n
	n=$(q "SELECT max(seq) FROM events") &&
	q "INSERT INTO runs VALUES('$1','app','','','prod','$3','{}','approved','$2','',1,1,1);
	   INSERT INTO events VALUES($((n + 1)),'$1','approval.granted','',0,1,'{\"actor\":\"$2\",\"workflow\":\"app\",\"env\":\"prod\",\"release\":\"$3\"}','$Z1','$Z2');"
}

# Each test body runs in its own subshell: the key is exported in each.
test_expect_success 'keyed: a forged succeeded run does not open the after gate' '
	head -c 32 /dev/urandom >key && chmod 600 key &&
	export CAIRN_KEY_FILE=$PWD/key &&
	cairn run app.yaml --env dev --set release=1.0.0 >/dev/null &&
	forge_run 01FORGEDFORGEDFORGEDFORGED dev 9.9.9 &&
	bad=$(q "SELECT min(seq) FROM events WHERE run_id = '\''01FORGEDFORGEDFORGEDFORGED'\''") &&
	dump >before &&
	test_must_fail_with 1 cairn promote app.yaml --to staging --release 9.9.9 >out 2>err &&
	echo "cairn: the after gate of staging relies on a run in dev: run 01FORGEDFORGEDFORGEDFORGED does not check out at event $bad: hash does not match the event'\''s contents (the event was edited) (hint: '\''cairn verify'\'' checks the whole journal)" >expect &&
	test_cmp expect err &&
	test_cmp /dev/null out &&
	test_path_is_missing out-staging &&
	dump >after &&
	test_cmp before after
'

test_expect_success 'keyed: forged approval records do not count, and the gate says so' '
	rm -rf .cairn out-* &&
	export CAIRN_KEY_FILE=$PWD/key &&
	cairn run app.yaml --env dev --set release=9.9.9 >/dev/null &&
	cairn promote app.yaml --to staging --release 9.9.9 >/dev/null &&
	forge_approval 01FORGEDAPPROVALALICEXXXXX alice 9.9.9 &&
	a=$(q "SELECT max(seq) FROM events") &&
	forge_approval 01FORGEDAPPROVALBOBXXXXXXX bob 9.9.9 &&
	b=$(q "SELECT max(seq) FROM events") &&
	test_must_fail_with 5 cairn promote app.yaml --to prod --release 9.9.9 >out 2>err &&
	test_grep "^cairn: promotion to prod refused: release 9.9.9 needs 2 approvals from distinct actors for prod, has 0; not counted, approval records whose events do not check out (hint: run '\''cairn verify'\''): 01FORGEDAPPROVALALICEXXXXX (event $a), 01FORGEDAPPROVALBOBXXXXXXX (event $b) (hint: cairn approve prod" err &&
	test_path_is_missing out-prod
'

test_expect_success 'keyed: real approvals beside forged ones pass, and promote says what it left out' '
	export CAIRN_KEY_FILE=$PWD/key &&
	test "$(q "SELECT count(*) FROM meta")" = 1 &&
	CAIRN_ACTOR=alice cairn approve prod --workflow app --release 9.9.9 >/dev/null &&
	CAIRN_ACTOR=carol cairn approve prod --workflow app --release 9.9.9 >/dev/null &&
	cairn promote app.yaml --to prod --release 9.9.9 >out &&
	test_grep "^note: not counted, approval records whose events do not check out (hint: run '\''cairn verify'\''): 01FORGEDAPPROVALALICEXXXXX" out &&
	test_grep "^promoting release 9.9.9 to prod" out &&
	test_path_is_file out-prod
'

test_expect_success 'plain: a forged approval record with a broken link does not count either' '
	unset CAIRN_KEY_FILE &&
	mkdir plain && cd plain && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../app.yaml . &&
	cairn run app.yaml --env dev --set release=2.0.0 >/dev/null &&
	cairn promote app.yaml --to staging >/dev/null &&
	forge_approval 01FORGEDAPPROVALALICEXXXXX alice 2.0.0 &&
	CAIRN_ACTOR=bob cairn approve prod --workflow app --release 2.0.0 >/dev/null &&
	test_must_fail_with 5 cairn promote app.yaml --to prod >out 2>err &&
	test_grep "has 1 (bob); not counted, approval records whose events do not check out" err
'

write_workflow w.yaml <<\EOF
cairn: 1
name: w
params:
  target: { default: "mine.txt" }
start: make
states:
  make:
    do: exec
    with: { argv: [touch, "{{ params.target }}"] }
    undo: { do: exec, with: { argv: [rm, -f, "{{ params.target }}"] } }
    next: done
  done: { succeed: true }
EOF

for K in keyed plain; do
	test_expect_success "$K: rollback refuses a run whose run.started was edited" '
		rm -rf .cairn && touch precious.txt &&
		if [ $K = keyed ]; then export CAIRN_KEY_FILE=$PWD/key; else unset CAIRN_KEY_FILE; fi &&
		cairn run w.yaml >/dev/null &&
		run=$(last_run) &&
		q "DROP TRIGGER events_no_update;
		   UPDATE events SET payload = replace(payload, '\''\"target\":\"mine.txt\"'\'', '\''\"target\":\"precious.txt\"'\'') WHERE seq = 1;
		   UPDATE runs SET params = '\''{\"target\":\"precious.txt\"}'\''" &&
		dump >before &&
		test_must_fail_with 1 cairn rollback $run --dry-run >out 2>err &&
		test_grep "^cairn: run $run does not check out at event 1: hash does not match the event'\''s contents (the event was edited) (hint: '\''cairn verify'\'' checks the whole journal)$" err &&
		test_grep ! precious out &&
		test_must_fail_with 1 cairn rollback $run >out 2>err &&
		test_grep "^cairn: run $run does not check out at event 1: " err &&
		test $(wc -l <err) = 1 &&
		test_path_is_file precious.txt &&
		test_path_is_file mine.txt &&
		dump >after &&
		test_cmp before after
	'
done

write_workflow gated.yaml <<\EOF
cairn: 1
name: gated
start: gate
states:
  gate:
    approval: { approvals: 1 }
    next: ship
  ship:
    do: exec
    with: { argv: [sh, -c, "echo shipped >> shipped"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'keyed: resume refuses a run with an edited event, and runs nothing' '
	rm -rf .cairn shipped &&
	export CAIRN_KEY_FILE=$PWD/key &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	run=$(last_run) &&
	CAIRN_ACTOR=alice cairn approve $run >/dev/null &&
	seq=$(q "SELECT seq FROM events WHERE kind = '\''approval.waiting'\''") &&
	q "DROP TRIGGER events_no_update; UPDATE events SET time_ms = time_ms + 1 WHERE seq = $seq" &&
	test_must_fail_with 1 cairn resume $run >out 2>err &&
	test_grep "^cairn: run $run does not check out at event $seq: hash does not match" err &&
	test_path_is_missing shipped
'

test_expect_success 'keyed: resume refuses a run whose event was moved (a broken link)' '
	rm -rf .cairn shipped &&
	export CAIRN_KEY_FILE=$PWD/key &&
	test_must_fail_with 3 cairn run gated.yaml >/dev/null &&
	run=$(last_run) &&
	seq=$(q "SELECT max(seq) FROM events") &&
	q "DROP TRIGGER events_no_update; UPDATE events SET prev_hash = '\''$Z1'\'' WHERE seq = $seq" &&
	test "$(q "SELECT count(*) FROM meta")" = 1 &&
	test_must_fail_with 1 cairn resume $run >out 2>err &&
	test_grep "^cairn: run $run does not check out at event $seq: its prev_hash is not the hash of event $((seq - 1))" err &&
	test_path_is_missing shipped
'

test_expect_success 'a keyed journal without its key: resume says to pass it' '
	unset CAIRN_KEY_FILE &&
	test_must_fail_with 2 cairn resume $(last_run) >out 2>err &&
	test_grep "is keyed (key id [0-9a-f]*): pass its key" err
'

test_expect_success 'a damaged newest event: promote fails before saying it promotes, with a hint' '
	unset CAIRN_KEY_FILE &&
	mkdir tail && cd tail && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../app.yaml . &&
	cairn run app.yaml --env dev --set release=1.0.0 >/dev/null &&
	CAIRN_ACTOR=alice cairn approve prod --workflow app --release 1.0.0 >/dev/null &&
	n=$(q "SELECT max(seq) FROM events") &&
	q "DROP TRIGGER events_no_update; UPDATE events SET hash = '\''zz'\'' WHERE seq = $n" &&
	test_must_fail_with 1 cairn promote app.yaml --to staging --release 1.0.0 >out 2>err &&
	test_cmp /dev/null out &&
	test_grep "^cairn: journal '\''[^'\'']*'\'' does not check out at its newest event $n: hash does not match the event'\''s contents (the event was edited) (hint: '\''cairn verify'\'' says what is wrong)$" err &&
	test_must_fail_with 1 cairn run app.yaml --env dev >out 2>err &&
	test_grep "^cairn: journal '\''[^'\'']*'\'' has a malformed hash at event $n: nothing can be chained after it (hint: '\''cairn verify'\'' says what is wrong)$" err &&
	test_path_is_missing out-staging
'

test_expect_success 'the after run of another file with the same name: promote says so' '
	mkdir other && cd other && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../app.yaml . &&
	cat >fake.yaml <<-\EOF &&
	cairn: 1
	name: app
	params:
	  release: { default: "1.0.0" }
	environments:
	  dev: {}
	start: done
	states:
	  done: { succeed: true }
	EOF
	cairn run fake.yaml --env dev --set release=6.6.6 >/dev/null &&
	fake=$(last_run) &&
	cairn promote app.yaml --to staging --release 6.6.6 >out &&
	sha=$(sha256sum fake.yaml | cut -c1-12) &&
	test_grep "^note: run $fake in dev ran another workflow file ($PWD/fake.yaml, sha256 $sha), not $PWD/app.yaml (sha256 [0-9a-f]\{12\})$" out &&
	test_grep "^promoting release 6.6.6 to staging from run $fake" out &&
	cairn promote --json app.yaml --to staging --release 6.6.6 >out.json &&
	test "$(jq -r "select(.kind == \"note\") | .env" out.json)" = staging &&
	cairn run app.yaml --env dev --set release=6.6.6 >/dev/null &&
	cairn promote app.yaml --to staging --release 6.6.6 >out2 &&
	test_grep ! "^note:" out2
'

write_workflow loop.yaml <<\EOF
cairn: 1
name: loop
params:
  release: { default: "1.0.0" }
start: build
states:
  build:
    do: exec
    with: { argv: [sh, -c, "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n"] }
    next: gate
  gate:
    approval: { approvals: 1 }
    next: ship
  ship:
    do: exec
    with: { argv: [sh, -c, "echo shipped build $(cat n) >> shipped"] }
    next: check
  check:
    do: exec
    with: { argv: [sh, -c, "test $(cat n) -ge 2"] }
    next: done
    on_failure: build
  done: { succeed: true }
EOF

test_expect_success 'an approval state entered again in a loop needs a new approval' '
	mkdir loop && cd loop && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../loop.yaml . &&
	test_must_fail_with 3 cairn run loop.yaml >/dev/null &&
	run=$(last_run) &&
	CAIRN_ACTOR=alice cairn approve $run >/dev/null &&
	test_must_fail_with 3 cairn resume $run >out &&
	echo "shipped build 1" >expect &&
	test_cmp expect shipped &&
	test_grep "waits for 1 more approval at state '\''gate'\''" out &&
	CAIRN_ACTOR=alice cairn approve $run >/dev/null &&
	cairn resume $run >/dev/null &&
	printf "shipped build 1\nshipped build 2\n" >expect &&
	test_cmp expect shipped
'

test_expect_success 'an approval under CAIRN_ACTOR journals the account that typed it' '
	mkdir who && cd who && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../app.yaml . &&
	cairn run app.yaml --env dev >/dev/null &&
	me="$(id -un)@$(hostname)" &&
	CAIRN_ACTOR=alice cairn approve prod --workflow app --release 1.0.0 >/dev/null &&
	q "SELECT payload FROM events WHERE kind = '\''approval.granted'\''" >p &&
	test "$(jq -r .actor p)" = alice &&
	test "$(jq -r .user p)" = "$me" &&
	cairn approve prod --workflow app --release 1.0.0 >/dev/null &&
	q "SELECT payload FROM events WHERE kind = '\''approval.granted'\'' ORDER BY seq DESC LIMIT 1" >p &&
	test "$(jq -r .actor p)" = "$me" &&
	test "$(jq -r .user p)" = null
'

test_expect_success 'report says when the journal fails verification' '
	mkdir rep && cd rep && export CAIRN_JOURNAL=$PWD/.cairn/journal.db &&
	cp ../app.yaml . &&
	cairn run app.yaml --env dev >/dev/null &&
	cairn report -o ok.html 2>err &&
	test_cmp /dev/null err &&
	test_grep ! "class=\"untrusted\"" ok.html &&
	q "UPDATE runs SET actor = '\''bob@elsewhere'\''" &&
	cairn report -o bad.html 2>err &&
	test_grep "<p class=\"untrusted\">journal fails verification: journal .* is broken at event 1: run [0-9A-Z]*&#39;s row says actor &#39;bob@elsewhere&#39; but its event 1 says" bad.html &&
	test_grep "^cairn: warning: journal fails verification: " err
'

test_done
