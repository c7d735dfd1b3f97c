#!/bin/bash
# t0055-step-logs: a step's log that cannot be written as it should. A
# state name too long for a file name still gets its own log; a log cut
# short or never made (a full disk, no inode left in the run folder) fails
# no step, and is said: on the step's line, in the failure message, in the
# journal (log_error) and by show --logs, which then prints the journal's
# last lines. The mounts need root; the long names do not.
# shellcheck disable=SC2016 # SQL in single quotes
. "$(dirname "$0")/lib.sh"

long_a=$(printf "a%.0s" $(seq 1 250))
long_b=${long_a}b1
long_c=${long_a}c2
plain=$(printf "p%.0s" $(seq 1 200))
{
	printf "cairn: 1\nname: names\nstart: %s\nstates:\n" "$long_b"
	printf "  %s:\n    do: exec\n    with: { argv: [sh, -c, \"echo said-b\"] }\n    next: %s\n" "$long_b" "$long_c"
	printf "  %s:\n    do: exec\n    with: { argv: [sh, -c, \"echo said-c\"] }\n    next: %s\n" "$long_c" "$plain"
	printf "  %s:\n    do: exec\n    with: { argv: [sh, -c, \"echo said-p; exit 3\"] }\n    next: done\n" "$plain"
	printf "  done: { succeed: true }\n"
} >names.yaml
# each test in its own folder: a journal found in a parent would be used
mkdir names full
mv names.yaml names/

# A name of 201 bytes or more: its first 183 bytes, '~' and 16 hex digits
# of its SHA-256, so two long names that share a beginning keep two logs,
# each under the file system's 255 bytes; one of 200 keeps its name.
test_expect_success 'a state name too long for a file name still gets its own log' '
	cd names &&
	test_must_fail_with 1 cairn run names.yaml >out 2>&1 &&
	dir=.cairn/runs/$(last_run) &&
	hb=$(printf "%s" "$long_b" | sha256sum | cut -c1-16) &&
	hc=$(printf "%s" "$long_c" | sha256sum | cut -c1-16) &&
	fb="$dir/$(printf "a%.0s" $(seq 1 183))~$hb.log" &&
	fc="$dir/$(printf "a%.0s" $(seq 1 183))~$hc.log" &&
	test_grep "said-b" "$fb" &&
	test_grep "said-c" "$fc" &&
	test_grep "said-p" "$dir/$plain.log" &&
	test "$(ls "$dir" | wc -l)" = 3 &&
	test_grep "(log: $TRASH/names/$dir/$plain.log)" out &&
	cairn show "$(last_run)" --logs >show &&
	test_grep "| --- action attempt 1 ---" show &&
	test_grep "| said-b" show &&
	test_grep "| said-c" show &&
	test_grep "| said-p" show
'

[ "$(id -u)" = 0 ] || { test_skip 'full disks' 'needs root (mount)'; test_done; }
mkdir -p full/.cairn/runs
mount -t tmpfs -o size=64k,mode=0700 cairn-test "$TRASH/full/.cairn/runs" 2>/dev/null || {
	test_skip 'full disks' 'cannot mount a tmpfs here'
	test_done
}
# the mount goes before the library removes the trash, whatever happens
trap '_rc=$?; umount -l "$TRASH/full/.cairn/runs" 2>/dev/null; (exit $_rc); _cairn_test_exit' EXIT

write_workflow full/big.yaml <<\EOF
cairn: 1
name: big
start: a
states:
  a:
    do: exec
    with: { argv: [sh, -c, "head -c 300000 /dev/zero | tr '\\0' x; echo; echo END-OF-A"] }
    next: b
  b:
    do: exec
    with: { argv: [sh, -c, "head -c 300000 /dev/zero | tr '\\0' y; echo; echo END-OF-B; exit 4"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a log cut short by a full disk fails no step, and is said' '
	(cd full && test_must_fail_with 1 cairn run big.yaml) >out 2>&1 &&
	test_grep "^✓ a [0-9.]*m*s (log incomplete: No space left on device)$" out &&
	test_grep "^✗ b failed: exited with status 4: END-OF-B ([0-9.]*m*s) (log incomplete: No space left on device)$" out &&
	run=$(last_run full/.cairn/journal.db) &&
	test_grep "^run $run failed in .*: state .b. failed: exited with status 4: END-OF-B (log: $TRASH/full/.cairn/runs/$run/b.log, incomplete: No space left on device); rolled back: nothing to undo$" out &&
	test "$(sqlite3 full/.cairn/journal.db "SELECT group_concat(json_extract(payload, \"\$.log_error\"), \"|\")
	        FROM events WHERE kind = \"action.finished\" ORDER BY seq")" = "No space left on device|No space left on device" &&
	! grep -q END-OF-A "full/.cairn/runs/$run/a.log" &&
	(cd full && cairn show "$run" --logs) >show &&
	test "$(grep -c "! log incomplete (No space left on device): its last lines, from the journal" show)" = 2 &&
	test_grep "| END-OF-A" show &&
	test_grep "| END-OF-B" show &&
	(cd full && cairn show "$run" --json --logs) >show.json &&
	test "$(jq -r ".states[] | select(.path == \"b\") | .log_error" show.json)" = "No space left on device" &&
	test "$(jq -r ".states[] | select(.path == \"b\") | .log_tail" show.json)" = END-OF-B
'

# No inode for a log file at all: the message says there is none and why.
# sql.migrate failed on such a log before it tried anything.
write_workflow full/sql.yaml <<\EOF
cairn: 1
name: sq
start: m
states:
  m:
    do: sql.migrate
    with:
      dir: mig
      db: "postgres://cairn@127.0.0.1:1/app?sslmode=disable"
    next: done
  done: { succeed: true }
EOF
mkdir full/mig
echo "CREATE TABLE t (x int);" >full/mig/0001_t.up.sql
echo "DROP TABLE t;" >full/mig/0001_t.down.sql

test_expect_success 'no inode for a log: the step still runs, and the failure says there is no log' '
	umount "$TRASH/full/.cairn/runs" &&
	mount -t tmpfs -o size=64k,nr_inodes=2,mode=0700 cairn-test "$TRASH/full/.cairn/runs" &&
	(cd full && test_must_fail_with 1 cairn run big.yaml) >out 2>&1 &&
	run=$(last_run full/.cairn/journal.db) &&
	test_grep "^✓ a [0-9.]*m*s (log incomplete: No space left on device)$" out &&
	test_grep "state .b. failed: exited with status 4: END-OF-B (no log: No space left on device); rolled back" out &&
	test "$(ls "full/.cairn/runs/$run")" = ""
'

test_expect_success 'no inode for a log: sql.migrate still runs (psql), and says so' '
	command -v psql >/dev/null 2>&1 || { echo "# psql is not installed: skipped" >&2; exit 0; }
	umount "$TRASH/full/.cairn/runs" &&
	mount -t tmpfs -o size=64k,nr_inodes=2,mode=0700 cairn-test "$TRASH/full/.cairn/runs" &&
	(cd full && test_must_fail_with 1 cairn run sql.yaml) >out 2>&1 &&
	! grep -q "cannot open log" out &&
	test_grep "state .m. failed: cannot read the history table .cairn_migrations. in .postgres://cairn@127.0.0.1:1/app?sslmode=disable.: .*Connection refused (no log: No space left on device)" out
'

test_done
