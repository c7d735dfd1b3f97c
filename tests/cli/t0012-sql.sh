#!/bin/bash
# t0012-sql: sql.migrate against a real PostgreSQL from Debian (initdb in a
# temporary folder, pg_ctl on a free loopback port, stopped at the end)
# through real workflows: migrate up, a rerun that does nothing, a failing
# migration that leaves the previous version, a later failure whose
# rollback runs the default undo back to from_version, a password in the
# URL; a failure half-way migrated back, from_version across a retry and
# across kill -9 and resume, migrate.yaml failing a SQL error at once and
# waiting for a server that starts late; and the password nowhere in the
# journal, its -wal or the logs.
# SQLite and psql's argv are covered by tests/unit/test_sql.c.
. "$(dirname "$0")/lib.sh"

# ---- a PostgreSQL server of our own ------------------------------------------

. "$CAIRN_TEST_LIB_DIR/netlib.sh"
if pg_missing; then
  test_skip_all "$PG_MISSING"
fi
PGROOT=$(mktemp -d "${TMPDIR:-/tmp}/cairn-pg.XXXXXX") || _cairn_test_bail "mktemp failed"
PW=pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
# lib.sh's EXIT trap reports and cleans up: run ours first, then it.
trap 'pg_stop "$PGROOT"; rm -rf "$PGROOT"; _cairn_test_exit' EXIT
pg_start "$PGROOT" "$PW" || _cairn_test_bail "$PG_ERROR"
PGPORT_T=$PG_PORT
export PGPORT_T

# pg: psql as the test's client, on the database app.
pg() {
  PGPASSWORD=$PW psql -X -q -At -h 127.0.0.1 -p "$PGPORT_T" -U cairn -d app "$@"
}
PGPASSWORD=$PW psql -X -q -h 127.0.0.1 -p "$PGPORT_T" -U cairn -d postgres \
  -c "CREATE DATABASE app" >/dev/null ||
  _cairn_test_bail "cannot create the database app"

# The tables of the public schema, one line, sorted.
tables() {
  pg -c "SELECT coalesce(string_agg(table_name, ',' ORDER BY table_name), '')
         FROM information_schema.tables WHERE table_schema = 'public'"
}
history() {
  pg -c "SELECT coalesce(string_agg(version || ':' || name, ',' ORDER BY version), '')
         FROM cairn_migrations"
}

# ---- fixtures ----------------------------------------------------------------

mkdir migrations
cat >migrations/001_accounts.up.sql <<\EOF
CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);
EOF
cat >migrations/001_accounts.down.sql <<\EOF
DROP TABLE accounts;
EOF
cat >migrations/002_users.up.sql <<\EOF
CREATE TABLE users (id serial PRIMARY KEY, account int REFERENCES accounts);
INSERT INTO accounts (email) VALUES ('ada@example.com');
EOF
cat >migrations/002_users.down.sql <<\EOF
DROP TABLE users;
DELETE FROM accounts WHERE email = 'ada@example.com';
EOF

# The password comes in as a secret; the state after the migration fails
# when the file fail-after exists.
write_workflow migrate.yaml <<\EOF
cairn: 1
name: migrate
secrets: [POSTGRES_PASSWORD]
start: migrate
states:
  migrate:
    do: sql.migrate
    with:
      dir: migrations
      db: "postgres://cairn@127.0.0.1:{{ env.PGPORT_T }}/app?sslmode=disable"
      password: "{{ secrets.POSTGRES_PASSWORD }}"
    next: check
  check:
    do: exec
    with: { shell: "test ! -e fail-after" }
    next: done
  done: { succeed: true }
EOF

write_workflow inurl.yaml <<\EOF
cairn: 1
name: inurl
secrets: [POSTGRES_PASSWORD]
start: migrate
states:
  migrate:
    do: sql.migrate
    with:
      dir: migrations
      db: "postgresql://cairn:{{ secrets.POSTGRES_PASSWORD }}@127.0.0.1:{{ env.PGPORT_T }}/app?sslmode=disable"
      to: 1
    next: done
  done: { succeed: true }
EOF

# The same, with the password from cairn's own environment (PGPASSWORD),
# which psql inherits.
write_workflow migrate-env.yaml <<\EOF
cairn: 1
name: migrate-env
start: migrate
states:
  migrate:
    do: sql.migrate
    with:
      dir: migrations
      db: "postgres://cairn@127.0.0.1:{{ env.PGPORT_T }}/app?sslmode=disable"
    next: check
  check:
    do: exec
    with: { shell: "test ! -e fail-after" }
    next: done
  done: { succeed: true }
