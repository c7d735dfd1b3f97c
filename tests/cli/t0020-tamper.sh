#!/bin/bash
# t0020-tamper: an attacker with the sqlite3 shell edits the journal the
# way the issue lists (edit, delete, swap, truncate, edit and recompute the
# chain); `cairn verify` must catch the first three always, truncation with
# an anchor, and a recomputed chain with a key. Keyed journals: who may
# write to them, and key files.
#
# The recomputed chain is written by tests/helpers/rehash ($CAIRN_REHASH), a
# tiny program built by meson that links libcairn's journal_event_hash: it
# hashes exactly as cairn does (length-prefixed fields, canonical payload)
# without a second implementation in shell that could drift from it.
. "$(dirname "$0")/lib.sh"

: "${CAIRN_REHASH:=$CAIRN_SRCDIR/build/tests/rehash}"

# tampered NAME JOURNAL SQL: a copy of JOURNAL as NAME.db, changed by SQL
# with the append-only triggers dropped, as an attacker would.
tampered() {
	cp "$2" "$1.db" &&
	sqlite3 "$1.db" "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; $3"
}

# broken_at SEQ CMD...: CMD exits 1 and its stdout names event SEQ first.
broken_at() {
	local seq=$1
	shift
	test_must_fail_with 1 "$@" >out 2>err &&
	test_cmp /dev/null err &&
	test_grep "chain broken at event $seq: " out
}

# retrigger JOURNAL: the append-only triggers put back after an edit, as a
# careful attacker would (verify reports them missing).
retrigger() {
	sqlite3 "$1" "CREATE TRIGGER events_no_update BEFORE UPDATE ON events
		BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
		CREATE TRIGGER events_no_delete BEFORE DELETE ON events
		BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;"
}

# dump JOURNAL: the journal's contents, to prove a refused command wrote
# nothing (a logical dump, indifferent to WAL checkpoints).
dump() { sqlite3 "$1" .dump; }

write_workflow deploy.yaml <<\EOF
cairn: 1
name: deploy
params:
  note: { default: "a, \"quoted\" note" }
