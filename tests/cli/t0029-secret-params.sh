#!/bin/bash
# t0029-secret-params: a param declared `secret: true` is redacted
# everywhere (journal, its -wal, logs, terminal, show), even when it comes
# from --set; a resumed or rolled-back run gets it again from --set (the
# journal never kept it) and refuses to go on without it; a used
# workflow's secret param is a secret whatever value the parent gives it.
. "$(dirname "$0")/lib.sh"

TOKEN=tok-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
OTHER=oth-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  token: { secret: true, pattern: "^[a-z]+-[0-9a-f]+$" }
  region: { default: eu }
start: login
states:
  login:
    do: exec
    with: { argv: [sh, -c, 'echo "login with $1"; echo "$1" >used.txt', sh, "{{ params.token }}"] }
    undo: { do: exec, with: { argv: [sh, -c, 'echo "$1" >undone.txt', sh, "{{ params.token }}"] } }
    next: deploy
  deploy:
    do: exec
    with: { argv: [sh, -c, 'echo "$1" >>deployed.txt', sh, "{{ params.token }}"] }
    next: done
  done: { succeed: true }
EOF

# Nothing of the token anywhere a run writes or shows.
no_token() {
	sqlite3 .cairn/journal.db .dump >dump &&
	test_grep ! -F "$TOKEN" dump &&
	test_grep ! -a -F "$TOKEN" .cairn/journal.db &&
	if [ -e .cairn/journal.db-wal ]; then
		test_grep ! -a -F "$TOKEN" .cairn/journal.db-wal
	fi &&
	{ cat .cairn/runs/*/*.log 2>/dev/null || :; } >logs &&
	test_grep ! -F "$TOKEN" logs &&
	test_grep ! -F "$TOKEN" "$@"
}

test_expect_success 'a secret param from --set: used, and redacted in the journal, logs and output' '
	cairn run app.yaml --set token="$TOKEN" >out 2>&1 &&
	echo "$TOKEN" >expect &&
	test_cmp expect used.txt &&
	test_cmp expect deployed.txt &&
	test_grep "^login with \*\*\*$" .cairn/runs/$(last_run)/login.log &&
	cairn show "$(last_run)" --logs >show.txt &&
	cairn show "$(last_run)" --json >show.json &&
	jq -e ".run.params.token == \"***\" and .run.params.region == \"eu\"" show.json &&
	no_token out show.txt show.json
'

test_expect_success 'a value that does not match the pattern is refused without being shown' '
	test_must_fail_with 2 cairn run app.yaml --set token="NOT-$TOKEN" >out 2>&1 &&
	test_grep "param .token. must match" out &&
	test_grep "secret: not shown" out &&
	test_grep ! -F "$TOKEN" out
'

test_expect_success 'secret applies to strings only (file:line:col)' '
	write_workflow bad.yaml <<-\EOF &&
	cairn: 1
	name: bad
	params:
	  n: { type: integer, default: 1, secret: true }
	start: done
	states:
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad.yaml >out 2>&1 &&
	test_grep "^bad.yaml:4:43: error: .secret. in param .n. only applies to strings" out
'

test_expect_success 'resume after a kill: refused without the secret, then finishes with it' '
	rm -f used.txt deployed.txt &&
	st=0 &&
	CAIRN_TEST_KILL_AFTER_COMMIT=3 cairn run app.yaml --set token="$TOKEN" >out 2>&1 || st=$? &&
	test "$st" = 137 &&
	RUN=$(last_run) &&
	test_path_is_missing deployed.txt &&
	test_must_fail_with 2 cairn resume "$RUN" >out 2>&1 &&
	test_grep -F "run $RUN has the secret param '\''token'\'', which the journal does not keep (hint: give it again with --set token=VALUE)" out &&
	test_must_fail_with 2 cairn resume "$RUN" --set token="$TOKEN" --set region=us >out 2>&1 &&
	test_grep "only a secret param can be given to run $RUN again" out &&
	test_must_fail_with 2 cairn resume "$RUN" --set token="$TOKEN" --set tokn=x >out 2>&1 &&
	test_grep "^cairn: --set tokn: workflow .app. has no param .tokn. (hint: only a secret param is given again, by its name)$" out &&
	test_must_fail_with 2 cairn resume "$RUN" --set token >out 2>&1 &&
	test_grep "^cairn: --set token: expected NAME=VALUE$" out &&
	cairn resume "$RUN" --set token="$TOKEN" >out 2>&1 &&
	test "$(q "SELECT status FROM runs WHERE id = '\''$RUN'\''")" = succeeded &&
	echo "$TOKEN" >expect &&
	test_cmp expect deployed.txt &&
	no_token out
'

test_expect_success 'rollback on request renders the undo with the secret given again' '
	RUN=$(last_run) &&
	test_must_fail_with 2 cairn rollback "$RUN" >out 2>&1 &&
	test_grep "give it again with --set token=VALUE" out &&
	test_path_is_missing undone.txt &&
	cairn rollback "$RUN" --set token="$TOKEN" >out 2>&1 &&
	echo "$TOKEN" >expect &&
	test_cmp expect undone.txt &&
	no_token out
'

test_expect_success 'a used workflow: its secret param is redacted, whatever the parent passes' '
	mkdir -p lib &&
	write_workflow lib/login.yaml <<-\EOF &&
	cairn: 1
	name: login
	params:
	  key: { secret: true }
	start: use
	states:
	  use:
	    do: exec
	    with: { argv: [sh, -c, "echo \"key $1\"; echo \"$1\" >key.txt", sh, "{{ params.key }}"] }
	    next: done
	  done: { succeed: true }
	EOF
	write_workflow parent.yaml <<-EOF &&
	cairn: 1
	name: parent
	start: l
	states:
	  l: { use: lib/login.yaml, with: { key: "$OTHER" }, next: done }
	  done: { succeed: true }
	EOF
	cairn run parent.yaml >out 2>&1 &&
	echo "$OTHER" >expect &&
	test_cmp expect key.txt &&
	sqlite3 .cairn/journal.db .dump >dump &&
	test_grep ! -F "$OTHER" dump &&
	test_grep "^key \*\*\*$" .cairn/runs/$(last_run)/l.use.log &&
	test_grep ! -F "$OTHER" out
'

test_done
