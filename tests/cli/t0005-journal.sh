#!/bin/bash
# t0005-journal: reading the journal back (history, show, status) and
# checking its hash chain (verify), also after tampering with it.
. "$(dirname "$0")/lib.sh"

# ---- helpers -----------------------------------------------------------------

# tampered NAME SQL: a copy of the journal as NAME.db, changed by SQL on a
# raw connection with the append-only triggers dropped.
tampered() {
	cp .cairn/journal.db "$1.db" &&
	sqlite3 "$1.db" "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; $2"
}

# ---- fixtures ----------------------------------------------------------------

write_workflow deploy.yaml <<\EOF
cairn: 1
name: deploy
params:
  color: { default: green }
start: build
states:
  build:
    do: exec
    with: { shell: "printf '{\"artifact\": \"app-%s\"}' {{ params.color }}" }
    next: checks
  checks:
    parallel:
      a: { do: exec, with: { argv: [/bin/true] } }
      b: { do: exec, with: { argv: [/bin/true] } }
    next: pick
  pick:
    choice:
      - when: "params.color == 'blue'"
        next: ship
    default: ship
  ship:
    do: exec
    with: { argv: [sh, -c, "echo shipped"] }
    next: done
  done: { succeed: true }
EOF

write_workflow broken.yaml <<\EOF
cairn: 1
name: broken
start: prepare
states:
  prepare:
    do: exec
    with: { argv: [/bin/true] }
    next: boom
  boom:
    do: exec
    with: { argv: [sh, -c, "exit 2"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: three runs, the second one failed' '
	cairn run deploy.yaml >out &&
	last_run >r1 &&
	test_must_fail_with 1 cairn run broken.yaml >out &&
	last_run >r2 &&
	cairn run deploy.yaml --set color=blue >out &&
	last_run >r3 &&
	sort -u r1 r2 r3 >ids &&
	test "$(wc -l <ids)" -eq 3
'

R1=$(cat r1 2>/dev/null)
R2=$(cat r2 2>/dev/null)
R3=$(cat r3 2>/dev/null)

# ---- history ---------------------------------------------------------------------

test_expect_success 'history lists the runs newest first' '
	cairn history >out &&
	head -n 1 out >header &&
	test_grep -E "^RUN +WORKFLOW +ENV +RELEASE +STATUS +STARTED +TOOK +ACTOR$" header &&
	sed 1d out | awk "{print \$1, \$2, \$5}" >actual &&
	cat >expect <<-EOF &&
	$R3 deploy succeeded
	$R2 broken failed
	$R1 deploy succeeded
	EOF
	test_cmp expect actual
'

test_expect_success 'history --limit N gives the N newest' '
	cairn history --limit 2 >out &&
	sed 1d out | awk "{print \$1}" >actual &&
	printf "%s\n" "$R3" "$R2" >expect &&
	test_cmp expect actual
'

test_expect_success 'history --status and --workflow filter' '
	cairn history --status failed >out &&
	sed 1d out | awk "{print \$1}" >actual &&
	echo "$R2" >expect &&
	test_cmp expect actual &&
	cairn history --status succeeded >out &&
	sed 1d out | awk "{print \$1}" >actual &&
	printf "%s\n" "$R3" "$R1" >expect &&
	test_cmp expect actual &&
	cairn history --workflow broken >out &&
	sed 1d out | awk "{print \$1}" >actual &&
	echo "$R2" >expect &&
	test_cmp expect actual
'

test_expect_success 'history with nothing matching says so' '
	cairn history --status interrupted >out &&
	echo "no runs" >expect &&
	test_cmp expect out &&
	cairn history --status interrupted --json >out &&
	test_cmp /dev/null out
'

test_expect_success 'history --json: one object per run, newest first' '
	cairn history --json >out &&
	jq -R -e "fromjson | type == \"object\"" out >/dev/null &&
	jq -r "[.id, .workflow, .status] | join(\" \")" out >actual &&
	cat >expect <<-EOF &&
	$R3 deploy succeeded
	$R2 broken failed
	$R1 deploy succeeded
	EOF
	test_cmp expect actual &&
	cairn history --json --limit 1 --status succeeded >out &&
	jq -r .id out >actual &&
	echo "$R3" >expect &&
	test_cmp expect actual &&
	jq -e ".params == {\"color\": \"blue\"} and .actor != \"\" and .finished_ms >= .created_ms and
		(.file | endswith(\"/deploy.yaml\"))" out
'

test_expect_success 'the run ids sort by time' '
	printf "%s\n" "$R1" "$R2" "$R3" >expect &&
	printf "%s\n" "$R1" "$R2" "$R3" | sort >actual &&
	test_cmp expect actual
'

# ---- show ------------------------------------------------------------------------------

test_expect_success 'show RUN: the header and each state with its outcome' '
	cairn show "$R1" >out &&
	head -n 1 out >first &&
	echo "run       $R1" >expect &&
	test_cmp expect first &&
	test_grep "^workflow  deploy ($TRASH/deploy.yaml, sha256 $(sha256sum deploy.yaml | cut -c1-12))$" out &&
	test_grep "^status    succeeded$" out &&
	test_grep "^params    {\"color\":\"green\"}$" out &&
	sed -n "/^STATE /,/^\$/p" out | sed 1d | awk "{print \$1, \$2, \$3}" >actual &&
	cat >expect <<-\EOF &&
	build do succeeded
	checks parallel passed
	checks/a branch succeeded
	checks/b branch succeeded
	pick choice passed
	ship do succeeded
	done succeed passed
	EOF
	test_cmp expect actual &&
	test_grep -F "{\"exit_code\":0,\"json\":{\"artifact\":\"app-green\"}}" out
'

test_expect_success 'show with a unique prefix of the id, in any case' '
	cairn show "$R1" >expect &&
	P=$(printf %s "$R1" | cut -c1-20) &&
	cairn show "$P" >actual &&
	test_cmp expect actual &&
	p=$(printf %s "$P" | tr "A-Z" "a-z") &&
	cairn show "$p" >actual &&
	test_cmp expect actual
'

test_expect_success 'show of the failed run: the failed state and why' '
	cairn show "$R2" >out &&
	test_grep "^status    failed$" out &&
	sed -n "/^STATE /,/^\$/p" out | sed 1d | awk "{print \$1, \$3}" >actual &&
	printf "prepare succeeded\nboom failed\n" >expect &&
	test_cmp expect actual &&
	test_grep -E "^boom +do +failed .*exited with status 2$" out
'

test_expect_success 'show --events lists every event of the run' '
	cairn show --events "$R1" >out &&
	sed -n "/^ *SEQ  KIND /,\$p" out | sed 1d >events &&
	awk "{print \$1, \$2}" events >actual &&
	q "SELECT seq, kind FROM events WHERE run_id = '\''$R1'\'' ORDER BY seq" | tr "|" " " >expect &&
	test_cmp expect actual
'

test_expect_success 'show --json parses; its states and events match the journal' '
	cairn show --json "$R1" >out &&
	test "$(wc -l <out)" -eq 1 &&
	jq -r ".run.id, .run.status" out >actual &&
	printf "%s\nsucceeded\n" "$R1" >expect &&
	test_cmp expect actual &&
	jq -r ".states[] | \"\(.path) \(.kind)\"" out >actual &&
	cat >expect <<-\EOF &&
	build do
	checks parallel
	checks/a branch
	checks/b branch
	pick choice
	ship do
	done succeed
	EOF
	test_cmp expect actual &&
	jq -r ".states[] | select(.kind == \"do\" or .kind == \"branch\") |
		\"\(.path) \(.phase) \(.attempts)\"" out >actual &&
	cat >expect <<-\EOF &&
	build succeeded 1
	checks/a succeeded 1
	checks/b succeeded 1
	ship succeeded 1
	EOF
	test_cmp expect actual &&
	jq -r ".states[] | select(.path == \"build\") | .outputs.json.artifact" out >actual &&
	echo app-green >expect &&
	test_cmp expect actual &&
	jq -r ".events[] | \"\(.seq) \(.kind) \(.hash)\"" out >actual &&
	q "SELECT seq, kind, hash FROM events WHERE run_id = '\''$R1'\'' ORDER BY seq" | tr "|" " " >expect &&
	test_cmp expect actual
'

test_expect_success 'show --json of the second deploy has its params and choice' '
	cairn show --json "$R3" >out &&
	jq -e ".run.params == {\"color\": \"blue\"}" out &&
	jq -r ".events[] | select(.kind == \"transition\" and .state == \"pick\") | .payload.reason" out >actual &&
	echo "when: params.color == '\''blue'\''" >expect &&
	test_cmp expect actual
'

# ---- status -----------------------------------------------------------------------------

test_expect_success 'status lists what is live for each workflow' '
	cairn status >out &&
	awk "NR > 1 {print \$1, \$4}" out >actual &&
	cat >expect <<-EOF &&
	deploy $R3
	broken -
	EOF
	test_cmp expect actual &&
	cairn status --json >out &&
	jq -r ".live.run // \"none\"" out >actual &&
	printf "%s\n" "$R3" none >expect &&
	test_cmp expect actual
'

test_expect_success 'status RUN of a finished run' '
	cairn status "$R2" >out &&
	echo "run $R2 (broken): failed" >expect &&
	test_cmp expect out
'

# ---- verify ------------------------------------------------------------------------------

test_expect_success 'verify: the chain is ok (exit 0)' '
	N=$(q "SELECT count(*) FROM events") &&
	H=$(q "SELECT substr(hash, 1, 16) FROM events ORDER BY seq DESC LIMIT 1") &&
	test "$N" -gt 20 &&
	cairn verify >out 2>err &&
	test_cmp /dev/null err &&
	echo "journal $TRASH/.cairn/journal.db: chain ok, $N events, last hash $H" >expect &&
	test_cmp expect out
'

test_expect_success 'verify --json: ok, the count and the last hash' '
	cairn verify --json >out &&
	jq -e --argjson n "$(q "SELECT count(*) FROM events")" \
		--arg h "$(q "SELECT hash FROM events ORDER BY seq DESC LIMIT 1")" \
		".ok == true and .events == \$n and .last_hash == \$h and (has(\"first_bad_seq\") | not)" out
'

test_expect_success 'the events are append-only on a raw connection too' '
	cp .cairn/journal.db raw.db &&
	if sqlite3 raw.db "UPDATE events SET payload = '\''{}'\'' WHERE seq = 3" 2>err; then
		echo "the update went through"
		exit 1
	fi &&
	test_grep "journal events are append-only" err &&
	if sqlite3 raw.db "DELETE FROM events WHERE seq = 3" 2>err; then
		echo "the delete went through"
		exit 1
	fi &&
	test_grep "journal events are append-only" err &&
	cairn verify --journal raw.db >out &&
	test_grep ": chain ok, " out
'

test_expect_success 'an edited payload: verify exits 1 naming that event' '
	tampered edit "UPDATE events SET payload = '\''{\"status\":\"succeeded\"}'\'' WHERE seq = 5" &&
	sha256sum edit.db >before &&
	test_must_fail_with 1 cairn verify --journal edit.db >out &&
	echo "journal edit.db: chain broken at event 5: hash does not match the event'\''s contents (the event was edited)" >expect &&
	test_cmp expect out &&
	sha256sum edit.db >after &&
	test_cmp before after
'

test_expect_success 'verify --json of an edited journal: ok false, first_bad_seq' '
	test_must_fail_with 1 cairn verify --json --journal edit.db >out &&
	jq -e ".ok == false and .first_bad_seq == 5 and (.reason | contains(\"edited\"))" out
'

test_expect_success 'an edited field other than the payload is found too' '
	tampered field "UPDATE events SET time_ms = time_ms + 1 WHERE seq = 6" &&
	test_must_fail_with 1 cairn verify --journal field.db >out &&
	test_grep "^journal field.db: chain broken at event 6: hash does not match" out &&
	tampered state "UPDATE events SET state = '\''elsewhere'\'' WHERE seq = 9" &&
	test_must_fail_with 1 cairn verify --journal state.db >out &&
	test_grep "^journal state.db: chain broken at event 9: " out
'

test_expect_success 'a deleted event: verify names the gap' '
	tampered gap "DELETE FROM events WHERE seq = 7" &&
	test_must_fail_with 1 cairn verify --journal gap.db >out &&
	echo "journal gap.db: chain broken at event 7: event 7 is missing" >expect &&
	test_cmp expect out &&
	tampered gap2 "DELETE FROM events WHERE seq IN (7, 8, 9)" &&
	test_must_fail_with 1 cairn verify --journal gap2.db >out &&
	echo "journal gap2.db: chain broken at event 7: events 7 to 9 are missing" >expect &&
	test_cmp expect out
'

test_expect_success 'two events with their payloads swapped: detected' '
	test "$(q "SELECT payload FROM events WHERE seq = 3")" != "$(q "SELECT payload FROM events WHERE seq = 4")" &&
	tampered swap "CREATE TEMP TABLE t AS SELECT seq, payload FROM events WHERE seq IN (3, 4);
		UPDATE events SET payload = (SELECT payload FROM t WHERE t.seq = 7 - events.seq) WHERE seq IN (3, 4)" &&
	sqlite3 swap.db "SELECT payload FROM events WHERE seq = 4" >actual &&
	q "SELECT payload FROM events WHERE seq = 3" >expect &&
	test_cmp expect actual &&
	test_must_fail_with 1 cairn verify --journal swap.db >out &&
	test_grep "^journal swap.db: chain broken at event 3: hash does not match" out
'

test_expect_success 'two whole events swapped (moved): detected by prev_hash' '
	tampered move "UPDATE events SET seq = 1000000 WHERE seq = 8;
		UPDATE events SET seq = 8 WHERE seq = 9;
		UPDATE events SET seq = 9 WHERE seq = 1000000" &&
	test_must_fail_with 1 cairn verify --journal move.db >out &&
	echo "journal move.db: chain broken at event 8: prev_hash does not match the hash of event 7 (an event was removed, inserted or moved)" >expect &&
	test_cmp expect out
'

test_expect_success 'the real journal still verifies' '
	cairn verify >out &&
	test_grep ": chain ok, " out
'

# An empty file: a first run killed before its schema commit, or one made
# by hand. Reading it writes nothing; a run makes it a private journal.
test_expect_success 'read commands leave an empty journal file as it was' '
	: >empty.db && chmod 644 empty.db &&
	for c in history status verify export; do
		cairn $c --journal empty.db >out || { echo "$c failed"; exit 1; }
	done &&
	test "$(stat -c %s.%a empty.db)" = 0.644 &&
	test_path_is_missing empty.db-wal &&
	cairn run deploy.yaml --journal empty.db >/dev/null &&
	test "$(stat -c %a empty.db)" = 600 &&
	cairn history --journal empty.db --json >out &&
	test "$(jq -s length out)" = 1
'

# Another process holds the journal's write lock longer than the busy
# timeout (5 s) while a step runs: its end cannot be journaled. Write-ahead
# means the run stops there as interrupted, undoing nothing (an undo could
# not be journaled either); resume picks it up once the journal is free.
write_workflow busy.yaml <<\EOF
cairn: 1
name: busy
start: hold
states:
  hold:
    do: exec
    with:
      argv:
        - sh
        - -c
        - |
          { printf "BEGIN IMMEDIATE;\n.system touch locked\n"; sleep 6
            printf "COMMIT;\n.system touch released\n"; } |
            sqlite3 "$CAIRN_JOURNAL" >/dev/null 2>&1 &
          i=0; until [ -e locked ] || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done
    undo: { do: exec, with: { argv: [touch, undone] } }
    next: after
  after:
    do: exec
    with: { argv: [touch, after] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a journal locked by another process for over 5 s: the run stops as interrupted, exit 3' '
	rm -rf busyrun && mkdir busyrun && cd busyrun &&
	CAIRN_JOURNAL=$PWD/journal.db && export CAIRN_JOURNAL &&
	test_must_fail_with 3 cairn run ../busy.yaml >out 2>err &&
	run=$(sed -n "s/^run \([0-9A-Z]*\): busy$/\1/p" out) &&
	test -n "$run" &&
	test_grep "^run $run stopped: the journal could not record that hold succeeded (cannot start a transaction on .*journal.db.: database is locked (another process held it for more than 5 s)), and nothing was undone; resume will ask about it; continue it with .cairn resume $run.$" out &&
	test_cmp /dev/null err &&
	test_path_is_missing undone &&
	test_path_is_missing after &&
	i=0 && until [ -e released ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done &&
	test_path_is_file released &&
	cairn history --json --limit 1 >h &&
	jq -e ".status == \"interrupted\"" h &&
	test_must_fail_with 3 cairn resume "$run" >out &&
	test_grep "state .hold. was running (attempt 1) when the run stopped" out &&
	cairn resume "$run" --assume succeeded >out &&
	test_path_is_file after &&
	test_path_is_missing undone &&
	cairn verify >out &&
	test_grep ": chain ok, " out
'

# A new journal is made by whichever process comes first. SQLite takes the
# switch to WAL once, without waiting (one of two first runs failed at
# once: "database is locked ... more than 5 s"), and a reader that looked
# between the new tables and the version that names them saw "not a
# cairn journal".
write_workflow first-a.yaml <<\EOF
cairn: 1
name: first-a
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF
sed "s/first-a/first-b/" first-a.yaml >first-b.yaml

test_expect_success 'two first runs and a reader at once on a new journal all succeed' '
	for i in $(seq 1 25); do
		rm -rf fresh && mkdir fresh &&
		{ "$CAIRN_BIN" run first-a.yaml --journal fresh/j.db >a.out 2>&1 & } &&
		{ "$CAIRN_BIN" run first-b.yaml --journal fresh/j.db >b.out 2>&1 & } &&
		{ "$CAIRN_BIN" status --journal fresh/j.db >s.out 2>&1 & } &&
		fails=0 &&
		for p in $(jobs -p); do wait "$p" || fails=$((fails + 1)); done &&
		# the reader may come before the file (and say so), never after
		# it saying anything else
		{ test "$fails" = 0 ||
		  { test "$fails" = 1 && grep -q "^cairn: no journal at .fresh/j.db." s.out; }; } ||
		{ cat a.out b.out s.out; exit 1; }
		test "$(sqlite3 fresh/j.db "SELECT count(*) FROM runs WHERE status = \"succeeded\"")" = 2 || exit 1
	done &&
	"$CAIRN_BIN" verify --journal fresh/j.db >out &&
	test_grep ": chain ok, " out
'

test_done
