#!/bin/sh
# The PyAirtable example deployed for real on this machine (issue 6): a
# real PostgreSQL, Redis and nginx from Debian, thirteen example services,
# deployed, killed with SIGKILL mid-rollout and resumed, broken and rolled
# back, promoted, and torn down. Nothing here is faked. Ports come from the
# example's environments (dev 18000+, staging 28000+): the suite runs alone.
. "$(dirname "$0")/../cli/lib.sh"
. "$(dirname "$0")/../cli/netlib.sh"

net_need nginx nginx || test_skip_all "nginx is not installed"
net_need redis-server redis-server || test_skip_all "redis-server is not installed"
net_need initdb postgresql || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
  test_skip_all "PostgreSQL is not installed"
[ -x "${PYAIRTABLE_SERVICE_BIN:-}" ] ||
  test_skip_all "no example service binary (PYAIRTABLE_SERVICE_BIN)"

EX=$CAIRN_SRCDIR/examples/pyairtable-local
SETS="--set example_dir=$EX --set service_bin=$PYAIRTABLE_SERVICE_BIN"
SERVICES="frontend:0 llm-orchestrator:3 analytics-service:5 api-gateway:80
auth-service:81 user-service:82 workspace-service:83 table-service:84
record-service:85 field-service:86 file-processing-service:92
webhook-service:96 plugin-service:97"

deploy() { # ENV [--set ...]: runs deploy.yaml, output in deploy.out
  env=$1; shift
  # shellcheck disable=SC2086 # SETS is words on purpose
  cairn run "$EX/deploy.yaml" --env "$env" $SETS "$@" >deploy.out 2>&1
}

teardown() { # ENV
  cairn run "$EX/teardown.yaml" --env "$1" >teardown.out 2>&1
}

# health PORT: the body of GET /health (fails unless 200)
health() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/health"
}

# the name a service answers with: the gateway says its colour, so that a
# check through nginx tells which colour served it
answers_as() { # NAME COLOUR
  case $1 in api-gateway) echo "$1-$2" ;; *) echo "$1" ;; esac
}

