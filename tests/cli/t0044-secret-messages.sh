#!/bin/bash
# t0044-secret-messages: a secret quoted by an error message is redacted
# like inputs and outputs are: on the terminal, in the journal and in the
# step's log. That holds for messages the engine makes (a used workflow's
# param that fails its pattern), for a spawn that fails (the folder or the
# program names it), for http.check's "is X, expected Y" (the secret as
# JSON escapes it, and one too long to quote whole, which is cut only
# after redaction), and for an object rendered into text. A run that
# learns more secret values than its redaction list holds stops instead
# of showing one. A secret value under 4 characters is refused: run,
# resume, validate (a default, a with literal), a map instance, a value
# secrets.generate read back from an edited file.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

# json_escape S: S as it is inside a JSON string.
json_escape() { jq -n --arg v "$1" '$v' | sed 's/^"//; s/"$//'; }

# leaks VALUE OUT: VALUE is in OUT (the terminal), the journal, its -wal
# or a file of the run folders, plain or as JSON escapes it once or
# twice (JSON text inside a JSON string); prints where.
leaks() {
	local v=$1 out=$2 esc esc2 found=1
	esc=$(json_escape "$v")
	esc2=$(json_escape "$esc")
	sqlite3 .cairn/journal.db .dump >dump
	for f in "$out" dump .cairn/journal.db .cairn/journal.db-wal \
		$(find .cairn/runs -type f 2>/dev/null); do
		[ -e "$f" ] || continue
		if grep -a -q -F -e "$v" -e "$esc" -e "$esc2" "$f"; then
			echo "the secret is in $f"
			found=0
		fi
	done
	return $found
}

write_workflow child.yaml <<\EOF
cairn: 1
name: child
params:
  x: { pattern: "^[a-z]+$" }
start: a
states:
  a: { do: exec, with: { argv: ["true", "{{ params.x }}"] }, next: done }
  done: { succeed: true }
