#!/bin/bash
# t0040-stdlib: the standard workflows (workflows/) on their own, against a
# real PostgreSQL and Redis from Debian on free loopback ports: every file
# of workflows/ and examples/ is valid; postgres.yaml, redis.yaml and
# migrate.yaml used from a workflow that passes its secrets start the
# servers, create the role, database and schema, and keep the passwords out
# of the journal, the logs and every argv; a second run leaves the running
# servers alone and its rollback does not stop them, the first run's does;
# env-setup.yaml keeps its secrets and restores its files; rollout.yaml
# stops a whole layer when one service never gets healthy.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

: "${PYAIRTABLE_SERVICE_BIN:=${CAIRN_BUILDDIR:-$CAIRN_SRCDIR/build}/examples/pyairtable-local/service/pyairtable-service}"
[ -x "$PYAIRTABLE_SERVICE_BIN" ] ||
  _cairn_test_bail "no pyairtable-service at $PYAIRTABLE_SERVICE_BIN (build first)"
export CAIRN_WORKFLOWS=$CAIRN_SRCDIR/workflows
WF=$CAIRN_SRCDIR/workflows
EX=$CAIRN_SRCDIR/examples/pyairtable-local

test_expect_success 'every workflow of workflows/ and examples/ is valid' '
	for f in "$WF"/*.yaml "$CAIRN_SRCDIR"/examples/*/*.yaml "$EX"/nginx/*.yaml; do
		cairn validate "$f" || return 1
	done
'

command -v curl >/dev/null || test_skip_all "curl is not installed"
net_need redis-server redis-server || test_skip_all "redis-server is not installed (apt-get install redis-server)"
if pg_missing; then
  test_skip_all "$PG_MISSING"
fi

OS_USER=
[ "$(id -u)" -eq 0 ] && OS_USER=postgres
PG_PORT=$(free_port) && REDIS_PORT=$(free_port) || _cairn_test_bail "no free port"
rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
export PG_PW=pgpw-$(rand) REDIS_PW=redispw-$(rand)

# Whatever a failing test leaves running is stopped by its pid file.
stop_all() {
  local f
  for f in "$TRASH"/pg/postgres.pid "$TRASH"/redis/redis.pid "$TRASH"/redis-alone/redis.pid "$TRASH"/svc/*.pid; do
    [ -e "$f" ] && net_stop "$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$f")"
  done
}
# lib.sh's exit handler reads the script's status from $?: keep it
trap 'rc=$?; stop_all; (exit $rc); _cairn_test_exit' EXIT

write_workflow infra.yaml <<EOF
cairn: 1
name: infra
secrets: [PG_PW, REDIS_PW]
start: pg
states:
  pg:
    use: cairn:postgres.yaml
    with: { dir: "$TRASH/pg", port: $PG_PORT, password: "{{ secrets.PG_PW }}",
            user: shop, db: shop, os_user: "$OS_USER" }
    next: redis
  redis:
    use: cairn:redis.yaml
    with: { dir: "$TRASH/redis", port: $REDIS_PORT, password: "{{ secrets.REDIS_PW }}" }
    next: migrate
  migrate:
    use: cairn:migrate.yaml
    with: { dir: "$EX/migrations", db: "{{ states.pg.output.url }}",
            password: "{{ secrets.PG_PW }}" }
    next: done
  done: { succeed: true }
EOF

psql_shop() {
  PGPASSWORD=$PG_PW psql -X -A -t -q -h 127.0.0.1 -p "$PG_PORT" -U shop -d shop -c "$1"
}
pid_of() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$1"; }

test_expect_success 'postgres, redis and migrate from a workflow: servers up, role, database, schema' '
	cairn run infra.yaml >out 2>&1 &&
	RUN1=$(last_run) && echo "$RUN1" >run1 &&
	psql_shop "SELECT string_agg(tablename, \$\$,\$\$ ORDER BY tablename) FROM pg_tables WHERE schemaname = \$\$public\$\$" >actual &&
	echo "cairn_migrations,fields,records,tables,users,workspace_members,workspaces" >expect &&
	test_cmp expect actual &&
	psql_shop "SELECT current_user" >actual && echo shop >expect && test_cmp expect actual &&
	test "$(REDISCLI_AUTH=$REDIS_PW redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning ping)" = PONG &&
	test "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" != PONG &&
	test "$(stat -c %a "$TRASH/redis/redis.conf")" = 600 &&
	test_path_is_missing "$TRASH/pg/pwfile"
'

test_expect_success 'the passwords are in no journal, log or argv' '
	{ grep -r -l -a -F -e "$PG_PW" -e "$REDIS_PW" .cairn >found; test $? -eq 1; } &&
	test ! -s found &&
	for f in "$TRASH"/pg/postgres.pid "$TRASH"/redis/redis.pid; do
		! tr "\0" " " <"/proc/$(pid_of "$f")/cmdline" | grep -F -e "$PG_PW" -e "$REDIS_PW" || return 1
	done
'

# redis.conf reads "\x41" in a quoted value as "A": the password would not
# be the one given.
test_expect_success 'redis.yaml refuses a password with a backslash or a quote' '
	for pw in "pw\\x41end" "pw\"q" "end\\"; do
		test_must_fail_with 1 cairn run "$WF/redis.yaml" --set dir="$TRASH/redis-bad" \
			--set port="$(free_port)" --set password="$pw" >out 2>&1 &&
		test_grep "folder failed: exited with status 2" out &&
		test_grep "holds a quote, a backslash or a newline" ".cairn/runs/$(last_run)/folder.log" &&
		test_path_is_missing "$TRASH/redis-bad/redis.conf" || exit 1
	done
'

test_expect_success 'redis.yaml alone: the password from --set is redacted; rollback asks for it again' '
	P=$(free_port) && PW=alone-$(rand) &&
	cairn run "$WF/redis.yaml" --set dir="$TRASH/redis-alone" --set port=$P \
		--set password="$PW" >out 2>&1 &&
	RUN=$(last_run) &&
	redis-cli -p $P -a "$PW" --no-auth-warning ping >pong &&
	echo PONG >expect && test_cmp expect pong &&
	{ grep -r -l -a -F -e "$PW" .cairn out >found; test $? -eq 1; } &&
	test_must_fail_with 2 cairn rollback "$RUN" >out 2>&1 &&
	test_grep "give it again with --set password=VALUE" out &&
	cairn rollback "$RUN" --set password="$PW" >out 2>&1 &&
	test_path_is_missing "$TRASH/redis-alone/redis.pid" &&
	! redis-cli -p $P -a "$PW" --no-auth-warning ping 2>/dev/null
'

test_expect_success 'postgres.yaml refuses a data folder with files but no cluster, unchanged' '
	mkdir -p notpg/data && echo mine >notpg/data/keep.txt && chmod 0755 notpg/data &&
	owner=$(stat -c %U notpg/data) &&
	test_must_fail_with 1 cairn run "$WF/postgres.yaml" --set dir="$TRASH/notpg" \
		--set port="$(free_port)" --set password=notpg-pw-1 --set os_user="$OS_USER" >out 2>&1 &&
	test_grep "state .prepare. failed: exited with status 2: .*notpg/data. holds files but no cluster (no PG_VERSION): empty it, or give another dir" out &&
	test "$(stat -c %U notpg/data)" = "$owner" &&
	test "$(stat -c %a notpg/data)" = 755 &&
	echo mine >expect && test_cmp expect notpg/data/keep.txt
'

test_expect_success 'a second run leaves the running servers as they are' '
	PG_PID=$(pid_of "$TRASH/pg/postgres.pid") &&
	REDIS_PID=$(pid_of "$TRASH/redis/redis.pid") &&
	cairn run infra.yaml >out 2>&1 &&
	RUN2=$(last_run) && echo "$RUN2" >run2 &&
	test "$(pid_of "$TRASH/pg/postgres.pid")" = "$PG_PID" &&
	test "$(pid_of "$TRASH/redis/redis.pid")" = "$REDIS_PID" &&
	q "SELECT DISTINCT state FROM events WHERE run_id = '\''$RUN2'\''
	   AND kind = '\''action.started'\'' ORDER BY state" >actual &&
	printf "%s\n" migrate/migrate pg/accepting pg/has_db pg/inspect pg/role \
		redis/inspect redis/ping >expect &&
	test_cmp expect actual
'

test_expect_success 'redis.yaml: a running server that refuses the password fails at once' '
	test_must_fail_with 1 cairn run "$WF/redis.yaml" --set dir="$TRASH/redis" \
		--set port=$REDIS_PORT --set password=wrong-$(rand) >out 2>&1 &&
	RUN=$(last_run) &&
	test_grep -F "the redis server on port $REDIS_PORT refused the password: " out &&
	test_grep "refused the password: .*WRONGPASS" out &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$RUN'\''
	   AND kind = '\''action.started'\'' AND state = '\''ping'\''" >actual &&
	echo 1 >expect &&
	test_cmp expect actual &&
	test "$(REDISCLI_AUTH=$REDIS_PW redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning ping)" = PONG
'

test_expect_success 'a rollback of the second run stops nothing' '
	cairn rollback "$(cat run2)" >out 2>&1 &&
	proc_alive "$(pid_of "$TRASH/pg/postgres.pid")" &&
	proc_alive "$(pid_of "$TRASH/redis/redis.pid")" &&
	psql_shop "SELECT count(*) FROM records" >actual && echo 0 >expect &&
	test_cmp expect actual
'

test_expect_success 'a rollback of the first run migrates down and stops both; the data stays' '
	PG_PID=$(pid_of "$TRASH/pg/postgres.pid") &&
	REDIS_PID=$(pid_of "$TRASH/redis/redis.pid") &&
	cairn rollback "$(cat run1)" >out 2>&1 &&
	test_grep "rolled back: migrate/migrate, redis/start, redis/config, pg/start, pg/pwfile$" out &&
	! proc_alive "$PG_PID" && ! proc_alive "$REDIS_PID" &&
	test_path_is_missing "$TRASH/pg/postgres.pid" &&
	test_path_is_missing "$TRASH/redis/redis.conf" &&
	test_path_is_file "$TRASH/pg/data/PG_VERSION"
'

test_expect_success 'env-setup: secrets drawn once (0600), files written, restored by a rollback' '
	echo old >conf.txt &&
	cairn run "$WF/env-setup.yaml" --set secrets_file="$TRASH/env/app.env" \
		--set names=A_KEY,B_KEY \
		--set files="[{\"path\":\"$TRASH/conf.txt\",\"content\":\"new\\n\",\"mode\":\"0640\"}]" >out 2>&1 &&
	RUN=$(last_run) &&
	test "$(stat -c %a env/app.env)" = 600 && test "$(stat -c %a env)" = 700 &&
	grep -c "^[AB]_KEY=..*" env/app.env >actual && echo 2 >expect && test_cmp expect actual &&
	echo new >expect && test_cmp expect conf.txt && test "$(stat -c %a conf.txt)" = 640 &&
	cp env/app.env env.before &&
	cairn run "$WF/env-setup.yaml" --set secrets_file="$TRASH/env/app.env" \
		--set names=A_KEY,B_KEY >out 2>&1 &&
	test_cmp env.before env/app.env &&
	cairn rollback "$RUN" --allow-superseded >out 2>&1 &&
	echo old >expect && test_cmp expect conf.txt &&
	test_cmp env.before env/app.env
'

svc() { # NAME PORT [FLAGS...]: a rollout item of the example service
	local name=$1 port=$2
	shift 2
	printf '{"name":"%s","port":%s,"argv":["%s","--name","%s","--port","%s","--release","1.0.0"' \
		"$name" "$port" "$PYAIRTABLE_SERVICE_BIN" "$name" "$port"
	for a in "$@"; do printf ',"%s"' "$a"; done
	printf ']}'
}

test_expect_success 'rollout: a service that never gets healthy stops the whole layer' '
	P1=$(free_port) && P2=$(free_port) &&
	echo broken=true >broken.conf &&
	test_must_fail_with 1 cairn run "$WF/rollout.yaml" --set dir="$TRASH/svc" \
		--set env="{\"JWT_SECRET\":\"j\"}" --set within=2s \
		--set services="[$(svc good "$P1"),$(svc bad "$P2" --config "$TRASH/broken.conf")]" >out 2>&1 &&
	test_grep "state .start/bad. failed: not ready: GET http://127.0.0.1:$P2/health: status 503" out &&
	test_grep "rolled back: start/bad, start/good" out &&
	test_path_is_missing svc/good.pid && test_path_is_missing svc/bad.pid &&
	! curl -s "http://127.0.0.1:$P1/health" && ! curl -s "http://127.0.0.1:$P2/health"
'

test_expect_success 'rollout and validate: a healthy layer, checked, then rolled back' '
	P1=$(free_port) && P2=$(free_port) &&
	cairn run "$WF/rollout.yaml" --set dir="$TRASH/svc" --set env="{\"JWT_SECRET\":\"j\"}" \
		--set expect="{\"status\":200,\"json\":{\"status\":\"healthy\"}}" \
		--set services="[$(svc a "$P1"),$(svc gw "$P2" --upstream "a=127.0.0.1:$P1")]" >out 2>&1 &&
	RUN=$(last_run) &&
	cairn run "$WF/validate.yaml" \
		--set services="[{\"name\":\"a\",\"port\":$P1},{\"name\":\"gw\",\"port\":$P2}]" \
		--set smoke="[{\"name\":\"a-via-gw\",\"url\":\"http://127.0.0.1:$P2/api/a/health\",\"status\":200,\"json\":{\"service\":\"a\"}}]" >out 2>&1 &&
	test_must_fail_with 1 cairn run "$WF/validate.yaml" --set within=0 \
		--set smoke="[{\"name\":\"v\",\"url\":\"http://127.0.0.1:$P2/\",\"status\":200,\"json\":{\"version\":\"2.0.0\"}}]" >out 2>&1 &&
	test_grep "json .version. is \"1.0.0\", expected \"2.0.0\"" out &&
	cairn rollback "$RUN" >out 2>&1 &&
	test_path_is_missing svc/a.pid && ! curl -s "http://127.0.0.1:$P1/health"
'

test_done
