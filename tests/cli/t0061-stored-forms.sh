#!/bin/bash
# t0061-stored-forms: edits that keep every hash valid, even the HMAC of
# a keyed journal, and change what SQL finds. The hash covers a text up to
# its first NUL byte and a number as C reads it; SQL compares the stored
# value whole, with its storage class. So a kind cast to a blob, a run_id
# with bytes after a NUL or an attempt past 2^32 reads as the value that
# was hashed and is another value to every query (a run's status, its
# events for resume). verify and the per-run check of resume, rollback
# and promote refuse such a form. And a key record INSERTed into an
# unkeyed journal (no trigger to drop) is tampering, not a keyed journal.
. "$(dirname "$0")/lib.sh"

# tamper NAME JOURNAL SQL: a copy of JOURNAL as NAME.db, changed by SQL
# with the append-only triggers dropped and put back as schema.c has them,
# as a careful attacker would (verify would report them missing).
tamper() {
	rm -f "$1".db* &&
	cp "$2" "$1.db" &&
	sqlite3 "$1.db" "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;
		$3;
		CREATE TRIGGER events_no_update BEFORE UPDATE ON events
		BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
		CREATE TRIGGER events_no_delete BEFORE DELETE ON events
		BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;"
}

# broken_at SEQ CMD...: CMD exits 1 and its stdout names event SEQ first.
broken_at() {
	local seq=$1
	shift
	test_must_fail_with 1 "$@" >out 2>err &&
	test_cmp /dev/null err &&
	test_grep "chain broken at event $seq: " out
}

# db JOURNAL SQL: a query.
db() { sqlite3 "$1" "$2"; }

write_workflow app.yaml <<\EOF
cairn: 1
name: app
params:
  release: { default: "1.0.0" }
  fail: { default: "no" }