EOF

run_migrate() {
  POSTGRES_PASSWORD=$PW cairn run "$@"
}

# ---- tests -------------------------------------------------------------------

test_expect_success 'cairn validate knows sql.migrate' '
	cairn validate migrate.yaml &&
	write_workflow bad.yaml <<-\EOF &&
	cairn: 1
	name: bad
	start: m
	states:
	  m:
	    do: sql.migrate
	    with: { dir: migrations, db: app.db, table: "drop table x" }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep -F "bad history table name '\''drop table x'\''" err
'

test_expect_success 'migrate up from an empty database' '
	run_migrate migrate.yaml >out 2>&1 &&
	echo accounts,cairn_migrations,users >expect &&
	tables >actual &&
	test_cmp expect actual &&
	echo 1:001_accounts,2:002_users >expect &&
	history >actual &&
	test_cmp expect actual &&
	sha256sum <migrations/002_users.up.sql | cut -c1-64 >expect &&
	pg -c "SELECT checksum FROM cairn_migrations WHERE version = 2" >actual &&
	test_cmp expect actual &&
	RUN=$(last_run) &&
	q "SELECT payload FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''migrate'\''" >fin &&
	jq -e ".outputs.from_version == 0 and .outputs.to_version == 2 and
	       .outputs.applied == [\"001_accounts.up.sql\", \"002_users.up.sql\"]" fin
'

test_expect_success 'a rerun is a no-op' '
	pg -c "SELECT applied_at FROM cairn_migrations ORDER BY version" >before &&
	run_migrate migrate.yaml >out 2>&1 &&
	pg -c "SELECT applied_at FROM cairn_migrations ORDER BY version" >after &&
	test_cmp before after &&
	RUN=$(last_run) &&
	test_grep "the database is at version 2: nothing to do" .cairn/runs/$RUN/migrate.log &&
	q "SELECT payload FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''migrate'\''" >fin &&
	jq -e ".outputs.from_version == 2 and .outputs.to_version == 2 and .outputs.applied == []" fin
'

test_expect_success 'a failing migration leaves the database at the previous version' '
	cat >migrations/003_broken.up.sql <<-\EOF &&
	CREATE TABLE broken (id int);
	INSERT INTO nope VALUES (1);
	EOF
	echo "DROP TABLE broken;" >migrations/003_broken.down.sql &&
	test_must_fail_with 1 run_migrate migrate.yaml >out 2>&1 &&
	test_grep -F "migrations/003_broken.up.sql failed: ERROR:  relation \"nope\" does not exist" out &&
	echo accounts,cairn_migrations,users >expect &&
	tables >actual &&
	test_cmp expect actual &&
	echo 1:001_accounts,2:002_users >expect &&
	history >actual &&
	test_cmp expect actual &&
	rm migrations/003_broken.*
'

test_expect_success 'a changed file is refused with its name' '
	cp migrations/002_users.up.sql keep.sql &&
	echo "-- an edit" >>migrations/002_users.up.sql &&
	test_must_fail_with 1 run_migrate migrate.yaml >out 2>&1 &&
	test_grep -F "migrations/002_users.up.sql changed since it was applied (checksum " out &&
	test_grep -F "restore it or write a new migration" out &&
	mv keep.sql migrations/002_users.up.sql
'

# The default undo of a state that took the password from an input: the
# journal holds it redacted ("***"), so the engine renders the undo's
# self.input again with the run's secrets.
test_expect_success 'a later failure rolls back: the default undo migrates back (password input)' '
	echo "CREATE TABLE orders (id int);" >migrations/003_orders.up.sql &&
	echo "DROP TABLE orders;" >migrations/003_orders.down.sql &&
	touch fail-after &&
	test_must_fail_with 1 run_migrate migrate.yaml >out 2>&1 &&
	rm fail-after &&
	test_grep -F "rolled back: migrate" out &&
	echo 1:001_accounts,2:002_users >expect &&
	history >actual &&
	test_cmp expect actual
'

test_expect_success 'a later failure rolls back: the default undo migrates back to from_version' '
	rm -f fail-after &&
	pg -c "DROP TABLE IF EXISTS orders" \
		-c "DELETE FROM cairn_migrations WHERE version = 3" &&
	echo "CREATE TABLE orders (id int);" >migrations/003_orders.up.sql &&
	echo "DROP TABLE orders;" >migrations/003_orders.down.sql &&
	touch fail-after &&
	PGPASSWORD=$PW test_must_fail_with 1 cairn run migrate-env.yaml >out 2>&1 &&
	rm fail-after &&
	test_grep -F "rolled back: migrate" out &&
	echo accounts,cairn_migrations,users >expect &&
	tables >actual &&
	test_cmp expect actual &&
	echo 1:001_accounts,2:002_users >expect &&
	history >actual &&
	test_cmp expect actual &&
	RUN=$(last_run) &&
	test_grep "applying migrations/003_orders.up.sql" .cairn/runs/$RUN/migrate.log &&
	test_grep "reverting migrations/003_orders.down.sql" ".cairn/runs/$RUN/undo:migrate.log" &&
	q "SELECT payload FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''state.entered'\'' AND state = '\''undo:migrate'\''" >undo &&
	jq -e ".inputs.to == 2" undo &&
	rm migrations/003_orders.*
'

test_expect_success 'a password in the URL goes to PGPASSWORD; to: migrates down' '
	run_migrate inurl.yaml >out 2>&1 &&
	echo accounts,cairn_migrations >expect &&
	tables >actual &&
	test_cmp expect actual &&
	echo 1:001_accounts >expect &&
	history >actual &&
	test_cmp expect actual
'

# A URL's password is percent-encoded where it holds a reserved character
# (libpq's rule too): cairn decodes it before it goes to PGPASSWORD.
test_expect_success 'a password in the URL is percent-decoded: p@ss:w/rd%x written p%40ss%3Aw%2Frd%25x' '
	pg -c "CREATE ROLE odd LOGIN SUPERUSER PASSWORD '\''p@ss:w/rd%x'\''" &&
	sed "s|postgresql://cairn:|postgresql://odd:|" inurl.yaml >odd.yaml &&
	POSTGRES_PASSWORD="p%40ss%3Aw%2Frd%25x" cairn run odd.yaml >out 2>&1 &&
	POSTGRES_PASSWORD="p@ss:w/rd%x" test_must_fail_with 1 cairn run odd.yaml >out 2>&1 &&
	! grep -a -F "p@ss:w/rd%x" .cairn/journal.db* .cairn/runs/*/*.log
'

test_expect_success 'TLS is required unless the URL says sslmode: this server has none' '
	sed "s|/app?sslmode=disable\"|/app\"|" migrate.yaml >notls.yaml &&
	test_must_fail_with 1 run_migrate notls.yaml >out 2>&1 &&
	test_grep -F "server does not support SSL, but SSL was required" out
'

test_expect_success 'a wrong password fails with the server message, not the password' '
	POSTGRES_PASSWORD=wrong-$PW test_must_fail_with 1 cairn run migrate.yaml >out 2>&1 &&
	test_grep -F "password authentication failed for user \"cairn\"" out &&
	test_grep ! -F "wrong-$PW" out
'

# A COMMIT that outlives psql: a deferred trigger on the history table
# sleeps 6s at COMMIT; the state's timeout (3s) kills psql meanwhile, but
# the server finishes the COMMIT. What the state reports must be what the
# database holds: version 1, 001_slow applied. (With 2s and 1s, a loaded
# machine could kill psql before it had sent the COMMIT: the server then
# rolled the migration back, and the test saw version 0.)
mkdir slowmig
cat >slowmig/001_slow.up.sql <<\EOF
CREATE TABLE slow_t (id int);
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN PERFORM pg_sleep(6); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_migrations
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
EOF
cat >slowmig/001_slow.down.sql <<\EOF
DROP TRIGGER slow_commit ON slow_migrations;
DROP FUNCTION slow_commit();
DROP TABLE slow_t;
EOF
write_workflow slow.yaml <<\EOF
cairn: 1
name: slow
start: migrate
states:
  migrate:
    do: sql.migrate
    with:
      dir: slowmig
      table: slow_migrations
      db: "postgres://cairn@127.0.0.1:{{ env.PGPORT_T }}/app?sslmode=disable"
    timeout: 3s
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a COMMIT that completes after the timeout killed psql: the outputs say so' '
	PGPASSWORD=$PW test_must_fail_with 1 cairn run slow.yaml >out 2>&1 &&
	test_grep "timed out after 3s (the database is at version 1)" out &&
	pg -c "SELECT version FROM slow_migrations ORDER BY version" >actual &&
	echo 1 >expect &&
	test_cmp expect actual &&
	RUN=$(last_run) &&
	q "SELECT payload FROM events WHERE run_id = '\''$RUN'\'' AND kind = '\''action.finished'\'' AND state = '\''migrate'\''" >fin &&
	jq -e ".outputs.from_version == 0 and .outputs.to_version == 1 and
	       .outputs.applied == [\"001_slow.up.sql\"]" fin &&
	test_grep "after the stop, the history table says version 1" .cairn/runs/$RUN/migrate.log
'

# ---- undo after a failure half-way, a retry, a resume -------------------------
# A database of their own, undo: 001 passes; 002 sleeps while the table
# sleep_here exists (to kill cairn in it); 003 divides by zero when
# nextval of the sequence fail_once is 1 (a sequence is not
# transactional: the next attempt gets 2 and passes).
pg -c "CREATE DATABASE undo" >/dev/null ||
  _cairn_test_bail "cannot create the database undo"
pgu() {
  PGPASSWORD=$PW psql -X -q -At -h 127.0.0.1 -p "$PGPORT_T" -U cairn -d undo "$@"
}
undo_history() {
  pgu -c "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), 'none')
          FROM cairn_migrations"
}
sleepers() {
  pgu -c "SELECT count(*) FROM pg_stat_activity
          WHERE query LIKE '%pg_sleep(CASE%' AND pid <> pg_backend_pid()"
}
mkdir undomig
echo "CREATE TABLE u1 (id int);" >undomig/001_u1.up.sql
echo "DROP TABLE u1;" >undomig/001_u1.down.sql
cat >undomig/002_u2.up.sql <<\EOF
SELECT pg_sleep(CASE WHEN to_regclass('public.sleep_here') IS NULL THEN 0 ELSE 60 END);
CREATE TABLE u2 (id int);
EOF
echo "DROP TABLE u2;" >undomig/002_u2.down.sql
cat >undomig/003_u3.up.sql <<\EOF
CREATE TABLE u3 (id int);
SELECT 1 / (nextval('fail_once') - 1);
EOF
echo "DROP TABLE u3;" >undomig/003_u3.down.sql
# migrate-env.yaml on the database undo and the folder undomig; undo.yaml
# retries the migration once.
sed -e "s/^name: migrate-env/name: undo/" -e "s/dir: migrations/dir: undomig/" \
  -e "s|/app?sslmode|/undo?sslmode|" migrate-env.yaml >undo-once.yaml
sed "0,/^    next: check/s//    retry: { attempts: 2, delay: 100ms }\n&/" \
  undo-once.yaml >undo.yaml

# fin_of ATTEMPT: the payload of migrate's action.finished of that attempt
# in the last run.
fin_of() {
  q "SELECT payload FROM events WHERE run_id = '$(last_run)' AND
     kind = 'action.finished' AND state = 'migrate' AND attempt = $1"
}

test_expect_success 'a failure half-way migrates back what the state applied: the rollback has nothing to undo' '
	pgu -c "CREATE SEQUENCE fail_once" &&
	PGPASSWORD=$PW test_must_fail_with 1 cairn run undo-once.yaml >out 2>&1 &&
	test_grep -F "undomig/003_u3.up.sql failed: ERROR:  division by zero; migrated back to version 0" out &&
	test_grep -F "rolled back: nothing to undo" out &&
	echo none >expect &&
	undo_history >actual &&
	test_cmp expect actual &&
	test "$(pgu -c "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\''u_'\''")" = 0 &&
	fin_of 1 >fin &&
	jq -e ".outputs.from_version == 0 and .outputs.to_version == 0 and
	       .outputs.applied == [\"001_u1.up.sql\", \"002_u2.up.sql\",
	                            \"002_u2.down.sql\", \"001_u1.down.sql\"]" fin
'

test_expect_success 'a retry that passes reports the version before the first attempt: the rollback goes back to it' '
	pgu -c "ALTER SEQUENCE fail_once RESTART" &&
	touch fail-after &&
	PGPASSWORD=$PW test_must_fail_with 1 cairn run undo.yaml >out 2>&1 &&
	rm fail-after &&
	test_grep -F "rolled back: migrate" out &&
	fin_of 1 >fin1 &&
	jq -e ".outcome == \"failed\" and .outputs.to_version == 0" fin1 &&
	fin_of 2 >fin2 &&
	jq -e ".outcome == \"succeeded\" and .outputs.from_version == 0 and
	       .outputs.to_version == 3" fin2 &&
	echo none >expect &&
	undo_history >actual &&
	test_cmp expect actual
'

# kill -9 of cairn while psql runs 002 (in pg_sleep): 001 is applied.
# The resumed run applies 002 and 003 from version 1, then a later state
# fails: the rollback goes back to 0, not 1.
test_expect_success 'after kill -9 in a migration and a resume, the rollback goes back to the version before the first attempt' '
	pgu -c "CREATE TABLE sleep_here ()" &&
	touch fail-after &&
	{ PGPASSWORD=$PW "$CAIRN_BIN" run undo.yaml >bg.out 2>&1 & } &&
	bg=$! &&
	wait_until 20 "002 did not start sleeping" eval "test \"\$(sleepers)\" = 1" &&
	kill -9 "$bg" &&
	{ wait "$bg" || :; } &&
	pgu -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	        WHERE query LIKE '\''%pg_sleep(CASE%'\'' AND pid <> pg_backend_pid()" >/dev/null &&
	wait_until 10 "the sleeping backend did not end" eval "test \"\$(sleepers)\" = 0" &&
	pgu -c "DROP TABLE sleep_here" &&
	echo 1 >expect &&
	undo_history >actual &&
	test_cmp expect actual &&
	PGPASSWORD=$PW test_must_fail_with 1 cairn resume >out 2>&1 &&
	rm fail-after &&
	test_grep -F "rolled back: migrate" out &&
	q "SELECT json_extract(payload, '\''$.outputs.from_version'\'') FROM events
	   WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
	   AND state = '\''migrate'\''" >actual &&
	echo 0 >expect &&
	test_cmp expect actual &&
	echo none >expect &&
	undo_history >actual &&
	test_cmp expect actual
'

test_expect_success 'migrate.yaml: a SQL error fails at once, one attempt, migrated back' '
	pgu -c "ALTER SEQUENCE fail_once RESTART" &&
	PGPASSWORD=$PW test_must_fail_with 1 cairn run "$CAIRN_SRCDIR/workflows/migrate.yaml" \
		--set dir=undomig \
		--set "db=postgres://cairn@127.0.0.1:$PGPORT_T/undo?sslmode=disable" >out 2>&1 &&
	test_grep -F "division by zero; migrated back to version 0" out &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$(last_run)'\''
	   AND kind = '\''action.started'\'' AND state = '\''migrate'\''" >actual &&
	echo 1 >expect &&
	test_cmp expect actual &&
	echo none >expect &&
	undo_history >actual &&
	test_cmp expect actual
'

# The server stops; it starts again 2 s after the run began: the first
# psql is refused (then told the server is starting up) and tried again.
test_expect_success 'migrate.yaml waits for a server that is not up yet (connect_within)' '
	pg_stop "$PGROOT" &&
	{ { sleep 2; pg_ctl_start "$PGROOT" "$PGPORT_T"; } >/dev/null 2>&1 & } &&
	starter=$! &&
	PGPASSWORD=$PW cairn run "$CAIRN_SRCDIR/workflows/migrate.yaml" \
		--set dir=undomig \
		--set "db=postgres://cairn@127.0.0.1:$PGPORT_T/undo?sslmode=disable" >out 2>&1 &&
	wait "$starter" &&
	cat .cairn/runs/$(last_run)/migrate.log &&
	test_grep "the server does not accept connections yet" .cairn/runs/$(last_run)/migrate.log &&
	echo 1,2,3 >expect &&
	undo_history >actual &&
	test_cmp expect actual
'

# Nothing ever listens: the tries go on to the end of the window given,
# and the message says how long they took, not a second less.
test_expect_success 'connect_within runs out: the tries fill the window' '
	mkdir -p nomig &&
	write_workflow never.yaml <<-\EOF &&
	cairn: 1
	name: never
	start: m
	states:
	  m:
	    do: sql.migrate
	    with: { db: "postgres://cairn@127.0.0.1:1/none?sslmode=disable", dir: nomig, connect_within: 2s }
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 1 cairn run never.yaml >out 2>&1 &&
	test_grep -E "Connection refused \(tried [0-9]+ times in 2(\.[0-9])?s\)" out
'

test_expect_success 'the password is nowhere in the journal, its -wal or the logs' '
	sqlite3 .cairn/journal.db .dump >dump &&
	test_grep ! -F "$PW" dump &&
	if [ -e .cairn/journal.db-wal ]; then
		test_grep ! -a -F "$PW" .cairn/journal.db-wal
	fi &&
	test_grep ! -a -F "$PW" .cairn/journal.db &&
	cat .cairn/runs/*/*.log >logs &&
	test_grep ! -F "$PW" logs &&
	test_grep "applying migrations/001_accounts.up.sql" logs
'

test_done