EOF
write_workflow parent.yaml <<\EOF
cairn: 1
name: parent
secrets: [TOKEN]
start: u
states:
  u:
    use: child.yaml
    with: { x: "{{ secrets.TOKEN }}" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a used param that fails its pattern does not quote the secret' '
	TOKEN=UsedSecret42 test_must_fail_with 1 cairn run parent.yaml >out 2>&1 &&
	test_grep "param '\''x'\'' must match .*, got '\''\*\*\*'\''" out &&
	! leaks UsedSecret42 out
'

write_workflow spawn.yaml <<\EOF
cairn: 1
name: spawn
secrets: [TOKEN]
start: cwd
states:
  cwd:
    do: exec
    with: { argv: ["true"], cwd: "/nonexistent/{{ secrets.TOKEN }}" }
    next: done
    on_failure: prog
  prog:
    do: exec
    with: { argv: ["/nonexistent/{{ secrets.TOKEN }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a spawn that fails names the folder and the program redacted' '
	rm -rf .cairn &&
	TOKEN=SpawnSecret77 test_must_fail_with 1 cairn run spawn.yaml >out 2>&1 &&
	test_grep "cannot change to directory '\''/nonexistent/\*\*\*'\''" out &&
	test_grep "cannot run '\''/nonexistent/\*\*\*'\''" out &&
	test_grep "cannot run '\''/nonexistent/\*\*\*'\''" .cairn/runs/*/prog.log &&
	! leaks SpawnSecret77 out
'

write_workflow render.yaml <<\EOF
cairn: 1
name: render
secrets: [TOKEN]
start: a
states:
  a:
    do: exec
    with: { argv: ["true", "all: {{ secrets }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a secret with a quote and a backslash, rendered inside JSON text' '
	rm -rf .cairn &&
	TOKEN="q\"uo\\te9" cairn run render.yaml --json >out 2>&1 &&
	test_grep -F "all: {\\\"TOKEN\\\":\\\"***\\\"}" out &&
	! leaks "q\"uo\\te9" out
'

write_workflow printed.yaml <<\EOF
cairn: 1
name: printed
secrets: [TOKEN]
start: a
states:
  a:
    do: exec
    with:
      shell: 'jq -a -c -n --arg t "$T" "{t:\$t}"; jq -c -n --arg t "$T" "{t:\$t}" | sed "s|/|\\\\/|g"; exit 1'
      env: { T: "{{ secrets.TOKEN }}" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a step that prints a secret as other JSON writers escape it: \u00e4, \/' '
	rm -rf .cairn &&
	TOKEN="pä\"ss/wörd" test_must_fail_with 1 cairn run printed.yaml >out 2>&1 &&
	sqlite3 .cairn/journal.db .dump >dump &&
	for f in out dump $(find .cairn/runs -type f); do
		for v in "p\\u00e4\\\"ss/w\\u00f6rd" "p\\u00E4\\\"ss/w\\u00F6rd" "pä\\\"ss\\/wörd" "ss/w" "ss\\/w"; do
			if grep -a -q -F -e "$v" "$f"; then echo "$v is in $f"; exit 1; fi
		done
	done &&
	test "$(grep -a -c -F "{\"t\":\"***\"}" .cairn/runs/*/a.log)" = 2
'

test_expect_success 'a run that learns more secret values than it can redact stops' '
	rm -rf .cairn &&
	write_workflow holder.yaml <<-\EOF &&
	cairn: 1
	name: holder
	params:
	  pw: { secret: true }
	start: a
	states:
	  a: { do: exec, with: { argv: ["true", "{{ params.pw }}"] }, next: done }
	  done: { succeed: true }
	EOF
	write_workflow many.yaml <<-\EOF &&
	cairn: 1
	name: many
	start: m
	states:
	  m:
	    map:
	      items: [aaa1, bbb2, ccc3, ddd4, eee5, fff6, ggg7, hhh8, iii9, jjj0]
	      max_concurrency: 1
	      use: holder.yaml
	      with: { pw: "{{ item }}" }
	    next: done
	  done: { succeed: true }
	EOF
	CAIRN_TEST_REDACT_SPARE=0 test_must_fail_with 2 cairn run many.yaml >out 2>&1 &&
	test_grep "learned more distinct secret values than it can redact (9); cairn stops rather than show one" out &&
	test_grep ! "succeeded" out
'

write_workflow files.yaml <<\EOF
cairn: 1
name: files
secrets: [TOKEN]
start: plain
states:
  plain: { do: file.write, with: { path: plain.conf, content: "port=1\n" }, next: secret }
  secret: { do: file.write, with: { path: secret.conf, content: "token={{ secrets.TOKEN }}\n" }, next: asked }
  asked: { do: file.write, with: { path: asked.conf, content: "token={{ secrets.TOKEN }}\n", mode: "0640" }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'file.write without a mode: 0600 when the content holds a secret, else 0644' '
	rm -rf .cairn &&
	(umask 022 && TOKEN=FileSecret31 cairn run files.yaml >out) &&
	test "$(stat -c %a plain.conf)" = 644 &&
	test "$(stat -c %a secret.conf)" = 600 &&
	test "$(stat -c %a asked.conf)" = 640 &&
	test_grep -x "token=FileSecret31" secret.conf
'

if ! net_need_nginx; then
	test_skip_all "nginx is not installed"
fi
NG=$PWD/ng
mkdir -p "$NG/www"
PORT=$(free_port)
nginx_start "$NG" "server { listen 127.0.0.1:$PORT; root $NG/www; }" ||
	test_skip_all "nginx does not start here"
trap 'net_stop_all; _cairn_test_exit' EXIT

# A PEM-like key: newlines and a quote, which JSON escapes.
KEY=$(printf -- '-----BEGIN TEST KEY-----\nMIIBsecretbody"quoted\n-----END TEST KEY-----')
LONG=$(head -c 150 /dev/urandom | base64 -w0 | tr '+/' '-_')
jq -n --arg k "$KEY" --arg l "$LONG" '{body: $k, long: $l}' >"$NG/www/s.json"

write_workflow check.yaml <<EOF
cairn: 1
name: check
secrets: [KEY, LONG]
start: body
states:
  body:
    do: http.check
    with: { url: "http://127.0.0.1:$PORT/s.json", expect: { json: { body: ok } } }
    next: long
    on_failure: long
  long:
    do: http.check
    with: { url: "http://127.0.0.1:$PORT/s.json", expect: { json: { long: "x{{ secrets.LONG }}" } } }
    next: url
    on_failure: url
  url:
    do: http.check
    with: { url: "http://127.0.0.1:$PORT/nope.json?a={{ secrets.LONG }}&b={{ secrets.LONG }}&c={{ secrets.LONG }}" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'http.check quotes a multi-line secret only redacted' '
	rm -rf .cairn &&
	KEY=$KEY LONG=$LONG test_must_fail_with 1 cairn run check.yaml >out 2>&1 &&
	test_grep "json '\''body'\'' is \"\*\*\*\", expected \"ok\"" out &&
	! leaks "$KEY" out &&
	! leaks "MIIBsecretbody" out
'

test_expect_success 'http.check cuts a long value only after redacting it' '
	test_grep "json '\''long'\'' is \"\*\*\*\", expected \"x\*\*\*\"" out &&
	! leaks "${LONG:0:24}" out
'

test_expect_success 'a URL longer than a message quotes its secrets redacted' '
	test_grep "GET http://127.0.0.1:$PORT/nope.json?a=\*\*\*&b=\*\*\*&c=\*\*\*: status 404" out &&
	! leaks "${LONG:0:24}" out
'

# A secret of 1 to 3 characters would be masked wherever its characters
# occur: the output garbled, and the value shown where the *** fall.
write_workflow short.yaml <<\EOF
cairn: 1
name: short
secrets: [TOKEN]
params:
  pw: { secret: true, default: "" }
start: a
states:
  a: { do: exec, with: { argv: [sh, -c, "echo abcdefgh >>short.out"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a secret or secret param under 4 characters is refused, nothing journaled; 4 and empty are taken' '
	rm -rf .cairn short.out &&
	TOKEN=ab test_must_fail_with 2 cairn run short.yaml >out 2>&1 &&
	echo "cairn: secret TOKEN (from the environment) is 2 characters long: too short to keep out of the output (hint: give it at least 4 characters; cairn masks a secret wherever it occurs)" >expect &&
	test_cmp expect out &&
	TOKEN=c test_must_fail_with 2 cairn run short.yaml 2>err &&
	test_grep "secret TOKEN (from the environment) is 1 character long" err &&
	TOKEN=ééé test_must_fail_with 2 cairn run short.yaml 2>err &&
	test_grep "secret TOKEN (from the environment) is 3 characters long" err &&
	TOKEN=abcd test_must_fail_with 2 cairn run short.yaml --set pw=xyz 2>err &&
	test_grep "^cairn: secret param .pw. is 3 characters long: too short" err &&
	test_grep ! xyz err &&
	test_path_is_missing short.out &&
	test_path_is_missing .cairn/journal.db &&
	write_workflow promoted.yaml <<-\EOF &&
	cairn: 1
	name: promoted
	secrets: [TOKEN]
	environments: { dev: {} }
	start: a
	states:
	  a: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	TOKEN=ab test_must_fail_with 2 cairn promote promoted.yaml --to dev >out 2>err &&
	test_cmp /dev/null out &&
	test_grep "^cairn: secret TOKEN (from the environment) is 2 characters long" err &&
	test_path_is_missing .cairn/journal.db &&
	TOKEN=abcd cairn run short.yaml --set pw=wxyz >out &&
	TOKEN= cairn run short.yaml >out &&
	printf "abcdefgh\nabcdefgh\n" >expect &&
	test_cmp expect short.out
'

test_expect_success 'resume refuses a short secret param again given; a short default or with literal fails validate' '
	rm -rf .cairn &&
	write_workflow waitpw.yaml <<-\EOF &&
	cairn: 1
	name: waitpw
	params:
	  pw: { secret: true }
	start: a
	states:
	  a: { do: exec, with: { shell: "touch a.started; i=0; while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done" }, idempotent: true, next: done }
	  done: { succeed: true }
	EOF
	{ "$CAIRN_BIN" run waitpw.yaml --set pw=long-enough >bg.out 2>&1 & pid=$!; } &&
	wait_for_file a.started 10 &&
	kill -9 "$pid" && { wait "$pid" || :; } &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 2 cairn resume --set pw=xy 2>err &&
	test_grep "secret param .pw. is 2 characters long: too short" err &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after &&
	touch go &&
	sed "s/  pw: { secret: true }/  pw: { secret: true, default: abc }/" waitpw.yaml >shortdef.yaml &&
	test_must_fail_with 2 cairn validate shortdef.yaml 2>err &&
	test_grep "shortdef.yaml:4:32: error: the default of secret param .pw. is 3 characters long" err &&
	write_workflow usepw.yaml <<-\EOF &&
	cairn: 1
	name: usepw
	start: u
	states:
	  u: { use: holder.yaml, with: { pw: "ab" }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate usepw.yaml 2>err &&
	test_grep "usepw.yaml:5:38: error: the value of secret param .pw. of .* is 2 characters long" err &&
	test_grep ! "\"ab\"" err
'

test_expect_success 'a map item given to a secret param under 4 characters fails its instance, not the run' '
	rm -rf .cairn &&
	sed "s/      items: \[.*\]/      items: [abcd, xy]/" many.yaml >mshort.yaml &&
	test_must_fail_with 1 cairn run mshort.yaml >out 2>&1 &&
	test_grep "m/xy failed: secret param .pw. is 2 characters long: too short" out &&
	test "$(q "SELECT status FROM runs")" = failed
'

test_expect_success 'a generated secret an edited file made too short stops the run; fixed, resume carries on' '
	rm -rf .cairn &&
	write_workflow gen.yaml <<-\EOF &&
	cairn: 1
	name: gen
	secrets: [GTOKEN]
	start: g
	states:
	  g: { do: secrets.generate, with: { file: gen.env, names: [GTOKEN] }, next: use }
	  use: { do: exec, with: { argv: [sh, -c, "echo {{ secrets.GTOKEN }} >gen.used"] }, next: done }
	  done: { succeed: true }
	EOF
	(umask 077 && printf "GTOKEN=ab\n" >gen.env) &&
	test_must_fail_with 2 cairn run gen.yaml >out 2>&1 &&
	test_grep "^cairn: secret GTOKEN (from state .g.) is 2 characters long: too short" out &&
	test_path_is_missing gen.used &&
	test "$(q "SELECT status FROM runs")" = running &&
	(umask 077 && printf "GTOKEN=long-enough-1\n" >gen.env) &&
	cairn resume >out &&
	echo long-enough-1 >expect &&
	test_cmp expect gen.used &&
	test "$(q "SELECT status FROM runs")" = succeeded
'

test_expect_success 'resume refuses a generated secret its file made too short before it asks or writes anything' '
	rm -rf .cairn gen.used &&
	write_workflow gen2.yaml <<-\EOF &&
	cairn: 1
	name: gen2
	secrets: [GTOKEN]
	start: g
	states:
	  g: { do: secrets.generate, with: { file: gen2.env, names: [GTOKEN] }, next: slow }
	  slow: { do: exec, with: { shell: "touch slow.started; i=0; while [ ! -e go2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done" }, next: done }
	  done: { succeed: true }
	EOF
	rm -f gen2.env slow.started go2 &&
	{ "$CAIRN_BIN" run gen2.yaml >bg.out 2>&1 & pid=$!; } &&
	wait_for_file slow.started 10 &&
	kill -9 "$pid" && { wait "$pid" || :; } &&
	touch go2 &&
	(umask 077 && printf "GTOKEN=ab\n" >gen2.env) &&
	q "SELECT count(*) FROM events" >before &&
	test_must_fail_with 2 cairn resume >out 2>&1 &&
	test_grep "^cairn: secret GTOKEN (from state .g.) is 2 characters long: too short" out &&
	test_grep ! "needs a decision" out &&
	q "SELECT count(*) FROM events" >after &&
	test_cmp before after
'

test_done
