#!/bin/bash
# shellcheck disable=SC2016 # the bodies are single-quoted: lib.sh evals them
# t0054-columns: the tables of history, status, show and adapters keep
# their columns in line when a workflow, environment, release, actor or
# state is longer than usual, counted in characters, not bytes.
. "$(dirname "$0")/lib.sh"

write_workflow long.yaml <<\EOF2
cairn: 1
name: a-workflow-whose-name-is-long
params:
  release: { default: "1.0.0" }
environments:
  staging-eu-west-1-blue: {}
  dev: {}
start: build-the-images-for-every-service
states:
  build-the-images-for-every-service:
    do: exec
    with: { argv: [/bin/echo, built] }
    next: go
  go:
    do: exec
    with: { argv: [/bin/echo, "{{ params.release }}"] }
    next: done
  done: { succeed: true }
EOF2

# 80 times é after an x: in its state.entered payload, byte 160 is the
# first byte of an é
write_workflow short.yaml <<\EOF2
cairn: 1
name: w
start: go
states:
  go:
    do: exec
    with: { argv: [/bin/echo, "xéééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé"] }
    next: done
  done: { succeed: true }
EOF2

# chars FILE: FILE with each character of more than one byte written as
# one "?", so that awk counts characters (lib.sh sets LC_ALL=C).
chars() { sed 's/[\xc2-\xf4][\x80-\xbf]*/?/g' "$1"; }

# starts FILE HEADING...: FILE is a table, its headings on line 1; on
# every line the cell under each HEADING begins where the heading does:
# two blanks before it, none at it. Prints each line where it does not.
starts() {
	local f=$1 h
	shift
	for h in "$@"; do
		chars "$f" | awk -v h="$h" '
			NR == 1 { at = index($0, h) }
			at < 3 || substr($0, at - 2, 2) != "  " ||
			substr($0, at, 1) == " " || substr($0, at, 1) == "" {
				print "line " NR ": " h " not at " at ": " $0; bad = 1 }
			END { exit bad }' || return 1
	done
}

# ends FILE HEADING...: the same for a column aligned to the right: the
# cell ends where its heading does, a blank or the end of the line after
# it.
ends() {
	local f=$1 h
	shift
	for h in "$@"; do
		chars "$f" | awk -v h="$h" '
			NR == 1 { end = index($0, h) + length(h) - 1 }
			substr($0, end, 1) == " " || substr($0, end, 1) == "" ||
			substr($0, end + 1, 1) !~ /^ ?$/ {
				print "line " NR ": " h " does not end at " end ": " $0
				bad = 1 }
			END { exit bad }' || return 1
	done
}

# offsets FILE: for each line, where its cells after the first begin
# (after two blanks or more), in characters.
offsets() {
	chars "$1" | awk '{
		s = $0; base = 0; o = ""
		while (match(s, /[^ ]  +[^ ]/)) {
			base += RSTART + RLENGTH - 2; o = o " " (base + 1)
			s = substr(s, RSTART + RLENGTH - 1)
		}
		print o }'
}

test_expect_success 'three runs: a short one, and long names in two environments' '
	CAIRN_ACTOR=ci cairn run short.yaml >out &&
	last_run >short.id &&
	CAIRN_ACTOR="renée.müller@build-host-07" cairn run long.yaml \
		--env staging-eu-west-1-blue --set "release=2.0.0-rc.1+ünïcödé.7" >out &&
	last_run >long.id &&
	CAIRN_ACTOR=ci cairn run long.yaml --env dev >out
'

test_expect_success 'history: every column starts where its heading does' '
	cairn history >out &&
	test "$(wc -l <out)" = 4 &&
	test_grep "2.0.0-rc.1+ünïcödé.7  succeeded" out &&
	starts out WORKFLOW ENV RELEASE STATUS STARTED ACTOR &&
	ends out TOOK &&
	test_grep ! " \$" out
'

test_expect_success 'status: a long actor in the BY column keeps IN PROGRESS in line' '
	cairn status >out &&
	test "$(wc -l <out)" = 4 &&
	test_grep "renée.müller@build-host-07  no\$" out &&
	starts out ENV RELEASE RUN DEPLOYED BY "IN PROGRESS" &&
	test_grep ! " \$" out
'

test_expect_success 'show: a long state name keeps its table in line, log lines under KIND' '
	cairn show --logs "$(cat long.id)" >out &&
	sed -n "/^STATE /,/^\$/p" out | sed "/^\$/d" >states &&
	test_grep "^build-the-images-for-every-service  do " states &&
	test_grep "^  *| built\$" states &&
	starts states KIND &&
	grep -v "^ *| " states >rows &&
	test "$(wc -l <rows)" = 4 &&
	starts rows OUTCOME &&
	ends rows START TOOK &&
	grep -E "^STATE |exit_code" rows >detailed &&
	test "$(wc -l <detailed)" = 3 &&
	starts detailed DETAIL &&
	test_grep ! " \$" out
'

test_expect_success 'show --events: a long state path keeps PAYLOAD in line' '
	cairn show --events "$(cat long.id)" >out &&
	sed -n "/^ *SEQ  KIND /,\$p" out >events &&
	starts events KIND PAYLOAD &&
	ends events SEQ &&
	grep -v "  run\\." events >stated &&
	test "$(grep -c "  build-the-images-for-every-service  {" stated)" -ge 3 &&
	starts stated STATE &&
	test_grep ! " \$" out
'

test_expect_success 'show --events: a payload is cut at 160 bytes as before, not inside a character, and ends in …' '
	cairn show --events "$(cat short.id)" >out &&
	grep "  state.entered  *go  " out | grep -o "{\"inputs\".*" >payload &&
	test "$(wc -l <payload)" = 1 &&
	test "$(wc -c <payload)" = 163 &&
	iconv -f UTF-8 -t UTF-8 payload >/dev/null &&
	test_grep "ééé…\$" payload
'

test_expect_success 'adapters: a long input name keeps the type and the rest in line' '
	cairn adapters helm >out &&
	test_grep "^    previous_revision  " out &&
	grep "^    [^ ]" out >rows &&
	test "$(wc -l <rows)" -ge 10 &&
	offsets rows | sort -u >cols &&
	test "$(wc -l <cols)" = 1 &&
	test "$(wc -w <cols)" = 2
'

test_done
