#!/bin/bash
# t0001-basics: help, usage errors, version and validate; none of them
# needs or touches a journal.
. "$(dirname "$0")/lib.sh"

QUICKSTART=$CAIRN_SRCDIR/examples/quickstart/deploy.yaml

# Every command of cli/main.c with the usage line its cli_parse call gives.
cat >usage-lines <<\EOF
run|usage: cairn run FILE [--env NAME] [--set NAME=VALUE]... [--grace DURATION] [--json]
resume|usage: cairn resume [RUN] [--assume [PATH=]succeeded|failed]... [--allow-changed] [--allow-superseded] [--set NAME=VALUE]... [--grace DURATION] [--json]
status|usage: cairn status [RUN] [--json]
history|usage: cairn history [--workflow W] [--env E] [--release R] [--status S] [--since DATE|DURATION] [--limit N] [--json]
show|usage: cairn show RUN [--events] [--logs] [--json]
rollback|usage: cairn rollback RUN [--dry-run] [--allow-changed] [--allow-superseded] [--set NAME=VALUE]... [--grace DURATION] [--json]
validate|usage: cairn validate FILE [--json]
plan|usage: cairn plan FILE [--env NAME] [--set NAME=VALUE]... [--json]
simulate|usage: cairn simulate FILE [--env NAME] [--set NAME=VALUE]... [--fail-at STATE[:ATTEMPT]]... [--fail-undo STATE]... [--fail-ready STATE]... [--json]
graph|usage: cairn graph FILE [--format dot|mermaid]
verify|usage: cairn verify [--key-file FILE] [--anchor FILE] [--write-anchor FILE] [--json]
export|usage: cairn export [--since DATE|DURATION] [--format jsonl|csv] [-o FILE]
adapters|usage: cairn adapters [NAME] [--json]
promote|usage: cairn promote FILE (--to ENV | --through ENV) [--release R] [--set NAME=VALUE]... [--json]
approve|usage: cairn approve RUN [--comment TEXT] [--allow-changed] [--allow-superseded] [--json]
reject|usage: cairn reject RUN [--comment TEXT] [--allow-changed] [--allow-superseded] [--set NAME=VALUE]... [--grace DURATION] [--json]
version|usage: cairn version [--json]
EOF

test_expect_success 'cairn --help lists every command and exits 0' '
	cairn --help >out 2>err &&
	test_cmp /dev/null err &&
	head -n 1 out >first &&
	echo "usage: cairn COMMAND [options]" >expect &&
	test_cmp expect first &&
	cut -d"|" -f1 usage-lines | while read -r cmd; do
		test_grep -E "^  $cmd +[a-z]" out || exit 1
	done &&
	test_grep "^exit codes: 0 done, 1 failed, 2 usage or invalid input, 3 interrupted or waiting$" out
'

test_expect_success 'cairn -h and cairn help are cairn --help' '
	cairn --help >expect &&
	cairn -h >out-h &&
	cairn help >out-help &&
	test_cmp expect out-h &&
	test_cmp expect out-help
'

test_expect_success 'cairn without a command prints the usage on stderr, exit 2' '
	test_must_fail_with 2 cairn >out 2>err &&
	test_cmp /dev/null out &&
	cairn --help >expect &&
	test_cmp expect err
'

test_expect_success 'each command --help prints its usage line and exits 0' '
	while IFS="|" read -r cmd line; do
		cairn "$cmd" --help >out 2>err || exit 1
		test_cmp /dev/null err || exit 1
		head -n 1 out >first &&
		echo "$line" >expect &&
		test_cmp expect first || exit 1
		test_grep "^  --help  *show this help$" out || exit 1
	done <usage-lines
'

test_expect_success 'cairn help CMD is cairn CMD --help' '
	cairn run --help >expect &&
	cairn help run >out &&
	test_cmp expect out &&
	cairn help verify >out &&
	cairn verify --help >expect &&
	test_cmp expect out
'

test_expect_success '--help of a command that reads a journal needs none and creates none' '
	mkdir nojournal &&
	(
		cd nojournal &&
		cairn status --help >/dev/null &&
		cairn history --help >/dev/null &&
		cairn resume --help >/dev/null &&
		cairn run --help >/dev/null
	) &&
	test_path_is_missing nojournal/.cairn &&
	test_path_is_missing .cairn
'

test_expect_success 'run --help lists its options' '
	cairn run --help >out &&
	test_grep -E "^  --env NAME +the environment to deploy to$" out &&
	test_grep -E "^  --set NAME=VALUE +set a param \(repeatable\)$" out &&
	test_grep -E "^  --grace DURATION " out &&
	test_grep -E "^  --json +print JSON lines for scripts$" out &&
	test_grep -E "^  --journal PATH " out
'

test_expect_success 'an unknown command: exit 2, one line on stderr' '
	test_must_fail_with 2 cairn frobnicate >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: unknown command '\''frobnicate'\'' (hint: '\''cairn help'\'' lists them)" >expect &&
	test_cmp expect err
'

test_expect_success 'cairn help of an unknown command: exit 2, one line' '
	test_must_fail_with 2 cairn help frobnicate >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: unknown command '\''frobnicate'\'' (hint: '\''cairn help'\'' lists them)" >expect &&
	test_cmp expect err
'

test_expect_success 'an unknown option: exit 2, one line naming it' '
	test_must_fail_with 2 cairn run --bogus x.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: unknown option '\''--bogus'\'' (hint: see '\''cairn run --help'\'')" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn history x.yaml --bogus 2>err &&
	echo "cairn: unknown option '\''--bogus'\'' (hint: see '\''cairn history --help'\'')" >expect &&
	test_cmp expect err &&
	test_path_is_missing .cairn
