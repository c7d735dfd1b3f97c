#!/bin/bash
# t0030-service: the example service program of examples/pyairtable-local
# (pyairtable-service) against a real Redis and a real PostgreSQL from
# Debian, on free loopback ports: /health is 200 with the exact JSON when
# everything is up, and 503 naming the failed check when a secret is
# missing, the Redis password is wrong, the config marks the release
# broken, Redis is stopped or PostgreSQL is down; the gateway role proxies
# an upstream's /health; many connections at once; partial reads; SIGTERM
# stops it within a second with status 0; no secret appears in its output;
# nothing is left running.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

: "${PYAIRTABLE_SERVICE_BIN:=${CAIRN_BUILDDIR:-$CAIRN_SRCDIR/build}/examples/pyairtable-local/service/pyairtable-service}"
[ -x "$PYAIRTABLE_SERVICE_BIN" ] ||
  _cairn_test_bail "no pyairtable-service at $PYAIRTABLE_SERVICE_BIN (build first)"
command -v curl >/dev/null || test_skip_all "curl is not installed"
net_need redis-server redis-server || test_skip_all "redis-server is not installed (apt-get install redis-server)"
if pg_missing; then
  test_skip_all "$PG_MISSING"
fi

rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
PG_PW=pgpw-$(rand)
REDIS_PW=redispw-$(rand)
JWT=jwt-$(rand)

PGROOT=$(mktemp -d "${TMPDIR:-/tmp}/cairn-pg.XXXXXX") || _cairn_test_bail "mktemp failed"
mkdir "$TRASH/redis"

