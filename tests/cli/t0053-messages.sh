#!/bin/bash
# shellcheck disable=SC2016 # the bodies are single-quoted: lib.sh evals them
# t0053-messages: option parsing (--json result line on a bad option, no
# abbreviations) and error messages that say what to do (review 21).
. "$(dirname "$0")/lib.sh"

write_workflow one.yaml <<\EOF2
cairn: 1
name: one
start: hello
states:
  hello:
    do: exec
    with: { argv: [/bin/true] }
    next: done
  done: { succeed: true }
EOF2

# ---- options ------------------------------------------------------------------

test_expect_success 'run --json with an unknown option still ends with a result line' '
	test_must_fail_with 2 cairn run one.yaml --json --bogus >out 2>err &&
	echo "cairn: unknown option --bogus (hint: see cairn run --help)" >expect &&
	tr -d "\047" <err >err.plain &&
	test_cmp expect err.plain &&
	test "$(wc -l <out)" -eq 1 &&
	test_grep "^{\"exit_code\":2,\"kind\":\"result\",\"message\":\"unknown option .--bogus. (hint: see .cairn run --help.)\",\"status\":\"error\"}$" out &&
	test_path_is_missing .cairn
'

test_expect_success 'the result line comes when --json follows the bad option too' '
	test_must_fail_with 2 cairn resume --bogus --json >out 2>err &&
	test_grep "\"kind\":\"result\"" out &&
	test_must_fail_with 2 cairn rollback RUN --grace >out 2>err &&
	test_cmp /dev/null out &&
	test_must_fail_with 2 cairn rollback RUN --json --grace >out 2>err &&
	test_grep "\"message\":\"missing value for .--grace." out
'

test_expect_success 'a command without a result line prints nothing on stdout' '
	test_must_fail_with 2 cairn history --json --bogus >out 2>err &&
	test_cmp /dev/null out &&
	test_grep "unknown option" err
'

test_expect_success 'long options are not abbreviated' '
	test_must_fail_with 2 cairn history --lim 1 >out 2>err &&
	echo "cairn: unknown option --lim (hint: write it in full: --limit)" >expect &&
	tr -d "\047" <err >err.plain &&
	test_cmp expect err.plain &&
	test_must_fail_with 2 cairn history --lim=1 2>err &&
	tr -d "\047" <err >err.plain &&
	test_cmp expect err.plain &&
	test_must_fail_with 2 cairn rollback RUN --dry 2>err &&
	test_grep "write it in full: .--dry-run." err &&
	test_must_fail_with 2 cairn validate one.yaml --js 2>err &&
	test_grep "write it in full: .--json." err
'

test_expect_success 'full spellings still work, with = or a separate value' '
	cairn run one.yaml >/dev/null &&
	cairn history --limit 1 --status succeeded >out &&
	test_grep one out &&
	cairn history --limit=1 --status=succeeded >out &&
	test_grep one out
'

# ---- the live lines --------------------------------------------------------

test_expect_success 'a timed-out step: its outcome word, the duration once in brackets' '
	write_workflow slow.yaml <<-\EOF &&
	cairn: 1
	name: slow
	start: b
	states:
	  b: { do: exec, with: { argv: [sleep, "5"] }, timeout: 300ms, next: d }
	  d: { succeed: true }
	EOF
	test_must_fail_with 1 cairn run slow.yaml >out &&
	test_grep -E "^✗ b timed_out: timed out after 300ms \([0-9]+ms\)$" out
'

test_done