start: build
states:
  build:
    do: exec
    with: { argv: [sh, -c, "echo build {{ params.release }} >>steps.log"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo build >>steps.log"] } }
    next: ship
  ship:
    do: exec
    idempotent: true
    with: { argv: [sh, -c, "echo ship {{ params.release }} >>steps.log && test {{ params.fail }} = no"] }
    undo: { do: exec, with: { argv: [sh, -c, "echo undo ship >>steps.log"] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: 1.0.0 succeeded, 1.1.0 failed and rolled back, 1.2.0 succeeded; plain and keyed' '
	head -c 32 /dev/urandom >key && chmod 600 key &&
	for j in plain keyed; do
		if [ $j = keyed ]; then K="--key-file key"; else K=; fi
		cairn run app.yaml --journal $j.db $K --set release=1.0.0 >/dev/null &&
		test_must_fail_with 1 cairn run app.yaml --journal $j.db $K --set release=1.1.0 --set fail=yes >/dev/null &&
		cairn run app.yaml --journal $j.db $K --set release=1.2.0 >/dev/null || exit 1
	done &&
	test "$(db keyed.db "SELECT group_concat(status, \" \") FROM (SELECT status FROM runs ORDER BY created_ms)")" = "succeeded failed succeeded" &&
	db keyed.db "SELECT id FROM runs WHERE release = '\''1.1.0'\''" >F &&
	cairn verify --journal plain.db >/dev/null &&
	cairn verify --journal keyed.db --key-file key >/dev/null
'

# ---- a kind cast to a blob, or with bytes after a NUL

for j in plain keyed; do
	if [ $j = keyed ]; then K="--key-file key"; else K=; fi
	for how in "CAST(kind AS BLOB)" "kind || char(0) || 'x'"; do
		case $how in CAST*) said="is stored as a blob, not as text" ;; *) said="holds a NUL byte at byte 13 of 14" ;; esac
		test_expect_success "$j: the last run.finished's kind set to $how, the row to running: caught at that event" '
			n=$(db $j.db "SELECT max(seq) FROM events WHERE kind = '\''run.finished'\''") &&
			r3=$(db $j.db "SELECT run_id FROM events WHERE seq = $n") &&
			tamper kind $j.db "UPDATE events SET kind = $how WHERE seq = $n;
				UPDATE runs SET status = '\''running'\'', finished_ms = 0 WHERE id = '\''$r3'\''" &&
			cairn status --journal kind.db $K >out &&
			test_grep "$r3 (interrupted)" out &&
			broken_at $n cairn verify --journal kind.db $K &&
			echo "journal kind.db: chain broken at event $n: its kind $said (the event was edited)" >expect &&
			test_cmp expect out &&
			test_must_fail_with 1 cairn resume $r3 --journal kind.db $K >out 2>err &&
			echo "cairn: run $r3 does not check out at event $n: its kind $said (the event was edited) (hint: '\''cairn verify'\'' checks the whole journal)" >expect &&
			test_cmp expect err
		'
	done
done

# ---- the failed run's later events moved under a run_id SQL does not find

for how in "CAST(run_id AS BLOB)" "run_id || char(0)"; do
	case $how in CAST*) said="is stored as a blob, not as text"; row="CAST(id AS BLOB)" ;;
	*) said="holds a NUL byte at byte 27 of 27"; row="id || char(0)" ;; esac
	test_expect_success "keyed: the failed run's failure and rollback hidden ($how): verify and resume refuse" '
		F=$(cat F) &&
		from=$(db keyed.db "SELECT seq FROM events WHERE run_id = '\''$F'\'' AND kind = '\''action.finished'\'' AND state = '\''ship'\''") &&
		tamper hide keyed.db "INSERT INTO runs SELECT $row, workflow, file, file_sha256, env, release, params, '\''running'\'', actor, parent, created_ms, updated_ms, 0 FROM runs WHERE id = '\''$F'\'';
			UPDATE runs SET status = '\''running'\'', finished_ms = 0 WHERE id = '\''$F'\'';
			UPDATE events SET run_id = $how WHERE run_id = '\''$F'\'' AND seq >= $from" &&
		broken_at $from cairn verify --journal hide.db --key-file key &&
		echo "journal hide.db: chain broken at event $from: its run_id $said (the event was edited)" >expect &&
		test_cmp expect out &&
		sqlite3 hide.db .dump >before &&
		cp steps.log steps.before &&
		for cmd in "resume $F --allow-superseded" "rollback $F --allow-superseded" "rollback $F --dry-run"; do
			test_must_fail_with 1 cairn $cmd --journal hide.db --key-file key >out 2>err || exit 1
			echo "cairn: run $F does not check out at event $from: its run_id $said (the event was edited) (hint: '\''cairn verify'\'' checks the whole journal)" >expect &&
			test_cmp expect err || exit 1
		done &&
		test_cmp steps.before steps.log &&
		sqlite3 hide.db .dump >after &&
		test_cmp before after
	'
done

# ---- every other column of an event

while IFS=@ read -r what sql said; do
	test_expect_success "keyed: an event's $what: caught at that event" '
		n=$(db keyed.db "SELECT min(seq) FROM events WHERE run_id = '\''$(cat F)'\'' AND kind = '\''action.started'\''") &&
		tamper col keyed.db "UPDATE events SET $sql WHERE seq = $n" &&
		broken_at $n cairn verify --journal col.db --key-file key &&
		echo "journal col.db: chain broken at event $n: its $said (the event was edited)" >expect &&
		test_cmp expect out
	'
