#!/bin/bash
# t0015-secrets: secrets.generate in real runs. The generated values must
# appear nowhere cairn writes (journal, its -wal, run folders, logs, --json
# output, the terminal): each is searched for plain, base64- and
# URL-encoded. The env file is 0600, a second run keeps its values, and a
# run killed after the generate step commits gets them back on resume.
. "$(dirname "$0")/lib.sh"

write_workflow gen.yaml <<\EOF
cairn: 1
name: gen
secrets: [DB_PASSWORD, JWT_SECRET]
params:
  fail: { default: "yes" }
start: gen
states:
  gen:
    do: secrets.generate
    with: { file: conf/app.env, names: [DB_PASSWORD, JWT_SECRET] }
    next: use
  use:
    do: exec
    with:
      argv:
        - sh
        - -c
        - 'echo "out: $0"; echo "err: $0" >&2; printf %s "$0" | sha256sum | cut -d" " -f1 >used.sha; echo "{\"pw\": \"$0\"}"'
        - "{{ secrets.DB_PASSWORD }}"
    idempotent: true # a resume after a kill runs it again, no decision
    next: last
  last:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

# value NAME: NAME's value in the env file.
value() { sed -n "s/^$1=//p" conf/app.env; }

# urlencode S: every byte that is not unreserved (RFC 3986) as %XX.
urlencode() {
	local s=$1 i c out=
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
			[A-Za-z0-9._~-]) out+=$c ;;
			*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

# leak_check FILE...: no generated value, in any encoding, in any FILE.
leak_check() {
	local name v forms f form
	for name in DB_PASSWORD JWT_SECRET; do
		v=$(value "$name")
		test -n "$v" || { echo "no $name in conf/app.env"; return 1; }
		forms=("$v" "$(printf %s "$v" | base64 -w0)" "$(urlencode "$v")"
		       "$(urlencode "$(printf %s "$v" | base64 -w0)")")
		for f in "$@"; do
			for form in "${forms[@]}"; do
				if grep -aqF -e "$form" "$f"; then
					echo "$name leaked into $f (as '$form')"
					return 1
				fi
			done
		done
	done
}

test_expect_success 'generate: env file 0600 in a 0700 folder, values nowhere else' '
	st=0 && cairn run --json gen.yaml >run.json 2>run.err || st=$? &&
	test "$st" = 1 &&
	test "$(stat -c %a conf/app.env)" = 600 &&
	test "$(stat -c %a conf)" = 700 &&
	test "$(grep -c "^DB_PASSWORD=[A-Za-z0-9_-]\{43\}$" conf/app.env)" = 1 &&
	test "$(grep -c "^JWT_SECRET=[A-Za-z0-9_-]\{43\}$" conf/app.env)" = 1 &&
	id=$(last_run) &&
	cairn show "$id" --json >show.json &&
	cairn show "$id" --events >show.txt &&
	test_path_is_file .cairn/journal.db &&
	leak_check run.json run.err show.json show.txt .cairn/journal.db &&
	leak_check $(find .cairn -type f) &&
	cairn show "$id" --json | jq -e ".states[0].outputs.generated == [\"DB_PASSWORD\",\"JWT_SECRET\"]"
'

test_expect_success 'the leak check finds each encoding (it can fail)' '
	v=$(value DB_PASSWORD) &&
	printf "x%sy\n" "$v" >plain.txt &&
	printf %s "$v" | base64 -w0 >b64.txt &&
	urlencode "$(printf %s "$v" | base64 -w0)" >url.txt &&
	for f in plain.txt b64.txt url.txt; do
		if leak_check "$f" >/dev/null; then echo "missed $f"; exit 1; fi
	done
'

test_expect_success 'the exec step got the value; its output is redacted' '
	test -f used.sha &&
	printf %s "$(value DB_PASSWORD)" | sha256sum | cut -d" " -f1 >expect &&
	test_cmp expect used.sha &&
	id=$(last_run) &&
	test_grep "out: \*\*\*" .cairn/runs/$id/use.log &&
	test_grep "err: \*\*\*" .cairn/runs/$id/use.log
'

test_expect_success 'a second run keeps the values' '
	cp conf/app.env before.env &&
	st=0 && cairn run gen.yaml >out 2>err || st=$? &&
	test "$st" = 1 &&
	test_cmp before.env conf/app.env &&
	cairn show "$(last_run)" --json | jq -e ".states[0].outputs.kept == [\"DB_PASSWORD\",\"JWT_SECRET\"] and .states[0].outputs.generated == []" &&
	leak_check out err
'

test_expect_success 'a run killed after the generate step: nothing in the -wal either' '
	rm -rf .cairn conf used.sha &&
	found= &&
	for n in 1 2 3 4 5 6 7 8 9 10 11 12; do
		rm -rf .cairn conf &&
		st=0 && CAIRN_TEST_KILL_AFTER_COMMIT=$n "$CAIRN_BIN" run gen.yaml --set fail=no >out 2>err || st=$? &&
		if test $st -ne 137; then
			break
		fi &&
		# before sqlite3 opens it: closing the last connection
		# checkpoints the -wal into the database and deletes it
		test_path_is_file .cairn/journal.db-wal &&
		cp .cairn/journal.db-wal killed.wal &&
		gen=$(q "select count(*) from events where state = '\''gen'\'' and kind = '\''action.finished'\''") &&
		if test "$gen" = 1; then
			found=$n && break
		fi
	done &&
	test -n "$found" &&
	test -s killed.wal &&
	leak_check out err killed.wal .cairn/journal.db $(find .cairn/runs -type f)
'

test_expect_success 'resume after the kill: the later step gets the same value' '
	cairn resume >out 2>err &&
	printf %s "$(value DB_PASSWORD)" | sha256sum | cut -d" " -f1 >expect &&
	test_cmp expect used.sha &&
	leak_check out err .cairn/journal.db $(find .cairn -type f)
'


# A state that renders after the generate step's on_done returned (here
# after a wait) must still get the value: the adapter wipes its own copy.
write_workflow later.yaml <<\EOF
cairn: 1
name: later
secrets: [DB_PASSWORD]
start: gen
states:
  gen:
    do: secrets.generate
    with: { file: later/app.env, names: [DB_PASSWORD] }
    next: pause
  pause: { wait: 200ms, next: use }
  use:
    do: exec
    with:
      argv: [sh, -c, 'printf %s "$0" | sha256sum | cut -d" " -f1 >later.sha', "{{ secrets.DB_PASSWORD }}"]
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a later state still gets the generated value' '
	rm -rf later later.sha .cairn &&
	cairn run later.yaml >out &&
	v=$(sed -n "s/^DB_PASSWORD=//p" later/app.env) &&
	test -n "$v" &&
	printf %s "$v" | sha256sum | cut -d" " -f1 >expect &&
	test_cmp expect later.sha
'

# A secret read before anything set it: the error says where one comes
# from, and that a use state's with is rendered on entry (so it cannot
# read a secret its used workflow generates).
test_expect_success 'a secret that is not set: the error says how to set it' '
	write_workflow early.yaml <<-\EOF &&
	cairn: 1
	name: early
	secrets: [API_TOKEN]
	start: a
	states:
	  a:
	    do: exec
	    with: { argv: [echo, "{{ secrets.API_TOKEN }}"] }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 1 env -u API_TOKEN "$CAIRN_BIN" run early.yaml >out 2>&1 &&
	test_grep -F "secrets.API_TOKEN is not set (hint: export API_TOKEN before the run, or generate it in a state that finishes before this one;" out
'

test_done