# every_healthy BASE RELEASE COLOUR: each service of the colour at BASE
# (blue: env base + 100) answers healthy with its name and RELEASE.
every_healthy() {
  for s in $SERVICES; do
    name=$(answers_as "${s%%:*}" "$3") off=${s#*:}
    body=$(health $(($1 + off))) || { echo "$name: no answer"; return 1; }
    echo "$body" | jq -e --arg n "$name" --arg v "$2" \
      '.status == "healthy" and .service == $n and .version == $v' \
      >/dev/null || { echo "$name: $body"; return 1; }
  done
}

# one_process_each DIR COLOUR: every service has one pid file in DIR and
# exactly one live process whose argv names it (ps), and that is the pid
# file's.
one_process_each() {
  for s in $SERVICES; do
    pf=$1/${s%%:*}.pid
    name=$(answers_as "${s%%:*}" "$2")
    test_path_is_file "$pf" || return 1
    pid=$(jq -r .pid "$pf")
    # pgrep never counts itself
    n=$(pgrep -fc -- "pyairtable-service --name $name --port ") || n=0
    [ "$n" -eq 1 ] || { echo "$name: $n processes"; pgrep -fa -- "--name $name"; return 1; }
    ps -o args= -p "$pid" | grep -q -- "--name $name" ||
      { echo "$name: pid file names $pid, not the running one"; return 1; }
  done
}

stack_ports() { # BASE: every port of the stack of one environment
  echo $(($1 + 32)) $(($1 + 79)) $(($1 + 80))
  for s in $SERVICES; do
    off=${s#*:}
    echo $(($1 + 100 + off)) $(($1 + 200 + off))
  done
}

nothing_listens() { # BASE
  for p in $(stack_ports "$1"); do
    if ss -Hltn "sport = :$p" | grep -q .; then
      echo "port $p still listens"; return 1
    fi
  done
}

cleanup_stacks() {
  for e in dev staging; do
    [ -d .cairn/pyairtable-$e ] || continue
    "$CAIRN_BIN" run "$EX/teardown.yaml" --env "$e" >/dev/null 2>&1 || true
  done
}
# lib.sh's own exit (the trash folder, the test_done check) after ours
trap 'cleanup_stacks; _cairn_test_exit' EXIT

test_expect_success 'the example and the standard workflows validate' '
  cairn validate "$EX/deploy.yaml" &&
  cairn validate "$EX/teardown.yaml"
'

test_expect_success 'deploy 1.0.0 to dev, SIGKILL in the middle of the rollout, resume' '
  # the binary itself in the background, not the cairn() function: $! is
  # then the engine
  # shellcheck disable=SC2086
  "$CAIRN_BIN" run "$EX/deploy.yaml" --env dev $SETS >first.out 2>&1 &
  pid=$! &&
  # the application layer has started: the core layer is up, more is to come
  i=0 &&
  until [ "$(q "SELECT count(*) FROM events WHERE kind = '\''state.entered'\'' AND state LIKE '\''application/%'\''" 2>/dev/null)" -gt 1 ] 2>/dev/null; do
    i=$((i + 1)) && [ $i -lt 600 ] || { cat first.out; return 1; }
    sleep 0.1
  done &&
  kill -KILL $pid &&
  { wait $pid; true; } &&
  run=$(last_run) &&
  test "$(q "SELECT status FROM runs WHERE id = '\''$run'\''")" = running &&
  cairn resume "$run" >resume.out 2>&1 ||
    { cat first.out resume.out; return 1; }
  test "$(q "SELECT status FROM runs WHERE id = '\''$run'\''")" = succeeded
'

test_expect_success 'after the resume every service is healthy, each started once' '
  every_healthy 18100 1.0.0 blue &&
  one_process_each .cairn/pyairtable-dev/blue blue &&
  # through nginx: the live colour is blue, with 1.0.0
  health 18080 | jq -e ".service == \"api-gateway-blue\" and .version == \"1.0.0\"" &&
  curl -fsS http://127.0.0.1:18080/api/auth-service/health |
    jq -e ".service == \"auth-service\""
'

test_expect_success 'cairn verify passes after the crash and the resume' '
  cairn verify
'

test_expect_success 'a broken 1.1.0 rolls back; nginx still routes to blue with 1.0.0' '
  test_must_fail_with 1 deploy dev --set release=1.1.0 ||
    { cat deploy.out; return 1; }
  grep -q "rolled back" deploy.out &&
  health 18080 | jq -e ".service == \"api-gateway-blue\" and .version == \"1.0.0\"" &&
  every_healthy 18100 1.0.0 blue &&
  # the idle colour it tried is stopped again
  for s in $SERVICES; do
    ! curl -fsS --max-time 2 "http://127.0.0.1:$((18200 + ${s#*:}))/health" \
      >/dev/null 2>&1 || return 1
  done
'

test_expect_success 'promote 1.0.0 to staging, healthy there' '
  # shellcheck disable=SC2086
  cairn promote "$EX/deploy.yaml" --to staging --release 1.0.0 $SETS \
    >promote.out 2>&1 || { cat promote.out; return 1; }
  every_healthy 28100 1.0.0 blue &&
  health 28080 | jq -e ".version == \"1.0.0\""
'

test_expect_success 'teardown leaves no process and no listening port' '
  teardown dev && teardown staging || { cat teardown.out; return 1; }
  nothing_listens 18000 &&
  nothing_listens 28000 &&
  # (the processes of this test only: other suites run services too)
  ! pgrep -fa "^$PYAIRTABLE_SERVICE_BIN " &&
  ! pgrep -fa "$PWD/.cairn/pyairtable-"
'

test_done
