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

test_expect_success 'an error about a long option names it as typed, never a letter' '
	test_must_fail_with 2 cairn run one.yaml --journal 2>err &&
	test_grep "^cairn: missing value for .--journal. " err &&
	test_must_fail_with 2 cairn status --key-file 2>err &&
	test_grep "^cairn: missing value for .--key-file. " err &&
	test_must_fail_with 2 cairn status --json=1 2>err &&
	test_grep "^cairn: option .--json. takes no value " err &&
	test_must_fail_with 2 cairn status --bogus=3 2>err &&
	test_grep "^cairn: unknown option .--bogus=3. " err
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

# ---- validate: errors that say what to do ------------------------------------

# w NAME STATE-YAML: a workflow of one state 'a' (given whole, 4 spaces in)
# that goes on to 'd'.
w() {
	{
		printf "cairn: 1\nname: t\nstart: a\nstates:\n  a:\n"
		cat
		printf "    next: d\n  d: { succeed: true }\n"
	} >"$1.yaml"
}

w url <<\EOF
    do: http.check
    with: { url: "file:///etc/passwd" }
EOF
w urltpl <<\EOF
    do: http.check
    with: { url: "ftp://{{ env.HOST }}/x" }
EOF
w urlbare <<\EOF
    do: http.check
    with: { url: "localhost:8080/health" }
EOF
w urlok <<\EOF
    do: http.check
    with: { url: "HTTPS://example.com/" }
EOF
w urlhost <<\EOF
    do: http.check
    with: { url: "{{ env.BASE }}/health" }
EOF
w regex <<\EOF
    do: http.check
    with: { url: "http://127.0.0.1:1/", expect: { json: { a: { regex: "(" } } } }
EOF
w idem <<\EOF
    do: exec
    with: { argv: ["true"] }
    idempotent: "yes"
EOF
w plus <<\EOF
    do: exec
    with: { argv: ["{{ 1 + }}"] }
EOF
w open <<\EOF
    do: exec
    with: { argv: ["{{ 1"] }
EOF
w conc <<\EOF
    map: { items: [x], max_concurrency: 0, do: exec, with: { argv: ["true"] } }
EOF
w self <<\EOF
    do: exec
    with: { argv: ["{{ self.output.x }}"] }
EOF
w selfready <<\EOF
    do: exec
    with: { argv: ["true"] }
    ready: { do: exec, with: { argv: [test, "{{ self.output.exit_code }}", "=", "0"] } }
EOF
w appr <<\EOF
    approval: { environment: prod }
    on_failure: fail
