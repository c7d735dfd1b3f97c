#!/bin/bash
# t0049-readonly-journal: a journal cairn cannot write. A copy on a
# read-only file system (an archive, a snapshot) is read by the commands
# that only read, verify included; the commands that write say why they
# cannot, and so does a reader that SQLite cannot give its -shm file; a
# full disk stops a run where the journal stops, to be resumed.
# Needs root: it mounts a tmpfs read-only and runs cairn as nobody.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || test_skip_all 'needs root (mount, setpriv)'
command -v setpriv >/dev/null 2>&1 || test_skip_all 'setpriv is not installed (util-linux)'
mkdir "$TRASH/ro"
mount -t tmpfs -o size=8m,mode=0755 cairn-test "$TRASH/ro" 2>/dev/null ||
	test_skip_all 'cannot mount a tmpfs here'
# the mount goes before the library removes the trash, whatever happens
trap '_rc=$?; umount -l "$TRASH/ro" "$TRASH/full" 2>/dev/null; (exit $_rc); _cairn_test_exit' EXIT

# ro_copy [SQL]: ro/ holds a fresh read-only mount with a copy of the
# journal, edited by SQL first when given; "before" gets its sha256.
ro_copy() {
	umount "$TRASH/ro" &&
	mount -t tmpfs -o size=8m,mode=0755 cairn-test "$TRASH/ro" &&
	mkdir ro/.cairn &&
	cp .cairn/journal.db ro/.cairn/ &&
	if [ -n "${1:-}" ]; then sqlite3 ro/.cairn/journal.db "$1"; fi &&
	sha256sum ro/.cairn/journal.db >before &&
	mount -o remount,ro "$TRASH/ro"
}

