#!/bin/bash
# shellcheck disable=SC2016 # the bodies are single-quoted: lib.sh evals them
# t0042-cli-checks: input the commands must refuse (exit 2, one line),
# terminal output that must not carry control characters, and help texts
# that must say what the commands take.
. "$(dirname "$0")/lib.sh"

write_workflow one.yaml <<\EOF
cairn: 1
name: one
params:
  release: { default: "1.0" }
start: hello
states:
  hello:
    do: exec
    with: { argv: [/bin/true] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: one succeeded run' '
	cairn run one.yaml >/dev/null
'

# ---- verify --write-anchor ---------------------------------------------------

test_expect_success 'verify --write-anchor to a missing folder: exit 2, one line naming it' '
	test_must_fail_with 2 cairn verify --write-anchor nowhere/a.json >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: anchor: cannot write '\''nowhere/a.json'\'': No such file or directory (hint: does its folder exist?)" >expect &&
	test_cmp expect err &&
	test_path_is_missing nowhere
'

test_expect_success 'verify --json --write-anchor to a missing folder: exit 2 too' '
	test_must_fail_with 2 cairn verify --json --write-anchor nowhere/a.json >out 2>err &&
	test_cmp /dev/null out &&
	test "$(wc -l <err)" -eq 1 &&
	test_grep "nowhere/a.json" err
'

test_expect_success 'verify --write-anchor to a good path still writes it (exit 0)' '
	cairn verify --write-anchor a.json >out &&
	test_path_is_file a.json &&
	cairn verify --anchor a.json >out &&
	test_grep "anchor ok" out
'

# ---- history --status ----------------------------------------------------------

test_expect_success 'history --status with an unknown status: exit 2, naming the valid ones' '
	test_must_fail_with 2 cairn history --status bogus >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: --status: unknown status '\''bogus'\'' (hint: one of succeeded, failed, interrupted, running, waiting, rolled_back, rollback_failed, refused, approved)" >expect &&
	test_cmp expect err
'

test_expect_success 'history --status takes every status the journal uses' '
	for s in succeeded failed interrupted running waiting rolled_back \
		rollback_failed refused approved; do
		cairn history --status "$s" >out || exit 1
	done &&
	cairn history --status succeeded >out &&
	test_grep "^[0-9A-Z]\{26\}  one " out
'

test_expect_success 'history --help lists rollback_failed' '
	cairn history --help >out &&
	test_grep "rollback_failed" out
'

test_done