'

test_expect_success 'an unknown short option: exit 2, the message names it' '
	test_must_fail_with 2 cairn history -x 2>err &&
	echo "cairn: unknown option '\''-x'\'' (hint: see '\''cairn history --help'\'')" >expect &&
	test_cmp expect err
'

# getopt leaves optind on the same argument while it walks a cluster of
# short options, so argv[optind - 1] is the argument before it.
test_expect_success 'an unknown option inside a cluster (-xy) is the one named' '
	test_must_fail_with 2 cairn history -xy 2>err &&
	test_grep "unknown option '\''-x" err &&
	test_grep ! "'\''history'\''" err
'

test_expect_success 'an option without its value: exit 2, one line' '
	test_must_fail_with 2 cairn history --limit 2>err &&
	echo "cairn: missing value for '\''--limit'\'' (hint: see '\''cairn history --help'\'')" >expect &&
	test_cmp expect err
'

test_expect_success 'a bad integer value: exit 2, one line' '
	test_must_fail_with 2 cairn history --limit -3 2>err &&
	echo "cairn: option '\''--limit'\'' needs a non-negative integer, got '\''-3'\''" >expect &&
	test_cmp expect err &&
	# past what a long holds: refused, not read as the largest one
	test_must_fail_with 2 cairn history --limit 99999999999999999999 2>err &&
	echo "cairn: option '\''--limit'\'' takes at most 9223372036854775807, got '\''99999999999999999999'\''" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn report --limit 99999999999999999999 -o r.html 2>err &&
	test_cmp expect err &&
	test_path_is_missing r.html
'

test_expect_success 'cairn version prints the version of meson.build' '
	sed -n "s/^  version: '\''\(.*\)'\'',$/\1/p" "$CAIRN_SRCDIR/meson.build" >want &&
	test -s want &&
	cairn version >out 2>err &&
	test_cmp /dev/null err &&
	test_grep -E "^cairn $(cat want) \(libuv [0-9.]+, sqlite [0-9.]+, libyaml [0-9.]+, jansson [0-9.]+, OpenSSL .*\)$" out &&
	cairn --version >out2 &&
	test_cmp out out2
'

test_expect_success 'cairn version --json parses and names every library' '
	sed -n "s/^  version: '\''\(.*\)'\'',$/\1/p" "$CAIRN_SRCDIR/meson.build" >want &&
	cairn version --json >out &&
	test "$(wc -l <out)" -eq 1 &&
	jq -e --arg v "$(cat want)" \
		".version == \$v and (.libuv|test(\"^1[.]\")) and (.sqlite|test(\"^3[.]\")) and
		 (.libyaml|length > 0) and (.jansson|length > 0) and (.openssl|test(\"OpenSSL\"))" out
'

test_expect_success 'version takes no arguments' '
	test_must_fail_with 2 cairn version extra 2>err &&
	echo "cairn: version takes no arguments" >expect &&
	test_cmp expect err
'

test_expect_success 'validate accepts the quickstart: ok line, exit 0' '
	cairn validate "$QUICKSTART" >out 2>err &&
	test_cmp /dev/null err &&
	echo "$QUICKSTART: ok (workflow '\''quickstart'\'', 7 states)" >expect &&
	test_cmp expect out
'

test_expect_success 'validate --json of the quickstart gives its name, states and sha256' '
	cairn validate --json "$QUICKSTART" >out &&
	sha256sum "$QUICKSTART" | cut -d" " -f1 >sha &&
	jq -e --arg f "$QUICKSTART" --arg sha "$(cat sha)" \
		".file == \$f and .ok == true and .name == \"quickstart\" and .states == 7 and .sha256 == \$sha" out
'

test_expect_success 'validate writes no journal' '
	test_path_is_missing .cairn
'

write_workflow broken.yaml <<\EOF
cairn: 1
name: broken
start: first
states:
  first:
    do: exec
    with: { argv: [/bin/true] }
    next: nowhere
  done: { succeed: true }
EOF

test_expect_success 'validate of a broken workflow: exit 2, one line FILE:LINE:COL: error:' '
	test_must_fail_with 2 cairn validate broken.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "broken.yaml:8:11: error: unknown state '\''nowhere'\'' in '\''next'\'' of state '\''first'\'' (hint: states are first, done)" >expect &&
	test_cmp expect err
'

test_expect_success 'validate --json of a broken workflow: ok false and the error' '
	test_must_fail_with 2 cairn validate --json broken.yaml >out &&
	jq -e --arg e "$(cat expect)" ".ok == false and .file == \"broken.yaml\" and .error == \$e" out
'

write_workflow badyaml.yaml <<\EOF
cairn: 1
name: badyaml
states: [ first
EOF

test_expect_success 'validate of malformed YAML: exit 2, one FILE:LINE:COL: error: line' '
	test_must_fail_with 2 cairn validate badyaml.yaml >out 2>err &&
	test_cmp /dev/null out &&
	test "$(wc -l <err)" -eq 1 &&
	test_grep -E "^badyaml\.yaml:[0-9]+:[0-9]+: error: " err
'

test_expect_success 'validate needs exactly one file' '
	test_must_fail_with 2 cairn validate 2>err &&
	echo "cairn: validate needs one workflow file (usage: cairn validate FILE)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn validate a.yaml b.yaml 2>err &&
	test_cmp expect err
'

test_done