start: build
states:
  build:
    do: exec
    with: { argv: [/bin/true] }
    next: ship
  ship:
    do: exec
    with: { argv: [sh, -c, "echo shipped"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: three runs in a plain and in a keyed journal' '
	head -c 32 /dev/urandom >key && chmod 600 key &&
	head -c 48 /dev/urandom >other.key && chmod 600 other.key &&
	for i in 1 2 3; do
		cairn run deploy.yaml --journal plain.db >/dev/null || exit 1
		cairn run deploy.yaml --journal keyed.db --key-file key >/dev/null || exit 1
	done &&
	n=$(sqlite3 plain.db "SELECT count(*) FROM events") &&
	test "$n" -ge 20 &&
	echo "$n" >count &&
	test "$(sqlite3 keyed.db "SELECT count(*) FROM events")" = "$n" &&
	test "$(sqlite3 keyed.db "SELECT count(*) FROM meta")" = 1 &&
	test "$(sqlite3 plain.db "SELECT count(*) FROM meta")" = 0
'

test_expect_success 'untouched journals verify: exit 0, chain ok' '
	cairn verify --journal plain.db >out &&
	test_grep "chain ok, $(cat count) events" out &&
	cairn verify --journal keyed.db --key-file key >out &&
	test_grep "chain ok (keyed), $(cat count) events" out &&
	CAIRN_KEY_FILE=key cairn verify --journal keyed.db >out &&
	test_grep "chain ok (keyed)" out
'

test_expect_success 'the journal records the key id, never the key' '
	id=$(sha256sum key | cut -c1-16) &&
	test "$(sqlite3 keyed.db "SELECT value FROM meta WHERE name = '\''hmac_key_id'\''")" = "$id" &&
	hex=$(od -An -tx1 key | tr -d " \n") &&
	od -An -tx1 keyed.db | tr -d " \n" >dbhex &&
	test_grep ! "$hex" dbhex
'

for j in plain keyed; do
	if [ $j = keyed ]; then K="--key-file key"; else K=; fi

	test_expect_success "$j: one event's payload changed: names that event" '
		tampered edit-$j $j.db "UPDATE events SET payload = '\''{\"x\":1}'\'' WHERE seq = 5" &&
		broken_at 5 cairn verify --journal edit-$j.db $K &&
		test_grep "the event was edited" out
	'

	test_expect_success "$j: one event deleted: names the missing seq" '
		tampered del-$j $j.db "DELETE FROM events WHERE seq = 7" &&
		broken_at 7 cairn verify --journal del-$j.db $K &&
		test_grep "event 7 is missing" out
	'

	test_expect_success "$j: two events swapped (kind and payload): names the first" '
		tampered swap-$j $j.db "
			CREATE TEMP TABLE t AS SELECT seq, kind, payload FROM events WHERE seq IN (4, 9);
			UPDATE events SET kind = (SELECT kind FROM t WHERE seq = 9),
			                  payload = (SELECT payload FROM t WHERE seq = 9) WHERE seq = 4;
			UPDATE events SET kind = (SELECT kind FROM t WHERE seq = 4),
			                  payload = (SELECT payload FROM t WHERE seq = 4) WHERE seq = 9;" &&
		test "$(sqlite3 swap-$j.db "SELECT kind FROM events WHERE seq = 4")" = \
		     "$(sqlite3 $j.db "SELECT kind FROM events WHERE seq = 9")" &&
		broken_at 4 cairn verify --journal swap-$j.db $K
	'

	# The last run's run.finished goes with them: its row says succeeded.
	test_expect_success "$j: the newest events deleted: the runs row says what is gone" '
		n=$(cat count) &&
		tampered cut-$j $j.db "DELETE FROM events WHERE seq > $n - 4" &&
		test_must_fail_with 1 cairn verify --journal cut-$j.db $K >out &&
		test_grep "chain broken at event [0-9]*: run [0-9A-Z]*'\''s row says status '\''succeeded'\'' but its event [0-9]* says '\''running'\'' (the runs table was edited, or events were removed)" out
	'

	# With the row made to match, only an anchor kept elsewhere shows it.
	test_expect_success "$j: the newest events deleted, the row fixed: missed alone, caught with an anchor" '
		cairn verify --journal $j.db $K --write-anchor $j.anchor >/dev/null &&
		n=$(cat count) &&
		tampered trunc-$j $j.db "DELETE FROM events WHERE seq > $n - 4;
			UPDATE runs SET status = '\''running'\'' WHERE status = '\''succeeded'\''
			AND id = (SELECT run_id FROM events ORDER BY seq DESC LIMIT 1)" &&
		retrigger trunc-$j.db &&
		cairn verify --journal trunc-$j.db $K >out &&
		test_grep "chain ok" out &&
		broken_at $((n - 3)) cairn verify --journal trunc-$j.db $K --anchor $j.anchor &&
		test_grep "the journal ends at seq $((n - 4)) but the anchor from 20[0-9-]*T[0-9:]*Z says seq $n had hash [0-9a-f]\{64\}" out
	'

	test_expect_success "$j: a run's status edited in its row is caught" '
		tampered row-$j $j.db "UPDATE runs SET status = '\''failed'\'' WHERE rowid = 2" &&
		test_must_fail_with 1 cairn verify --journal row-$j.db $K >out &&
		test_grep "row says status '\''failed'\'' but its event [0-9]* says '\''succeeded'\'' (the runs table was edited" out
	'

	test_expect_success "$j: a run's release edited is caught" '
		tampered rel-$j $j.db "UPDATE runs SET release = '\''6.6.6'\''" &&
		test_must_fail_with 1 cairn verify --journal rel-$j.db $K >out &&
		test_grep "row says release '\''6.6.6'\'' but its event [0-9]* says" out
	'
done

# What history, show, status and report print comes from the runs row:
# every field the row shares with run.started is held to it.
for f in "actor = 'bob@elsewhere'" "parent = '01ABCDEFGHJKMNPQRSTVWXYZ00'" \
	"params = '{\"note\":\"x\"}'" "file = '/etc/other.yaml'" \
	"file_sha256 = 'deadbeef'" "created_ms = created_ms + 100000"; do
	name=${f%% =*}
	test_expect_success "a run's $name edited in its row is caught" '
		tampered field-$name plain.db "UPDATE runs SET $f WHERE rowid = 2" &&
		test_must_fail_with 1 cairn verify --journal field-$name.db >out &&
		test_grep "chain broken at event [0-9]*: run [0-9A-Z]*'\''s row \(says $name\|has $name\)" out
	'
done

test_expect_success 'a run row deleted: its events, left without a row, are caught' '
	tampered norow plain.db "DELETE FROM runs WHERE rowid = 2" &&
	first=$(sqlite3 plain.db "SELECT min(seq) FROM events WHERE run_id = (SELECT id FROM runs WHERE rowid = 2)") &&
	id=$(sqlite3 plain.db "SELECT id FROM runs WHERE rowid = 2") &&
	broken_at $first cairn verify --journal norow.db &&
	test_grep "event $first belongs to run $id, which has no row in the runs table (the row was deleted)" out
'

test_expect_success 'the newest event renumbered: named as renumbered, not as missing events' '
	n=$(cat count) &&
	tampered renum plain.db "UPDATE events SET seq = seq + 1000 WHERE seq = $n" &&
	broken_at $((n + 1000)) cairn verify --journal renum.db &&
	test_grep "event $((n + 1000)) comes right after event $((n - 1)) in the chain (its prev_hash is that event.s hash): its seq was changed from $n$" out
'

test_expect_success 'an event in the middle renumbered: named as renumbered too' '
	m=$(( $(cat count) / 2 )) &&
	tampered renum-mid plain.db "UPDATE events SET seq = seq + 1000 WHERE seq = $m" &&
	broken_at $((m + 1000)) cairn verify --journal renum-mid.db &&
	test_grep "event $((m + 1000)) comes right after event $((m - 1)) in the chain (its prev_hash is that event.s hash): its seq was changed from $m$" out
'

test_expect_success 'an event deleted in the middle is still named as missing' '
	m=$(( $(cat count) / 2 )) &&
	tampered gone-mid plain.db "DELETE FROM events WHERE seq = $m" &&
	broken_at $m cairn verify --journal gone-mid.db &&
	test_grep "event $m is missing$" out
'

# One bit flipped inside an index entry (runs_by_workflow, which status
# and history --workflow read): every event still hashes and chains, and
# every run row matches its events, but SQLite reads the file otherwise
# through that index. verify asks SQLite too.
test_expect_success 'a damaged index, chain intact: verify says the file is damaged, exit 1' '
	write_workflow small.yaml <<-\EOF &&
	cairn: 1
	name: small
	start: a
	states:
	  a: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	for i in 1 2 3; do cairn run small.yaml --journal damaged.db >/dev/null || exit 1; done &&
	cp damaged.db whole.db &&
	page=$(sqlite3 damaged.db "SELECT rootpage FROM sqlite_master WHERE name = '\''runs_by_workflow'\''") &&
	python3 - damaged.db "$page" <<-\PY &&
	import sys
	path, page = sys.argv[1], int(sys.argv[2])
	d = bytearray(open(path, "rb").read())
	size = int.from_bytes(d[16:18], "big") or 65536
	at = (page - 1) * size
	hit = d.find(b"small", at, at + size)
	assert hit >= 0, "no entry of the workflow in the index page"
	d[hit + 4] ^= 1
	open(path, "wb").write(d)
	PY
	test_must_fail_with 1 cairn verify --journal damaged.db >out 2>err &&
	test_grep "chain ok but altered: its SQLite file is damaged: " out &&
	cairn verify --journal whole.db >out
'

test_expect_success 'append-only triggers dropped, or a table gone: verify says so, exit 1' '
	cp plain.db notrig.db &&
	sqlite3 notrig.db "DROP TRIGGER events_no_update" &&
	test_must_fail_with 1 cairn verify --journal notrig.db >out &&
	test_grep "^journal notrig.db: chain ok but altered: its trigger .events_no_update. is missing (an append-only trigger was dropped, as one does to edit what it guards)$" out &&
	test_must_fail_with 1 cairn verify --json --journal notrig.db >out.json &&
	test "$(jq -r .ok out.json)" = false &&
	test "$(jq -r .first_bad_seq out.json)" = null &&
	cp plain.db nolocks.db &&
	sqlite3 nolocks.db "DROP TABLE locks" &&
	test_must_fail_with 1 cairn verify --journal nolocks.db >out &&
	test_grep "its table .locks. is missing (a table was dropped)" out
'

test_expect_success 'verify --json ends its errors with a result line, as run does' '
	test_must_fail_with 2 cairn verify --json --journal keyed.db >out 2>err &&
	test "$(jq -r .kind out)" = result &&
	test "$(jq -r .status out)" = error &&
	test "$(jq -r .exit_code out)" = 2 &&
	test_grep "is keyed" out &&
	echo junk >notajournal.db &&
	test_must_fail_with 2 cairn verify --json --journal notajournal.db >out 2>err &&
	test "$(jq -r .exit_code out)" = 2
'

test_expect_success 'an anchor of another journal: the mismatch says whose anchor it is' '
	cairn run deploy.yaml --journal other.db >/dev/null &&
	test_must_fail_with 1 cairn verify --journal other.db --anchor plain.anchor >out &&
	test_grep "(the anchor was written for journal '\''$TRASH/plain.db'\'', not this one)$" out &&
	(mkdir -p sub && cd sub && cairn verify --journal ../plain.db --anchor ../plain.anchor >../out) &&
	test_grep "anchor ok" out
'

test_expect_success 'plain: an edit with the chain recomputed passes (the limit of no key)' '
	tampered rehash-plain plain.db "UPDATE events SET payload = '\''{\"x\":1}'\'' WHERE seq = 5" &&
	"$CAIRN_REHASH" rehash-plain.db 5 &&
	retrigger rehash-plain.db &&
	cairn verify --journal rehash-plain.db >out &&
	test_grep "chain ok" out
'

test_expect_success 'keyed: an edit with the chain recomputed is caught at that event' '
	tampered rehash-keyed keyed.db "UPDATE events SET payload = '\''{\"x\":1}'\'' WHERE seq = 5" &&
	"$CAIRN_REHASH" rehash-keyed.db 5 &&
	broken_at 5 cairn verify --journal rehash-keyed.db --key-file key
'

test_expect_success 'keyed: key record removed, whole chain recomputed: caught at 1 with the key' '
	tampered dekeyed keyed.db "DROP TRIGGER meta_no_delete; DELETE FROM meta" &&
	"$CAIRN_REHASH" dekeyed.db &&
	broken_at 1 cairn verify --journal dekeyed.db --key-file key &&
	test_grep "the journal records no key" out
'

test_expect_success 'an anchor whose event has another hash: exit 1 naming it' '
	jq ".hash = \"$(printf %064d 0)\"" plain.anchor >bad.anchor &&
	seq=$(jq .seq plain.anchor) &&
	broken_at "$seq" cairn verify --journal plain.db --anchor bad.anchor &&
	test_grep "event $seq has hash [0-9a-f]* but the anchor from" out
'

test_expect_success 'an anchor is JSON with seq, hash and key id, mode 0600' '
	test "$(stat -c %a keyed.anchor)" = 600 &&
	test "$(jq -r .seq keyed.anchor)" = "$(cat count)" &&
	test "$(jq -r .hash keyed.anchor)" = "$(sqlite3 keyed.db "SELECT hash FROM events ORDER BY seq DESC LIMIT 1")" &&
	test "$(jq -r .key_id keyed.anchor)" = "$(sha256sum key | cut -c1-16)" &&
	test "$(jq -r .key_id plain.anchor)" = null
'

test_expect_success 'a missing or malformed anchor: one line, exit 2' '
	test_must_fail_with 2 cairn verify --journal plain.db --anchor nosuch.anchor >out 2>err &&
	test_grep "^cairn: cannot read anchor '\''nosuch.anchor'\''" err &&
	echo "{\"seq\": \"x\"}" >junk.anchor &&
	test_must_fail_with 2 cairn verify --journal plain.db --anchor junk.anchor >out 2>err &&
	test_grep "^cairn: '\''junk.anchor'\'' is not a cairn anchor" err &&
	test $(wc -l <err) = 1
'

# An empty journal is a prefix of every journal: an anchor of one would
# pass against any journal and vouch for nothing.
test_expect_success 'an anchor of an empty journal is neither written nor accepted: exit 2' '
	: >empty.db &&
	test_must_fail_with 2 cairn verify --journal empty.db --write-anchor empty.anchor >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: anchor: the journal '\''empty.db'\'' is empty, and an anchor of it would vouch for no event (hint: write one once it holds a run)" >expect &&
	test_cmp expect err &&
	test_path_is_missing empty.anchor &&
	echo "{\"seq\": 0, \"hash\": \"\"}" >zero.anchor &&
	test_must_fail_with 2 cairn verify --journal plain.db --anchor zero.anchor >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: anchor '\''zero.anchor'\'' is of an empty journal and vouches for no event (hint: write one with '\''cairn verify --write-anchor FILE'\'' once the journal holds a run)" >expect &&
	test_cmp expect err
'

test_expect_success 'a keyed journal verified without its key: exit 2, says what to do' '
	test_must_fail_with 2 cairn verify --journal keyed.db >out 2>err &&
	echo "cairn: journal '\''keyed.db'\'' is keyed (key id $(sha256sum key | cut -c1-16)): verify it with its key (--key-file FILE or CAIRN_KEY_FILE)" >expect &&
	test_cmp expect err
'

test_expect_success 'a keyed journal verified with another key: exit 1 at event 1' '
	broken_at 1 cairn verify --journal keyed.db --key-file other.key &&
	test_grep "is not the journal'\''s" out
'

test_expect_success 'writing to a keyed journal without its key or with another: refused, nothing written' '
	dump keyed.db >before &&
	test_must_fail_with 2 cairn run deploy.yaml --journal keyed.db >out 2>err &&
	test_grep "^cairn: journal '\''keyed.db'\'' is keyed (key id [0-9a-f]*): pass its key with --key-file FILE or CAIRN_KEY_FILE$" err &&
	test_must_fail_with 2 cairn run deploy.yaml --journal keyed.db --key-file other.key >out 2>err &&
	test_grep "^cairn: the key (id [0-9a-f]*) is not the key of journal '\''keyed.db'\''" err &&
	run=$(sqlite3 keyed.db "SELECT id FROM runs LIMIT 1") &&
	test_must_fail_with 2 cairn rollback $run --journal keyed.db >out 2>err &&
	test_grep "is keyed" err &&
	test $(wc -l <err) = 1 &&
	dump keyed.db >after &&
	test_cmp before after
'

test_expect_success 'a key for an unkeyed journal that has events: refused, nothing written' '
	dump plain.db >before &&
	test_must_fail_with 2 cairn run deploy.yaml --journal plain.db --key-file key >out 2>err &&
	test_grep "^cairn: journal '\''plain.db'\'' already holds events without a key" err &&
	test $(wc -l <err) = 1 &&
	dump plain.db >after &&
	test_cmp before after
'

test_expect_success 'CAIRN_KEY_FILE keys a run like --key-file' '
	CAIRN_KEY_FILE=key cairn run deploy.yaml --journal keyed.db >/dev/null &&
	cairn verify --journal keyed.db --key-file key >out &&
	test_grep "chain ok (keyed)" out
'

test_expect_success 'a key file others may read: refused like ssh, no journal created' '
	head -c 32 /dev/urandom >open.key && chmod 640 open.key &&
	test_must_fail_with 2 cairn run deploy.yaml --journal new.db --key-file open.key >out 2>err &&
	echo "cairn: key file '\''open.key'\'' is accessible by group or others (mode 0640): chmod 600 it" >expect &&
	test_cmp expect err &&
	test_path_is_missing new.db
'

test_expect_success 'a key file too short, or missing: refused, no journal created' '
	head -c 31 /dev/urandom >short.key && chmod 600 short.key &&
	test_must_fail_with 2 cairn run deploy.yaml --journal new.db --key-file short.key >out 2>err &&
	test_grep "^cairn: key file '\''short.key'\'' holds 31 bytes, a key is 32 to 4096 bytes" err &&
	test_must_fail_with 2 cairn run deploy.yaml --journal new.db --key-file nosuch.key >out 2>err &&
	test_grep "^cairn: cannot open key file '\''nosuch.key'\'': No such file or directory$" err &&
	test_path_is_missing new.db
'

# ---- the promotion gates read the runs table only as far as the events agree

write_workflow envs.yaml <<\EOF
cairn: 1
name: envs
params:
  release: { default: "1.0.0" }
  fail: { default: "no" }
environments:
  dev: { vars: { name: dev } }
  staging: { vars: { name: staging }, after: dev }
  prod: { vars: { name: prod }, after: staging, approvals: 1 }
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [sh, -c, "test {{ params.fail }} = no && echo {{ params.release }} >out-{{ vars.name }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a failed run made succeeded in its row does not open the after gate' '
	test_must_fail_with 1 cairn run envs.yaml --journal gate.db --env dev --set fail=yes >out &&
	test_grep "state '\''deploy'\'' failed: exited with status 1" out &&
	sqlite3 gate.db "UPDATE runs SET status = '\''succeeded'\'' WHERE env = '\''dev'\''" &&
	dump gate.db >before &&
	test_must_fail_with 1 cairn promote envs.yaml --journal gate.db --to staging --release 1.0.0 >out 2>err &&
	test_grep "^cairn: run [0-9A-Z]*'\''s row says status '\''succeeded'\'' but its event [0-9]* says '\''failed'\'' (the runs table was edited, or events were removed) (hint: '\''cairn verify'\'' checks the whole journal)$" err &&
	test_path_is_missing out-staging &&
	dump gate.db >after &&
	test_cmp before after
'

test_expect_success 'an approval moved to another release in its row does not count' '
	rm -f gate.db* &&
	for r in 1.0.0 6.6.6; do
		cairn run envs.yaml --journal gate.db --env dev --set release=$r >/dev/null &&
		cairn promote envs.yaml --journal gate.db --to staging --release $r >/dev/null || exit 1
	done &&
	CAIRN_ACTOR=alice cairn approve prod --journal gate.db --workflow envs --release 1.0.0 >/dev/null &&
	sqlite3 gate.db "UPDATE runs SET release = '\''6.6.6'\'' WHERE status = '\''approved'\''" &&
	test_must_fail_with 5 cairn promote envs.yaml --journal gate.db --to prod --release 6.6.6 >out 2>err &&
	test_grep "needs 1 approval from distinct actors for prod, has 0" err &&
	test_path_is_missing out-prod
'

test_done