# Every service instance writes NAME.pid; stop_services TERMs them all.
stop_services() {
  local f
  for f in "$TRASH"/*.pid; do
    [ -e "$f" ] && net_stop "$(cat "$f")"
  done
}
# lib.sh's EXIT trap reports and cleans up: run ours first, then it.
trap 'stop_services; net_stop_all; pg_stop "$PGROOT"; rm -rf "$PGROOT"; _cairn_test_exit' EXIT

redis_start "$TRASH/redis" "$REDIS_PW" >redis-start.log ||
  _cairn_test_bail "$(cat redis-start.log)"
pg_start "$PGROOT" "$PG_PW" || _cairn_test_bail "$PG_ERROR"
PG_PID=$(head -n 1 "$PGROOT/data/postmaster.pid")

# svc_start ID [VAR=VALUE...] -- [FLAGS...]: the service in the background
# with only the environment given (and PATH), --port 0; its output in
# ID.out, its pid in ID.pid, its exit status in ID.rc when it ends, the
# port it listens on in ID.port.
svc_start() {
  local id=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  rm -f "$id.out" "$id.pid" "$id.rc" "$id.port"
  (
    env -i PATH="$PATH" "${envs[@]}" "$PYAIRTABLE_SERVICE_BIN" --port 0 "$@" \
      >"$id.out" 2>&1 </dev/null &
    echo $! >"$id.pid"
    wait $!
    echo $? >"$id.rc"
  ) </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 50); do
    if [ -s "$id.out" ] && grep -q ' listening on 127.0.0.1:' "$id.out"; then
      sed -n 's/.* listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$id.out" >"$id.port"
      return 0
    fi
    if [ -e "$id.rc" ]; then break; fi
    sleep 0.1
  done
  echo "svc_start: $id did not start:"
  cat "$id.out"
  return 1
}

# svc_stop ID: SIGTERM; it must exit with status 0 within a second.
svc_stop() {
  local pid
  pid=$(cat "$1.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 10); do
    [ -e "$1.rc" ] && break
    sleep 0.1
  done
  if [ ! -e "$1.rc" ]; then
    echo "svc_stop: $1 (pid $pid) still runs a second after SIGTERM"
    return 1
  fi
  if [ "$(cat "$1.rc")" != 0 ]; then
    echo "svc_stop: $1 exited with status $(cat "$1.rc")"
    return 1
  fi
  if proc_alive "$pid"; then
    echo "svc_stop: $1 (pid $pid) still runs"
    return 1
  fi
  rm "$1.pid"
}

# get ID PATH: the status code on stdout, the body in the file body.
get() {
  curl -s -o body -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$(cat "$1.port")$2"
}

# expect_health ID CODE REASON: GET /health answers CODE; with a REASON,
# the JSON is unhealthy with that reason, else healthy.
expect_health() {
  local code
  code=$(get "$1" /health)
  if [ "$code" != "$2" ]; then
    echo "expect_health: $1 answered $code, not $2:"
    cat body
    return 1
  fi
  if [ -n "${3:-}" ]; then
    jq -e --arg r "$3" '.status == "unhealthy" and .reason == $r' body >/dev/null ||
      { echo "expect_health: $1: want reason '$3', got:"; cat body; return 1; }
  else
    jq -e '.status == "healthy"' body >/dev/null ||
      { cat body; return 1; }
  fi
}

ALL_ENV=(JWT_SECRET="$JWT" POSTGRES_PASSWORD="$PG_PW" REDIS_PASSWORD="$REDIS_PW")
DEPS=(--postgres "127.0.0.1:$PG_PORT" --redis "127.0.0.1:$REDIS_PORT")

# ---- tests ---------------------------------------------------------------------

test_expect_success 'healthy when PostgreSQL, Redis and the secrets are there' '
	echo "# no broken key: a good release" >auth.conf &&
	svc_start auth "${ALL_ENV[@]}" -- --name auth-service --release 1.0.0 \
		"${DEPS[@]}" --config auth.conf &&
	test "$(get auth /health)" = 200 &&
	echo "{\"status\":\"healthy\",\"service\":\"auth-service\",\"version\":\"1.0.0\"}" >expect &&
	test_cmp expect body &&
	test "$(get auth /)" = 200 &&
	jq -e ".service == \"auth-service\" and .version == \"1.0.0\" and .upstreams == []" body &&
	test "$(get auth /nope)" = 404 &&
	test_grep -x "GET /health 200" auth.out &&
	test_grep -x "GET /nope 404" auth.out
'

test_expect_success 'a missing secret: 503 naming it' '
	svc_start nojwt POSTGRES_PASSWORD="$PG_PW" REDIS_PASSWORD="$REDIS_PW" -- \
		--name user-service --release 1.0.0 "${DEPS[@]}" &&
	expect_health nojwt 503 "secret JWT_SECRET is not set" &&
	jq -e ".service == \"user-service\" and .version == \"1.0.0\"" body &&
	svc_stop nojwt &&
	svc_start nopg JWT_SECRET="$JWT" REDIS_PASSWORD="$REDIS_PW" -- \
		--name user-service --release 1.0.0 "${DEPS[@]}" &&
	expect_health nopg 503 "secret POSTGRES_PASSWORD is not set" &&
	svc_stop nopg &&
	svc_start extra "${ALL_ENV[@]}" -- --name llm-orchestrator --release 1.0.0 \
		--secret GEMINI_API_KEY &&
	expect_health extra 503 "secret GEMINI_API_KEY is not set" &&
	svc_stop extra
'

test_expect_success 'a wrong Redis password: 503, AUTH refused' '
	svc_start badpw JWT_SECRET="$JWT" POSTGRES_PASSWORD="$PG_PW" \
		REDIS_PASSWORD="wrong-$REDIS_PW" -- --name table-service --release 1.0.0 "${DEPS[@]}" &&
	expect_health badpw 503 "redis 127.0.0.1:$REDIS_PORT: AUTH refused (WRONGPASS)" &&
	svc_stop badpw
'

test_expect_success 'the config marks the release broken: 503; read again on every check' '
	printf "# release 1.1.0\nbroken = true\n" >auth.conf &&
	expect_health auth 503 "config '\''auth.conf'\'' marks release 1.0.0 as broken" &&
	echo "broken=false" >auth.conf &&
	expect_health auth 200 &&
	rm auth.conf &&
	expect_health auth 503 "cannot read config '\''auth.conf'\'': No such file or directory" &&
	echo "broken=no" >auth.conf &&
	expect_health auth 200
'

test_expect_success 'the gateway proxies an upstream health, also an unhealthy one' '
	svc_start gw JWT_SECRET="$JWT" -- --name api-gateway --release 1.0.0 \
		--upstream "auth-service=127.0.0.1:$(cat auth.port)" \
		--upstream "gone=127.0.0.1:$(free_port)" &&
	expect_health gw 200 &&
	test "$(get gw /api/auth-service/health)" = 200 &&
	echo "{\"status\":\"healthy\",\"service\":\"auth-service\",\"version\":\"1.0.0\"}" >expect &&
	test_cmp expect body &&
	echo "broken=1" >auth.conf &&
	test "$(get gw /api/auth-service/health)" = 503 &&
	jq -e ".service == \"auth-service\" and .status == \"unhealthy\"" body &&
	echo "broken=0" >auth.conf &&
	test "$(get gw /api/gone/health)" = 502 &&
	jq -e ".status == \"unreachable\" and (.reason | test(\"connection refused\"))" body &&
	test "$(get gw /api/nobody/health)" = 404 &&
	test "$(get gw /)" = 200 &&
	jq -e ".upstreams == [\"auth-service\", \"gone\"]" body &&
	test_grep -x "GET /api/auth-service/health 200" gw.out &&
	test_grep -x "GET /api/auth-service/health 503" gw.out
'

# One curl, 40 connections open at once (--parallel-immediate: no waiting
# to reuse one); then one request written in pieces that split the request
# line, a header and the body, with a second request behind it.
test_expect_success 'many connections at once, and a request in pieces' '
	url="http://127.0.0.1:$(cat auth.port)/health" &&
	args=() &&
	for i in $(seq 1 40); do args+=(-o /dev/null "$url"); done &&
	curl -s --parallel --parallel-immediate --parallel-max 40 --max-time 10 \
		-w "%{http_code}\n" "${args[@]}" >codes &&
	sort codes | uniq -c | sed "s/^ *//" >actual &&
	echo "40 200" >expect &&
	test_cmp expect actual &&
	exec 3<>"/dev/tcp/127.0.0.1/$(cat auth.port)" &&
	printf "GET /hea" >&3 && sleep 0.1 &&
	printf "lth HTTP/1.1\r\nHost: x\r\nContent-Le" >&3 && sleep 0.1 &&
	printf "ngth: 4\r\n\r\nab" >&3 && sleep 0.1 &&
	printf "cdGET / HTTP/1.1\r\nConnection: close\r\n\r\n" >&3 &&
	timeout 5 cat <&3 >pieces &&
	exec 3<&- &&
	grep -c "^HTTP/1.1 200 OK" pieces >count &&
	echo 2 >expect &&
	test_cmp expect count &&
	test_grep -F "\"status\":\"healthy\"" pieces &&
	test_grep -F "\"upstreams\":[]" pieces &&
	test_grep -F "Connection: close" pieces
'

test_expect_success 'Redis stopped: 503 naming Redis' '
	net_stop "$REDIS_PID" &&
	expect_health auth 503 "redis 127.0.0.1:$REDIS_PORT: connection refused"
'

test_expect_success 'PostgreSQL down: 503 naming PostgreSQL' '
	pg_stop "$PGROOT" &&
	expect_health auth 503 "postgres 127.0.0.1:$PG_PORT: connection refused" &&
	test_grep -x "GET /health 503" auth.out
'

test_expect_success 'something that is not PostgreSQL: 503' '
	svc_start notpg JWT_SECRET="$JWT" POSTGRES_PASSWORD="$PG_PW" -- \
		--name record-service --release 1.0.0 \
		--postgres "127.0.0.1:$(cat gw.port)" &&
	expect_health notpg 503 "postgres 127.0.0.1:$(cat gw.port): connection timed out" &&
	svc_stop notpg
'

test_expect_success 'bad flags: status 2 and a message' '
	test_must_fail_with 2 "$PYAIRTABLE_SERVICE_BIN" --name x --release 1 >out 2>&1 &&
	test_grep -F "pyairtable-service: --name, --port and --release are required" out &&
	test_must_fail_with 2 "$PYAIRTABLE_SERVICE_BIN" --name x --release 1 --port 1 \
		--redis nowhere >out 2>&1 &&
	test_grep -F "bad --redis '\''nowhere'\'' (want HOST:PORT)" out
'

test_expect_success 'SIGTERM stops every service within a second, with status 0' '
	svc_stop gw &&
	svc_stop auth &&
	test_grep -x "auth-service stopping on SIGTERM" auth.out
'

test_expect_success 'no secret in any output' '
	cat ./*.out >all &&
	test_grep "listening on" all &&
	test_grep ! -F "$JWT" all &&
	test_grep ! -F "$PG_PW" all &&
	test_grep ! -F "$REDIS_PW" all
'

test_expect_success 'nothing is left running' '
	ls ./*.pid >left 2>/dev/null || : &&
	test_cmp /dev/null left &&
	for id in auth gw nojwt nopg extra badpw notpg; do
		test -e "$id.rc" || echo "$id has no exit status"
	done >left &&
	test_cmp /dev/null left &&
	{ ! proc_alive "$REDIS_PID"; } &&
	{ ! proc_alive "$PG_PID"; } &&
	test_path_is_missing "$PGROOT/data/postmaster.pid"
'

test_done