write_workflow app.yaml <<\EOF
cairn: 1
name: app
start: deploy
states:
  deploy:
    do: exec
    with: { argv: [/bin/true] }
    undo: { do: exec, with: { argv: [/bin/true] } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: a journal of one run, copied to a read-only mount' '
	cairn run app.yaml >out &&
	cairn history --json --limit 1 | jq -r "if type == \"array\" then .[0].id else .id end" >run-id &&
	test -s run-id &&
	mkdir ro/.cairn &&
	cp .cairn/journal.db ro/.cairn/ &&
	test_path_is_missing ro/.cairn/journal.db-wal &&
	mount -o remount,ro "$TRASH/ro" &&
	sha256sum ro/.cairn/journal.db >before
'

test_expect_success 'verify reads the read-only copy: chain ok, exit 0' '
	(cd ro && cairn verify) >out 2>err &&
	grep -q "^journal $TRASH/ro/.cairn/journal.db: chain ok, 8 events," out &&
	test_cmp /dev/null err
'

test_expect_success 'status, history, show, export and report read it' '
	run=$(cat run-id) &&
	(cd ro && cairn status) >out &&
	grep -q "^app " out &&
	(cd ro && cairn history --json) >out &&
	jq -e "(if type == \"array\" then .[0] else . end).status == \"succeeded\"" out &&
	(cd ro && cairn show "$run" --json) >out &&
	jq -e "[.events[] | select(.kind == \"run.finished\")] | length == 1" out &&
	(cd ro && cairn export) >out &&
	grep -q "$run" out &&
	(cd ro && cairn report -o "$TRASH/report.html") &&
	grep -q "$run" report.html &&
	(cd ro && cairn rollback "$run" --dry-run) >out &&
	grep -q "nothing was changed (dry run)" out
'

test_expect_success 'a tampered read-only copy is still found out: exit 1' '
	ro_copy "DROP TRIGGER events_no_update; UPDATE events SET state = '\''x'\'' WHERE seq = 3" &&
	test_must_fail_with 1 env -C ro "$CAIRN_BIN" verify >out &&
	grep -q "chain broken at event 3" out
'

test_expect_success 'run and resume on it: exit 2, one line that says why, file unchanged' '
	ro_copy &&
	test_must_fail_with 2 env -C ro "$CAIRN_BIN" run "$TRASH/app.yaml" 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep -q "^cairn: cannot write journal .*ro/.cairn/journal.db. or the files SQLite keeps beside it (.*hint: run cairn as the journal.s owner on a writable file system; status, history, show, export, report and verify only read it)$" err &&
	test_must_fail_with 2 env -C ro "$CAIRN_BIN" resume "$(cat run-id)" 2>err &&
	grep -q "^cairn: cannot write journal " err &&
	sha256sum ro/.cairn/journal.db >after &&
	test_cmp before after
'

test_expect_success 'a reader SQLite cannot give its -shm: exit 2, one line with the way out' '
	umount "$TRASH/ro" &&
	mkdir shared &&
	cp -p .cairn/journal.db shared/ &&
	chmod 755 shared "$TRASH" "$CAIRN_TEST_BASE" &&
	chmod 644 shared/journal.db &&
	# what a read by the owner leaves beside it: a -shm only the owner may use
	: >shared/journal.db-wal &&
	head -c 32768 /dev/zero >shared/journal.db-shm &&
	chmod 600 shared/journal.db-wal shared/journal.db-shm &&
	test_must_fail_with 2 setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$CAIRN_BIN" verify --journal "$TRASH/shared/journal.db" >out 2>err &&
	test_cmp /dev/null out &&
	test "$(wc -l <err)" = 1 &&
	grep -q "^cairn: cannot read journal .*shared/journal.db.: SQLite must write .*shared/journal.db-shm. beside it even to read it, and cannot (hint: run cairn as the journal.s owner, or copy the journal to a folder you can write and pass --journal)$" err
'

# A journal whose disk is full. Before a run starts (its lock, its
# run.started): exit 2, nothing journaled, no run folder left behind.
# While a step runs (the step itself fills the disk): its end cannot be
# journaled, so the run stops as interrupted, exit 3, and resume goes on
# once there is room.
write_workflow fill.yaml <<\EOF
cairn: 1
name: fill
start: fill
states:
  fill:
    do: exec
    with: { argv: [sh, -c, "dd if=/dev/zero of=filler bs=64k 2>/dev/null; touch filled"] }
    next: after
  after:
    do: exec
    with: { argv: [touch, after] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a full disk: a run that cannot start exits 2; one whose step filled it stops, exit 3, and resumes' '
	mkdir full &&
	mount -t tmpfs -o size=2m cairn-test "$TRASH/full" &&
	cairn run app.yaml --journal full/j.db >out &&
	runs_before=$(ls full/runs | wc -l) &&
	{ dd if=/dev/zero of=full/filler bs=64k 2>/dev/null || :; } &&
	test_must_fail_with 2 cairn run app.yaml --journal full/j.db >out 2>err &&
	test_grep "database or disk is full\|No space left on device" err &&
	test "$(wc -l <err)" = 1 &&
	test "$(ls full/runs | wc -l)" = "$runs_before" &&
	rm full/filler &&
	cd full &&
	test_must_fail_with 3 "$CAIRN_BIN" run ../fill.yaml --journal j.db >out 2>err &&
	test_path_is_file filled &&
	test_path_is_missing after &&
	test_grep "^run [0-9A-Z]* stopped: the journal could not record that fill succeeded (.*database or disk is full.*), and nothing was undone; resume will ask about it; continue it with .cairn resume [0-9A-Z]*.$" out &&
	run=$(sed -n "s/^run \([0-9A-Z]*\) stopped: .*/\1/p" out) &&
	rm filler &&
	"$CAIRN_BIN" verify --journal j.db >out &&
	test_must_fail_with 3 "$CAIRN_BIN" resume "$run" --journal j.db >out &&
	"$CAIRN_BIN" resume "$run" --journal j.db --assume succeeded >out &&
	test_path_is_file after &&
	cd .. &&
	umount "$TRASH/full"
'

test_done