done <<\EOF
state cast to a blob@state = CAST(state AS BLOB)@state is stored as a blob, not as text
state with bytes after a NUL@state = state || char(0) || 'x'@state holds a NUL byte at byte 6 of 7
attempt past 2^32@attempt = attempt + 4294967296@attempt 4294967297 is out of range
attempt as text@attempt = attempt || 'x'@attempt is stored as text, not as an integer
attempt as a real@attempt = attempt + 0.5@attempt is stored as a real, not as an integer
time_ms as text@time_ms = time_ms || ' ms'@time_ms is stored as text, not as an integer
payload cast to a blob@payload = CAST(payload AS BLOB)@payload is stored as a blob, not as text
prev_hash with bytes after a NUL@prev_hash = prev_hash || char(0) || 'x'@prev_hash holds a NUL byte at byte 65 of 66
hash cast to a blob@hash = CAST(hash AS BLOB)@hash is stored as a blob, not as text
EOF

# ---- the runs table: status, history and the gates read it by SQL

while IFS=@ read -r what sql said; do
	test_expect_success "a row's $what: caught at its run's first event" '
		first=$(db plain.db "SELECT min(seq) FROM events WHERE run_id = (SELECT id FROM runs WHERE release = '\''1.1.0'\'')") &&
		id=$(db plain.db "SELECT id FROM runs WHERE release = '\''1.1.0'\''") &&
		rm -f row.db* && cp plain.db row.db &&
		db row.db "$sql" &&
		broken_at $first cairn verify --journal row.db &&
		echo "journal row.db: chain broken at event $first: run $id'\''s row: its $said (the runs table was edited)" >expect &&
		test_cmp expect out
	'
done <<\EOF
copy with its id cast to a blob@INSERT INTO runs SELECT CAST(id AS BLOB), workflow, file, file_sha256, env, release, params, status, actor, parent, created_ms, updated_ms, finished_ms FROM runs WHERE release = '1.1.0'@id is stored as a blob, not as text
copy with a longer id@INSERT INTO runs SELECT id || 'X', workflow, file, file_sha256, env, release, params, status, actor, parent, created_ms, updated_ms, finished_ms FROM runs WHERE release = '1.1.0'@id is 27 bytes long, longer than any run id
status with bytes after a NUL@UPDATE runs SET status = status || char(0) || 'x' WHERE release = '1.1.0'@status holds a NUL byte at byte 7 of 8
created_ms as text (sorts after every number: newest)@UPDATE runs SET created_ms = created_ms || 'x' WHERE release = '1.1.0'@created_ms is stored as text, not as an integer
finished_ms as text@UPDATE runs SET finished_ms = finished_ms || 'x' WHERE release = '1.1.0'@finished_ms is stored as text, not as an integer
EOF

write_workflow envs.yaml <<\EOF
cairn: 1
name: envs
params:
  release: { default: "1.0.0" }
environments:
  dev: { vars: { name: dev } }
  staging: { vars: { name: staging }, after: dev }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "echo {{ params.release }} >out-{{ vars.name }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'the after gate does not rely on a row stored otherwise' '
	cairn run envs.yaml --journal gate.db --env dev >/dev/null &&
	id=$(db gate.db "SELECT id FROM runs") &&
	db gate.db "UPDATE runs SET created_ms = created_ms || '\''x'\''" &&
	first=$(db gate.db "SELECT min(seq) FROM events") &&
	test_must_fail_with 1 cairn promote envs.yaml --journal gate.db --to staging >out 2>err &&
	echo "cairn: run $id'\''s row: its created_ms is stored as text, not as an integer (the runs table was edited) (hint: '\''cairn verify'\'' checks the whole journal)" >expect &&
	test_cmp expect err &&
	test_path_is_missing out-staging
'

# ---- a key record INSERTed into an unkeyed journal

# v2 JOURNAL: JOURNAL made a journal of schema version 2, which had no
# meta_no_insert trigger (a journal written before it came).
v2() { db "$1" "DROP TRIGGER IF EXISTS meta_no_insert; PRAGMA user_version = 2"; }

