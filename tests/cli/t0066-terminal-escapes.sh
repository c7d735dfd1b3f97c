#!/bin/bash
# t0066-terminal-escapes: what cairn prints for people writes control
# characters (and bytes that start no UTF-8 character) as \xHH, wherever
# they come from: a tampered journal row that verify, history and show
# quote, a workflow file's names in a loader error, a choice's when: text
# on the run and simulate lines, a step's output in show --logs.
. "$(dirname "$0")/lib.sh"

ESC=$(printf '\033')
CSI=$(printf '\233')

# raw FILE: FILE holds an escape byte, or a lone 0x9b.
raw() { grep -q -a -e "$ESC" -e "$CSI" "$1"; }

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params: { mode: { default: "x" } }
start: build
states:
  build:
    do: exec
    with: { shell: "printf 'before\\233[2Jafter\\n'" }
    next: pick
  pick:
    choice:
      - when: "params.mode != \"\e[2J\""
        next: done
    default: done
  done: { succeed: true }
EOF

test_expect_success 'a when: with an escape, on the run line and in simulate' '
	cairn run app.yaml >out &&
	test_grep -F "→ done (when: params.mode != \"\\x1b[2J\")" out &&
	! raw out &&
	cairn simulate app.yaml >sim &&
	test_grep -F "(when: params.mode != \"\\x1b[2J\")" sim &&
	! raw sim
'

test_expect_success 'show --logs writes a lone 0x9b from a step as \x9b' '
	RUN=$(last_run) &&
	cairn show $RUN --logs >out &&
	test_grep -F "| before\\x9b[2Jafter" out &&
	! raw out
'

test_expect_success 'a status, an event kind and a verify reason from an edited journal' '
	RUN=$(last_run) &&
	cp .cairn/journal.db t1.db &&
	sqlite3 t1.db "UPDATE runs SET status = char(27) || \"[2Jok\" WHERE id = \"$RUN\"" &&
	test_must_fail_with 1 cairn verify --journal t1.db >out 2>&1 &&
	test_grep -F "\\x1b[2Jok" out &&
	! raw out &&
	cairn history --journal t1.db >out 2>&1 &&
	test_grep -F "\\x1b[2Jok" out &&
	! raw out &&
	cairn show $RUN --journal t1.db >out 2>&1 &&
	test_grep -F "status    \\x1b[2Jok" out &&
	! raw out &&
	cp .cairn/journal.db t2.db &&
	sqlite3 t2.db "DROP TRIGGER events_no_update; UPDATE events SET kind = \"ev\" || char(27) || \"[2J\" WHERE seq = (SELECT max(seq) FROM events)" &&
	{ cairn show $RUN --events --journal t2.db >out 2>&1 || true; } &&
	test_grep -F "ev\\x1b[2J" out &&
	! raw out
'

test_expect_success 'a loader error quoting a name with an escape' '
	printf "cairn: 1\nname: e\nstart: \"d\\\\e[2J\"\nstates:\n  a: { succeed: true }\n" >bad.yaml &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep -F "\\x1b[2J" err &&
	! raw err
'

test_expect_success 'show --events cuts a long payload before escaping it, and says so' '
	write_workflow long.yaml <<-\EOF &&
	cairn: 1
	name: long
	start: a
	states:
	  a: { do: exec, with: { argv: ["true", "{{ params.p }}"] }, next: done }
	  done: { succeed: true }
	params: { p: { default: "" } }
	EOF
	P=$(printf "%0.s\302\233" $(seq 1 120)) &&
	cairn run long.yaml --set "p=$P" >/dev/null &&
	RUN=$(last_run) &&
	cairn show $RUN --events >out &&
	! raw out &&
	grep -a "^ *[0-9]* *state.entered *a " out >row &&
	test_grep -E "(\\\\xc2\\\\x9b)+…$" row
'

test_done