EOF
printf "cairn: 1\nname: t\nstart: a\nstates:\n  a: { succeed: false }\n" >succ.yaml
printf "cairn: 1\nname: t\nstart: a\nstates:\n  a: { succeed: true }\n" >single.yaml
printf "cairn: 1\nname: t\nstart: a\nx: %s\n" "$(printf "%0.s[" $(seq 200))" >nest.yaml

cat >expect.url <<\EOF
url.yaml:7:13: error: input 'url' must be an http:// or https:// URL in state 'a' (hint: write http://HOST[:PORT]/PATH or https://...)
EOF
sed "s/^url\.yaml/urltpl.yaml/" expect.url >expect.urltpl
sed "s/^url\.yaml/urlbare.yaml/" expect.url >expect.urlbare
cat >expect.regex <<\EOF
regex.yaml:7:41: error: input 'expect' has a bad regex in state 'a' (hint: json 'a': '(' is not a POSIX extended regex: Unmatched ( or \()
EOF
cat >expect.idem <<\EOF
idem.yaml:8:17: error: 'idempotent' in state 'a' must be a boolean, got a string (hint: write true or false, without quotes)
EOF
cat >expect.plus <<\EOF
plus.yaml:7:28: error: expected a value after '+' in state 'a' (hint: write a literal or a reference after it, or remove it)
EOF
cat >expect.open <<\EOF
open.yaml:7:21: error: unterminated '{{' in state 'a' (hint: end it with '}}')
EOF
cat >expect.conc <<\EOF
conc.yaml:6:41: error: 'max_concurrency' in state 'a' must be at least 1, got 0 (hint: 1 runs one instance at a time)
EOF
cat >expect.self <<\EOF
self.yaml:7:24: error: use of 'self' outside undo, probe and ready in state 'a' (hint: use states.NAME.output)
EOF
cat >expect.appr <<\EOF
appr.yaml:7:5: error: key 'on_failure' is not allowed in approval state 'a' (hint: approval states take description, approval, next)
EOF
cat >expect.succ <<\EOF
succ.yaml:5:17: error: 'succeed' in state 'a' must be true, got false (hint: write 'succeed: true', or 'fail: true' to end the run as failed)
EOF
cat >expect.single <<\EOF
single.yaml: ok (workflow 't', 1 state)
EOF

test_expect_success 'http.check refuses a URL that is not http or https at validate' '
	for f in url urltpl urlbare
	do
		test_must_fail_with 2 cairn validate $f.yaml 2>err &&
		test_cmp expect.$f err || exit 1
	done &&
	cairn validate urlok.yaml &&
	cairn validate urlhost.yaml
'

test_expect_success 'the URL is checked again once rendered' '
	BASE=localhost:1 test_must_fail_with 1 cairn run urlhost.yaml >out 2>err &&
	test_grep "cannot resolve the inputs of .a.: input .url. must be an http:// or https:// URL (hint: " out
'

test_expect_success 'validate errors say what to do, the state where it reads well' '
	for f in regex idem plus open conc self succ
	do
		test_must_fail_with 2 cairn validate $f.yaml 2>err &&
		test_cmp expect.$f err || exit 1
	done
'

test_expect_success 'a ready check may use self' '
	cairn validate selfready.yaml
'

test_expect_success 'too deep a nesting says what to do' '
	test_must_fail_with 2 cairn validate nest.yaml 2>err &&
	test_grep "^nest.yaml:4:131: error: nesting is deeper than 128 levels (hint: flatten the data, or keep it in a file the step reads)$" err
'

test_expect_success 'no "a approval state": the hint names the kind in the plural' '
	test_must_fail_with 2 cairn validate appr.yaml 2>err &&
	test_cmp expect.appr err
'

test_expect_success 'validate of one state says 1 state' '
	cairn validate single.yaml >out &&
	test_cmp expect.single out
'

test_expect_success 'plan of a workflow without an action prints no empty heading' '
	cairn plan single.yaml >out &&
	test_grep "^happy path: a → succeeded (exit 0)$" out &&
	test_grep ! "when an action fails" out
'

# One parser reads every duration (common/duration.c): a state's own key
# and an adapter's input say what is wrong the same way, with one hint,
# and a fraction rounds to the nearest millisecond in both.
write_workflow dur.yaml <<\EOF2
cairn: 1
name: dur
start: w
states:
  w:
    do: tcp.wait
    with: { port: 1, within: 1s }
    timeout: .5s
    next: done
  done: { succeed: true }
EOF2

test_expect_success 'a bad duration gets one hint, in a key and in an input alike' '
	test_must_fail_with 2 cairn validate dur.yaml 2>err &&
	echo "dur.yaml:8:14: error: invalid '\''timeout'\'' in state '\''w'\'': invalid duration '\''.5s'\'': it must start with a digit (hint: durations look like 250ms, 5s, 1m30s, 2h or 1d)" >expect &&
	test_cmp expect err &&
	sed "/timeout:/d; s/within: 1s/within: abc/" dur.yaml >dur2.yaml &&
	test_must_fail_with 2 cairn validate dur2.yaml 2>err &&
	echo "dur2.yaml:7:22: error: invalid input '\''within'\'': invalid duration '\''abc'\'': it must start with a digit in state '\''w'\'' (hint: durations look like 250ms, 5s, 1m30s, 2h or 1d)" >expect &&
	test_cmp expect err
'

test_expect_success 'an input rendered from a template rounds a fraction of a millisecond' '
	write_workflow round.yaml <<-\EOF2 &&
	cairn: 1
	name: round
	params:
	  d: { default: "5.0006s" }
	start: w
	states:
	  w:
	    do: exec
	    with: { argv: [/bin/true], timeout: "{{ params.d }}" }
	    next: done
	  done: { succeed: true }
	EOF2
	cairn run round.yaml --json >out 2>&1 &&
	q "SELECT json_extract(payload, \"$.inputs.timeout\") FROM events
	   WHERE kind = \"state.entered\" AND state = \"w\"" >got &&
	echo 5001 >expect &&
	test_cmp expect got
'

test_done