test_expect_success 'schema 2, a key record inserted: verify exit 1 at event 1, with or without a key' '
	rm -f added.db* && cp plain.db added.db && v2 added.db &&
	db added.db "INSERT INTO meta VALUES ('\''hmac_key_id'\'', '\''0123456789abcdef'\'')" &&
	echo "journal added.db: chain broken at event 1: its hash is plain SHA-256, but the journal records key id 0123456789abcdef: a key record was added to a journal whose events are not keyed (or its events were rehashed without the key)" >expect &&
	broken_at 1 cairn verify --journal added.db &&
	test_cmp expect out &&
	broken_at 1 cairn verify --journal added.db --key-file key &&
	test_cmp expect out &&
	test_must_fail_with 1 cairn verify --json --journal added.db >out.json &&
	test "$(jq -r .first_bad_seq out.json)" = 1
'

test_expect_success 'schema 2, a key record inserted: run, resume and rollback refuse with exit 1, nothing written' '
	sqlite3 added.db .dump >before &&
	cp steps.log steps.before &&
	echo "cairn: journal '\''added.db'\'' records key id 0123456789abcdef, but its event 1 is hashed without a key: the key record was added to an unkeyed journal (hint: '\''cairn verify'\'' says what is wrong)" >expect &&
	F=$(db added.db "SELECT id FROM runs WHERE release = '\''1.1.0'\''") &&
	for cmd in "run app.yaml" "run app.yaml --key-file key" "resume $F" "rollback $F --dry-run"; do
		test_must_fail_with 1 cairn $cmd --journal added.db >out 2>err || exit 1
		test_cmp expect err || exit 1
	done &&
	test_cmp steps.before steps.log &&
	sqlite3 added.db .dump >after &&
	test_cmp before after
'

test_expect_success 'schema 2, the real key id inserted: a keyed run is refused, not mixed in' '
	rm -f real.db* && cp plain.db real.db && v2 real.db &&
	db real.db "INSERT INTO meta VALUES ('\''hmac_key_id'\'', '\''$(sha256sum key | cut -c1-16)'\'')" &&
	n=$(db real.db "SELECT count(*) FROM events") &&
	test_must_fail_with 1 cairn run app.yaml --journal real.db --key-file key >out 2>err &&
	test_grep "^cairn: journal '\''real.db'\'' records key id [0-9a-f]*, but its event 1 is hashed without a key" err &&
	test "$(db real.db "SELECT count(*) FROM events")" = "$n"
'

test_expect_success 'a keyed journal is still keyed: exit 2 without its key, ok with it' '
	test_must_fail_with 2 cairn verify --journal keyed.db >out 2>err &&
	test_grep "is keyed (key id" err &&
	cairn verify --journal keyed.db --key-file key >out &&
	test_grep "chain ok (keyed)" out
'

# ---- the guard: since schema 3 the file refuses a meta row after an event

test_expect_success 'a new journal refuses a meta row once it has events' '
	rm -f ins.db* && cp plain.db ins.db &&
	if sqlite3 ins.db "INSERT INTO meta VALUES ('\''hmac_key_id'\'', '\''0123456789abcdef'\'')" 2>err; then exit 1; fi &&
	test_grep "journal meta is written only before the first event" err &&
	test "$(db ins.db "SELECT count(*) FROM meta")" = 0
'

test_expect_success 'a journal of schema 2 gets the guard when opened; dropped, verify says so' '
	rm -f old.db* && cp plain.db old.db && v2 old.db &&
	cairn verify --journal old.db >out &&
	test_grep "chain ok, " out &&
	test "$(db old.db "PRAGMA user_version")" = 3 &&
	test "$(db old.db "SELECT count(*) FROM sqlite_master WHERE name = '\''meta_no_insert'\''")" = 1 &&
	db old.db "DROP TRIGGER meta_no_insert" &&
	test_must_fail_with 1 cairn verify --journal old.db >out &&
	echo "journal old.db: chain ok but altered: its trigger '\''meta_no_insert'\'' is missing (an append-only trigger was dropped, as one does to edit what it guards)" >expect &&
	test_cmp expect out
'

test_done
