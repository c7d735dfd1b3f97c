#!/bin/bash
# t0004-bad-input: bad files, journals, run ids and a held lock each get a
# one-line error naming what is wrong, the documented exit code, and leave
# the journal exactly as it was (or absent).
. "$(dirname "$0")/lib.sh"

# ---- helpers -----------------------------------------------------------------

# one_line FILE: FILE holds exactly one line.
one_line() {
	local n
	n=$(wc -l <"$1")
	if [ "$n" -ne 1 ]; then
		echo "one_line: $1 has $n lines:"
		cat "$1"
		return 1
	fi
}

# ---- fixtures ----------------------------------------------------------------

write_workflow main/ok.yaml <<\EOF
cairn: 1
name: ok
start: hello
states:
  hello:
    do: exec
    with: { argv: [sh, -c, "echo hello >>ok.txt"] }
    next: done
  done: { succeed: true }
EOF

write_workflow main/malformed.yaml <<\EOF
cairn: 1
name: malformed
start: hello
states:
  hello:
    do: exec
    with: { argv: [sh, -c, "echo hello"]
    next: done
  done: { succeed: true }
EOF

write_workflow main/unknown-key.yaml <<\EOF
cairn: 1
name: unknown-key
start: hello
states:
  hello:
    do: exec
    with: { argv: [/bin/true] }
    nxt: done
  done: { succeed: true }
EOF

write_workflow main/missing-state.yaml <<\EOF
cairn: 1
name: missing-state
start: hello
states:
  hello:
    do: exec
    with: { argv: [/bin/true] }
    next: nowhere
  done: { succeed: true }
EOF

write_workflow main/hold.yaml <<\EOF
cairn: 1
name: hold
start: hold
states:
  hold:
    do: exec
    with: { shell: "echo $$ >hold.pid; sleep 20" }
    idempotent: true
    next: done
  done: { succeed: true }
EOF

echo "these are notes, not a journal" >main/notes.txt
mkdir main/adir fresh

# main/ gets a journal; fresh/ has none, in it or above it.
test_expect_success 'setup: a journal with two runs' '
	cd main &&
	cairn run ok.yaml >out &&
	cairn run ok.yaml >out &&
	q "SELECT count(*) FROM runs" >actual &&
	echo 2 >expect &&
	test_cmp expect actual
'

# same_journal BEFORE AFTER: two journal_snapshot outputs show the same
# database file and an empty or absent -wal. Any other difference (the
# -wal or -shm appearing or going) is noted in $TRASH/side-files, which
# the last test checks.
same_journal() {
	head -n 1 "$1" >"$1.db" &&
	head -n 1 "$2" >"$2.db" &&
	test_cmp "$1.db" "$2.db" &&
	if sed -n 2p "$2" | grep -qv "^absent \|^e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 "; then
		echo "the -wal has content:"
		cat "$2"
		return 1
	fi &&
	if ! cmp -s "$1" "$2"; then
		{ echo "$CMD"; diff "$1" "$2" || :; } >>"$TRASH/side-files"
	fi
}

# check_refused CODE PATTERN CMD...: CMD exits with CODE, prints nothing on
# stdout and one line matching PATTERN on stderr, and leaves the journal
# of the working folder as it was.
check_refused() {
	local code=$1 pattern=$2
	shift 2
	CMD="$*"
	journal_snapshot >snap.before &&
	test_must_fail_with "$code" "$@" >out 2>err &&
	test_cmp /dev/null out &&
	one_line err &&
	test_grep -E -e "$pattern" err &&
	journal_snapshot >snap.after &&
	same_journal snap.before snap.after
}

# ---- workflow files -------------------------------------------------------------

test_expect_success 'a missing workflow file: exit 2, one line naming it' '
	cd main &&
	check_refused 2 "'\''missing\.yaml'\'': No such file or directory$" cairn run missing.yaml &&
	check_refused 2 "'\''missing\.yaml'\'': No such file or directory$" cairn validate missing.yaml
'

test_expect_success 'a missing workflow file in a fresh folder creates no journal' '
	cd fresh &&
	test_must_fail_with 2 cairn run missing.yaml 2>err &&
	one_line err &&
	test_path_is_missing .cairn
'

if [ "$(id -u)" = 0 ]; then
	test_skip 'an unreadable workflow file: exit 2, one line' 'root reads any file'
else
	test_expect_success 'an unreadable workflow file: exit 2, one line' '
		cd main &&
		cp ok.yaml secret.yaml &&
		chmod 000 secret.yaml &&
		check_refused 2 "secret\.yaml" cairn run secret.yaml
	'
fi

test_expect_success 'a directory given as FILE: exit 2, one line naming it' '
	cd main &&
	check_refused 2 "'\''adir'\'': it is not a file \(a folder\) \(hint: a workflow is a .yaml file, which resume reads again\)$" cairn run adir &&
	check_refused 2 "'\''adir'\'': it is not a file \(a folder\)" cairn validate adir
'

test_expect_success 'malformed YAML: exit 2, FILE:LINE:COL: error:' '
	cd main &&
	check_refused 2 "^malformed\.yaml:8:5: error: malformed YAML: " cairn run malformed.yaml
'

test_expect_success 'an unknown key: exit 2, FILE:LINE:COL: error: with a hint' '
	cd main &&
	check_refused 2 "" cairn run unknown-key.yaml &&
	echo "unknown-key.yaml:8:5: error: unknown key '\''nxt'\'' in state '\''hello'\'' (hint: did you mean '\''next'\''?)" >expect &&
	test_cmp expect err
'

test_expect_success 'a transition to a missing state: exit 2, names it' '
	cd main &&
	check_refused 2 "" cairn run missing-state.yaml &&
	echo "missing-state.yaml:8:11: error: unknown state '\''nowhere'\'' in '\''next'\'' of state '\''hello'\'' (hint: states are hello, done)" >expect &&
	test_cmp expect err
'

test_expect_success 'bad workflows in a fresh folder create no journal' '
	cd fresh &&
	for f in missing malformed unknown-key missing-state; do
		test_must_fail_with 2 cairn run ../main/$f.yaml 2>err || exit 1
		one_line err || exit 1
	done &&
	test_path_is_missing .cairn
'

# ---- bad options --------------------------------------------------------------------

test_expect_success 'run needs exactly one file' '
	cd main &&
	check_refused 2 "^cairn: run needs one workflow file \(usage: cairn run FILE \[--env NAME\] \[--set NAME=VALUE\]\.\.\. \[--grace DURATION\]\)$" cairn run &&
	check_refused 2 "^cairn: run needs one workflow file " cairn run ok.yaml ok.yaml
'

test_expect_success 'a bad --grace: exit 2, no journal created' '
	cd fresh &&
	test_must_fail_with 2 cairn run ../main/ok.yaml --grace 5x 2>err &&
	echo "cairn: --grace: unknown unit '\''x'\'' in '\''5x'\''" >expect &&
	test_cmp expect err &&
	test_path_is_missing .cairn
'

test_expect_success 'an environment the workflow does not have: exit 2, no journal' '
	cd fresh &&
	test_must_fail_with 2 cairn run ../main/ok.yaml --env prod 2>err &&
	echo "cairn: workflow '\''ok'\'' has no environment '\''prod'\'' (hint: it declares none: leave out --env)" >expect &&
	test_cmp expect err &&
	test_path_is_missing .cairn
'

test_expect_success 'a wrong or missing --env names the environments there are' '
	cd fresh &&
	cat >envs.yaml <<-\EOF &&
	cairn: 1
	name: envs
	environments:
	  dev: {}
	  staging: {}
	  prod: {}
	start: a
	states:
	  a: { succeed: true }
	EOF
	test_must_fail_with 2 cairn run envs.yaml --env qa 2>err &&
	echo "cairn: workflow '\''envs'\'' has no environment '\''qa'\'' (hint: its environments are dev, staging, prod)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn run envs.yaml 2>err &&
	echo "cairn: workflow '\''envs'\'' declares environments: choose one with --env (dev, staging, prod)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn simulate envs.yaml --env qa 2>err &&
	test_grep "its environments are dev, staging, prod" err &&
	test_must_fail_with 2 cairn promote envs.yaml --to qa 2>err &&
	test_grep "its environments are dev, staging, prod" err &&
	test_path_is_missing .cairn
'

# ---- no journal, not a journal ----------------------------------------------------------

test_expect_success 'commands that read a journal, where there is none: exit 2' '
	cd fresh &&
	echo "cairn: no cairn journal here (looked for .cairn/journal.db in this folder and above; hint: run a workflow first, or pass --journal PATH)" >expect &&
	for cmd in history status verify resume "show X" "status X"; do
		test_must_fail_with 2 cairn $cmd >out 2>err || exit 1
		test_cmp /dev/null out || exit 1
		test_cmp expect err || exit 1
	done &&
	test_path_is_missing .cairn
'

test_expect_success '--journal naming a missing file: exit 2, not created' '
	cd main &&
	test_must_fail_with 2 cairn history --journal nope.db 2>err &&
	echo "cairn: no journal at '\''nope.db'\'': No such file or directory" >expect &&
	test_cmp expect err &&
	test_path_is_missing nope.db
'

test_expect_success '--journal naming a text file: exit 2, the file unchanged' '
	cd main &&
	sha256sum notes.txt >before &&
	echo "cairn: '\''notes.txt'\'' is not a cairn journal (file is not a database; hint: give --journal or CAIRN_JOURNAL a journal'\''s path, or move the file away)" >expect &&
	for cmd in history verify "show X" "status X" resume "run ok.yaml"; do
		test_must_fail_with 2 cairn $cmd --journal notes.txt >out 2>err || exit 1
		test_cmp expect err || exit 1
	done &&
	sha256sum notes.txt >after &&
	test_cmp before after &&
	test_path_is_missing notes.txt-wal &&
	test_path_is_missing runs
'

test_expect_success 'CAIRN_JOURNAL naming a text file: the same' '
	cd main &&
	test_must_fail_with 2 env CAIRN_JOURNAL=notes.txt "$CAIRN_BIN" run ok.yaml 2>err &&
	echo "cairn: '\''notes.txt'\'' is not a cairn journal (file is not a database; hint: give --journal or CAIRN_JOURNAL a journal'\''s path, or move the file away)" >expect &&
	test_cmp expect err &&
	echo "these are notes, not a journal" >expect &&
	test_cmp expect notes.txt
'

test_expect_success '--journal naming a folder: exit 2' '
	cd main &&
	test_must_fail_with 2 cairn history --journal adir 2>err &&
	echo "cairn: '\''adir'\'' is not a cairn journal (not a regular file)" >expect &&
	test_cmp expect err
'

test_expect_success 'another application'\''s SQLite file: exit 2, unchanged' '
	cd main &&
	sqlite3 other.db "CREATE TABLE t (x); INSERT INTO t VALUES (1)" &&
	journal_snapshot other.db >before &&
	echo "cairn: '\''other.db'\'' is not a cairn journal (no cairn schema)" >expect &&
	for cmd in history "run ok.yaml"; do
		test_must_fail_with 2 cairn $cmd --journal other.db 2>err || exit 1
		test_cmp expect err || exit 1
	done &&
	journal_snapshot other.db >after &&
	test_cmp before after
'

test_expect_success 'a journal whose pages are damaged: exit 2, says so, unchanged' '
	cd main &&
	cp .cairn/journal.db bad.db &&
	# the schema records at the end of page 1 (4096 bytes): the header,
	# and so the application id, stays intact
	head -c 1000 /dev/zero | tr "\0" "\027" |
		dd of=bad.db bs=1 seek=3000 conv=notrunc 2>/dev/null &&
	sha256sum bad.db >before &&
	echo "cairn: journal '\''bad.db'\'' is damaged (database disk image is malformed; hint: restore it from a backup)" >expect &&
	for cmd in history verify "run ok.yaml"; do
		rm -f bad.db-wal bad.db-shm &&
		test_must_fail_with 2 cairn $cmd --journal bad.db 2>err || exit 1
		test_cmp expect err || exit 1
	done &&
	# beside a -wal (a reader leaves an empty one), the read-only probe
	# looks and says the same
	: >bad.db-wal &&
	test_must_fail_with 2 cairn run ok.yaml --journal bad.db 2>err &&
	test_cmp expect err &&
	sha256sum bad.db >after &&
	test_cmp before after
'

test_expect_success 'a journal with a newer schema (user_version 99): exit 2, unchanged' '
	cd main &&
	cp .cairn/journal.db v99.db &&
	sqlite3 v99.db "PRAGMA user_version = 99" &&
	journal_snapshot v99.db >before &&
	echo "cairn: '\''v99.db'\'' has journal schema version 99, newer than this cairn'\''s 3 (hint: use the newer cairn that wrote it)" >expect &&
	for cmd in history verify "status X" resume "run ok.yaml"; do
		test_must_fail_with 2 cairn $cmd --journal v99.db 2>err || exit 1
		test_cmp expect err || exit 1
	done &&
	journal_snapshot v99.db >after &&
	CMD="v99.db" &&
	same_journal before after
'

test_expect_success 'a schema version no cairn writes, or one its tables belie: exit 2, unchanged' '
	cd main &&
	cp .cairn/journal.db vneg.db &&
	sqlite3 vneg.db "PRAGMA user_version = -1" &&
	cp .cairn/journal.db v1.db &&
	sqlite3 v1.db "PRAGMA user_version = 1" &&
	journal_snapshot vneg.db >before &&
	journal_snapshot v1.db >before1 &&
	echo "cairn: '\''vneg.db'\'' has journal schema version -1, which no cairn writes: the file was altered" >expect &&
	echo "cairn: cannot migrate journal '\''v1.db'\'' from schema version 1: table meta already exists; its tables are not those of the version it records, so the file was altered (it is left as it was)" >expect1 &&
	for cmd in history verify "status X" resume "run ok.yaml"; do
		test_must_fail_with 2 cairn $cmd --journal vneg.db 2>err || exit 1
		test_cmp expect err || exit 1
		test_must_fail_with 2 cairn $cmd --journal v1.db 2>err || exit 1
		test_cmp expect1 err || exit 1
	done &&
	journal_snapshot vneg.db >after &&
	journal_snapshot v1.db >after1 &&
	CMD="vneg.db" &&
	same_journal before after &&
	CMD="v1.db" &&
	same_journal before1 after1
'

test_expect_success 'a journal path longer than SQLite takes (504 bytes): exit 2, one line, nothing made' '
	cd main &&
	long=$PWD && c=$(printf "d%.0s" $(seq 1 100)) &&
	for i in 1 2 3 4 5; do long=$long/$c; done &&
	mkdir -p "$long" &&
	test_must_fail_with 2 cairn run ok.yaml --journal "$long/journal.db" >out 2>err &&
	test "$(wc -l <err)" = 1 &&
	test_grep "^cairn: journal path .* is [0-9]* bytes long, and SQLite takes at most 504 (hint: keep the journal in a folder with a shorter path)$" err &&
	test_cmp /dev/null out &&
	test -z "$(ls -A "$long")"
'

# ---- run ids -------------------------------------------------------------------------------

test_expect_success 'an unknown run id for show, status and resume: exit 2' '
	cd main &&
	echo "cairn: no run '\''01NOSUCHRUN'\'' in journal '\''$TRASH/main/.cairn/journal.db'\'' (hint: '\''cairn history'\'' lists the runs)" >expect &&
	for cmd in show status resume; do
		check_refused 2 "" cairn $cmd 01NOSUCHRUN || exit 1
		test_cmp expect err || exit 1
	done
'

test_expect_success 'a prefix shorter than 4 characters is not looked up' '
	cd main &&
	RUN=$(q "SELECT id FROM runs LIMIT 1") &&
	P=$(printf %s "$RUN" | cut -c1-3) &&
	check_refused 2 "" cairn show "$P" &&
	echo "cairn: no run '\''$P'\'' in journal '\''$TRASH/main/.cairn/journal.db'\'' (hint: a prefix of a run id needs 4 characters at least)" >expect &&
	test_cmp expect err
'

test_expect_success 'an ambiguous prefix: exit 2, names two of the runs' '
	cd main &&
	q "SELECT id FROM runs ORDER BY id" >ids &&
	A=$(sed -n 1p ids) &&
	B=$(sed -n 2p ids) &&
	P= &&
	i=1 &&
	while [ "$i" -le 26 ] && [ "$(printf %s "$A" | cut -c1-$i)" = "$(printf %s "$B" | cut -c1-$i)" ]; do
		P=$(printf %s "$A" | cut -c1-$i)
		i=$((i + 1))
	done &&
	test "${#P}" -ge 4 &&
	for cmd in show status resume; do
		check_refused 2 "" cairn $cmd "$P" || exit 1
		echo "cairn: run prefix '\''$P'\'' is ambiguous (it matches $A, $B and maybe more)" >expect &&
		test_cmp expect err || exit 1
	done
'

test_expect_success 'show and status take one run id at most' '
	cd main &&
	check_refused 2 "^cairn: show needs one run id \(hint: '\''cairn history'\'' lists them\)$" cairn show &&
	check_refused 2 "^cairn: status takes at most one run id$" cairn status a b &&
	check_refused 2 "^cairn: resume takes at most one run id$" cairn resume a b &&
	check_refused 2 "^cairn: history takes no arguments " cairn history x &&
	check_refused 2 "^cairn: verify takes no arguments$" cairn verify x
'

# ---- a held lock ----------------------------------------------------------------------------

# spawned_of RUN: how many action.spawned events RUN has.
spawned_of() {
	q "SELECT count(*) FROM events WHERE kind = 'action.spawned' AND run_id = '$1'"
}

test_expect_success 'a held lock: exit 4, one line naming the holder, nothing written' '
	cd main
	"$CAIRN_BIN" run --grace 1s hold.yaml >hold.out 2>&1 &
	pid=$!
	trap "kill -9 $pid 2>/dev/null" EXIT
	ok=0
	# the step runs; its action.spawned rides a commit up to 1 s later
	# (LAZY_SPAWNED_MS): wait for the one of this run, or it would land between
	# the two snapshots (earlier runs in this journal have their own)
	wait_for_file hold.pid 10 &&
	HOLDER=$(q "SELECT id FROM runs ORDER BY created_ms DESC LIMIT 1") &&
	wait_until 10 "no action.spawned of run $HOLDER" eval "test \$(spawned_of $HOLDER) -ge 1" &&
	q "SELECT count(*) FROM events" >before &&
	sqlite3 .cairn/journal.db .dump >>before &&
	ls .cairn/runs >dirs.before &&
	test_must_fail_with 4 cairn run hold.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: workflow '\''hold'\'' is locked by run $HOLDER (pid $pid on $(uname -n)) (hint: wait for it to end, or stop it with Ctrl-C or kill $pid; '\''cairn status'\'' shows it)" >expect &&
	test_cmp expect err &&
	q "SELECT count(*) FROM events" >after &&
	sqlite3 .cairn/journal.db .dump >>after &&
	test_cmp before after &&
	ls .cairn/runs >dirs.after &&
	ok=1
	kill -INT "$pid"
	rc=0
	wait "$pid" || rc=$?
	trap - EXIT
	test "$ok" = 1 &&
	test "$rc" -eq 3 || exit 1
	if proc_alive "$(cat hold.pid)"; then
		echo "the held step outlived its run"
		exit 1
	fi
'

# engine_run makes the run folder (rt_set_run) before it takes the lock.
test_expect_success 'a refused run (held lock) leaves no run folder behind' '
	cd main &&
	test_cmp dirs.before dirs.after
'

# A file cairn refuses is judged from its header before SQLite opens it,
# so it never gets the -wal and -shm files a WAL database opened through
# SQLite would.
test_expect_success 'a refused journal gets no -wal or -shm beside it' '
	cd main &&
	cp .cairn/journal.db newer.db &&
	sqlite3 newer.db "PRAGMA user_version = 99" &&
	sqlite3 foreign.db "PRAGMA journal_mode = wal; PRAGMA application_id = 42; CREATE TABLE t(x)" >/dev/null &&
	rm -f newer.db-wal newer.db-shm foreign.db-wal foreign.db-shm &&
	for db in newer.db foreign.db; do
		for cmd in history verify status; do
			test_must_fail_with 2 cairn $cmd --journal $db 2>err || exit 1
		done &&
		test_path_is_missing $db-wal &&
		test_path_is_missing $db-shm || exit 1
	done &&
	test_must_fail_with 2 cairn run --journal newer.db ok.yaml 2>err &&
	test_path_is_missing newer.db-wal
'

test_done
