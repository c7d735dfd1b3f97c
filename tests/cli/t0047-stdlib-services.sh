#!/bin/bash
# t0047-stdlib-services: rollout.yaml and blue-green.yaml with the example
# service and a real nginx from Debian on free loopback ports. A release
# whose port an older process holds (and which would die of "address
# already in use" only after its wait, while the checks got their answers
# from the old process) is refused before it starts, and the old process
# is left as it was. blue-green.yaml refuses the live colour before it
# starts or stops anything (a later failure's rollback used to stop what
# served); a run killed after any of its commits resumes to the new colour
# live, the refusal notwithstanding; a deploy stops the older release
# left in the idle colour (it used to fail on its pid file) but keeps the
# very release an earlier step started there; the rollback of such a
# deploy leaves the live colour serving, and leaves running the release
# an older deploy left in the idle colour when the deploy adopted it, as
# rollout.yaml leaves the services an earlier run started.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

: "${PYAIRTABLE_SERVICE_BIN:=${CAIRN_BUILDDIR:-$CAIRN_SRCDIR/build}/examples/pyairtable-local/service/pyairtable-service}"
[ -x "$PYAIRTABLE_SERVICE_BIN" ] ||
  _cairn_test_bail "no pyairtable-service at $PYAIRTABLE_SERVICE_BIN (build first)"
command -v curl >/dev/null || test_skip_all "curl is not installed"
net_need_nginx || test_skip_all "nginx is not installed (apt-get install nginx)"
export CAIRN_WORKFLOWS=$CAIRN_SRCDIR/workflows
WF=$CAIRN_SRCDIR/workflows
SVC=$PYAIRTABLE_SERVICE_BIN
export JWT_SECRET=jwt-test

P_NGINX=$(free_port) && P_BLUE=$(free_port) && P_GREEN=$(free_port) ||
  _cairn_test_bail "no free port"
while [ "$P_BLUE" = "$P_NGINX" ]; do P_BLUE=$(free_port); done
while [ "$P_GREEN" = "$P_NGINX" ] || [ "$P_GREEN" = "$P_BLUE" ]; do P_GREEN=$(free_port); done
NX=$TRASH/nginx
BG=$TRASH/bg

pid_of() { jq -r .pid "$1"; }

# Everything a test started, by its pid file: the services (cairn's pid
# files and the tests' own) and nginx. Tests run in subshells: netlib's
# list of pids does not reach this one.
stop_all() { # keeps $? for _cairn_test_exit
  local st=$? f
  for f in "$BG"/*.pid "$TRASH"/svc/*.pid "$TRASH"/*.pid "$NX/nginx.pid"; do
    [ -s "$f" ] && net_stop "$(jq -r 'if type == "object" then .pid else . end' "$f")"
  done
  return $st
}
trap 'stop_all; _cairn_test_exit' EXIT

# An older process of the service on PORT, started by hand (no pid file
# of cairn's): answers /health as NAME, release 0.9.0. Its pid in
# ID.pid.
old_process() { # ID NAME PORT
  "$SVC" --name "$2" --port "$3" --release 0.9.0 </dev/null >"$1.out" 2>&1 &
  echo $! >"$1.pid"
  wait_listening "$3"
}

# The argv of a release that dies of a taken port 0.6 s after it started,
# after process.start's wait: as a service that sets itself up first does.
slow_argv() { # NAME PORT RELEASE
  printf '["sh","-c","sleep 0.6; exec \\"$0\\" \\"$@\\"","%s","--name","%s","--port","%s","--release","%s"]' \
    "$SVC" "$1" "$2" "$3"
}
argv() { # NAME PORT RELEASE
  printf '["%s","--name","%s","--port","%s","--release","%s"]' "$SVC" "$1" "$2" "$3"
}

# served: what nginx serves, "NAME RELEASE", within 5 s of a change (after
# a reload the old workers may take a request or two).
served_is() { # NAME RELEASE
  local got=
  for _ in $(seq 50); do
    got=$(curl -fsS --max-time 2 "http://127.0.0.1:$P_NGINX/health" 2>/dev/null |
          jq -r '.service + " " + .version' 2>/dev/null) || got=
    [ "$got" = "$1 $2" ] && return 0
    sleep 0.1
  done
  echo "nginx serves '${got:-nothing}', not '$1 $2'"
  return 1
}

# bg COLOUR RELEASE [ARGV-JSON] [cairn run args...]: blue-green.yaml for
# api-COLOUR behind nginx.
bg() {
  local c=$1 rel=$2 p=$P_BLUE a
  shift 2
  [ "$c" = green ] && p=$P_GREEN
  a=$(argv "api-$c" "$p" "$rel")
  case ${1:-} in '['*) a=$1; shift ;; esac
  cairn run "$WF/blue-green.yaml" --set colour="$c" --set name="api-$c" \
    --set port="$p" --set argv="$a" --set env="{\"JWT_SECRET\":\"$JWT_SECRET\"}" \
    --set dir="$BG" --set within=5s \
    --set upstreams="{\"blue\":\"127.0.0.1:$P_BLUE\",\"green\":\"127.0.0.1:$P_GREEN\"}" \
    --set include="$NX/live.conf" --set nginx_conf="$NX/nginx.conf" \
    --set nginx_prefix="$NX" --set router_url="http://127.0.0.1:$P_NGINX/health" "$@"
}

test_expect_success 'nginx up; the first blue-green deploy makes blue 1.0.0 live' '
  nginx_start "$NX" "
  upstream app { server 127.0.0.1:9 down; include $NX/[l]ive.conf; }
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://app; } }" &&
  bg blue 1.0.0 >out 2>&1 &&
  served_is api-blue 1.0.0 &&
  test_grep "# cairn switch.blue-green: blue" "$NX/live.conf"
'

test_expect_success 'blue-green: an old process on the new colour'\''s port: refused, nothing started' '
  old_process oldgreen api-green "$P_GREEN" &&
  test_must_fail_with 1 bg green 1.1.0 "$(slow_argv api-green "$P_GREEN" 1.1.0)" >out 2>&1 &&
  test_grep -F "state '\''start'\'' failed: port $P_GREEN is already taken (something listens on it); stop what holds it or choose another port" out &&
  test_path_is_missing "$BG/api-green.pid" &&
  served_is api-blue 1.0.0 &&
  proc_alive "$(cat oldgreen.pid)" &&
  net_stop "$(cat oldgreen.pid)" && rm oldgreen.pid
'

test_expect_success 'rollout: an old process on a service'\''s port: refused, the layer rolled back' '
  P1=$(free_port) && P2=$(free_port) &&
  old_process oldweb web "$P2" &&
  test_must_fail_with 1 cairn run "$WF/rollout.yaml" --set dir="$TRASH/svc" \
    --set services="[{\"name\":\"api\",\"port\":$P1,\"argv\":$(argv api "$P1" 1.1.0)},{\"name\":\"web\",\"port\":$P2,\"argv\":$(slow_argv web "$P2" 1.1.0)}]" >out 2>&1 &&
  test_grep -F "state '\''start/web'\'' failed: port $P2 is already taken (something listens on it); stop what holds it or choose another port" out &&
  test_path_is_missing svc/web.pid && test_path_is_missing svc/api.pid &&
  proc_alive "$(cat oldweb.pid)" &&
  curl -fsS "http://127.0.0.1:$P2/health" | jq -e ".version == \"0.9.0\"" &&
  net_stop "$(cat oldweb.pid)" && rm oldweb.pid
'

# blue-green.yaml used by a deploy whose later step fails (fail=yes): the
# rollback undoes what blue-green did.
write_workflow outer.yaml <<EOF
cairn: 1
name: outer
params:
  colour: {}
  port: { type: integer }
  release: {}
  fail: { default: "" }
start: bg
states:
  bg:
    use: cairn:blue-green.yaml
    with:
      colour: "{{ params.colour }}"
      name: "api-{{ params.colour }}"
      port: "{{ params.port }}"
      argv: ["$SVC", --name, "api-{{ params.colour }}", --port, "{{ '' + params.port }}",
             --release, "{{ params.release }}"]
      env: { JWT_SECRET: "$JWT_SECRET" }
      dir: "$BG"
      within: 5s
      upstreams: { blue: "127.0.0.1:$P_BLUE", green: "127.0.0.1:$P_GREEN" }
      include: "$NX/live.conf"
      nginx_conf: "$NX/nginx.conf"
      nginx_prefix: "$NX"
      router_url: "http://127.0.0.1:$P_NGINX/health"
    next: after
  after:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

# started: the states of the last run that started an action
started() {
  q "SELECT DISTINCT state FROM events WHERE run_id = '$(last_run)'
     AND kind = 'action.started' ORDER BY seq"
}

# Deploying the live colour again: its start adopted the live process,
# the switch went blue to blue, and the rollback of a later failure
# stopped what served (nginx 502).
test_expect_success 'blue-green refuses the live colour, before starting anything' '
  blue=$(pid_of "$BG/api-blue.pid") &&
  test_must_fail_with 1 cairn run outer.yaml --set colour=blue --set port="$P_BLUE" \
    --set release=1.0.0 --set fail=yes >out 2>&1 &&
  test_grep -F "reached fail state '\''bg/colour_is_live'\'': colour '\''blue'\'' is the live one (the include '\''$NX/live.conf'\'' names it): deploying it would stop what serves; deploy the idle colour (green) instead; rolled back: nothing to undo" out &&
  started >actual && echo bg/live >expect && test_cmp expect actual &&
  test "$(pid_of "$BG/api-blue.pid")" = "$blue" && proc_alive "$blue" &&
  served_is api-blue 1.0.0 &&
  # alone, with another release: the same
  test_must_fail_with 1 bg blue 2.0.0 >out 2>&1 &&
  test_grep -F "reached fail state '\''colour_is_live'\'': colour '\''blue'\'' is the live one" out &&
  test "$(pid_of "$BG/api-blue.pid")" = "$blue" && proc_alive "$blue" &&
  served_is api-blue 1.0.0
'

# blue_live: blue 1.0.0 (the first test's) is what nginx serves, green
# runs nothing
blue_live() {
  if [ -e "$BG/api-green.pid" ]; then
    net_stop "$(pid_of "$BG/api-green.pid")" && rm -f "$BG/api-green.pid"
  fi
  printf '# cairn switch.blue-green: blue\nserver 127.0.0.1:%s;\n' "$P_BLUE" >"$NX/live.conf" &&
  nginx -p "$NX" -c "$NX/nginx.conf" -s reload 2>/dev/null &&
  served_is api-blue 1.0.0
}

# After its switch the new colour is live: the refusal must not stop a
# resumed run there (it is checked once, as the run enters the workflow).
test_expect_success 'a run killed after any commit resumes to the new colour, the old one untouched' '
  blue=$(pid_of "$BG/api-blue.pid") && k=1 && resumed=0 && switched=0 &&
  while :; do
    blue_live && n0=$(q "SELECT count(*) FROM runs") &&
    st=0 && CAIRN_TEST_KILL_AFTER_COMMIT=$k bg green 1.2.0 >run.out 2>&1 || st=$? &&
    if [ "$st" -ne 137 ]; then
      test "$st" -eq 0 || { echo "kill after $k: the run exited $st"; cat run.out; return 1; }
      break
    fi &&
    if [ "$(q "SELECT count(*) FROM runs")" = "$n0" ]; then
      k=$((k + 1)) && continue # killed before the run began
    fi &&
    run=$(last_run) &&
    case $(q "SELECT status FROM runs WHERE id = '\''$run'\''") in
    running)
      q "SELECT '\''kill after '\'' || $k || '\'': '\'' || group_concat(state, '\'' '\'')
         FROM events WHERE run_id = '\''$run'\'' AND kind = '\''action.finished'\''" &&
      switched=$((switched + $(q "SELECT count(*) FROM events WHERE run_id = '\''$run'\''
                                  AND kind = '\''action.finished'\'' AND state = '\''switch'\''"))) &&
      cairn resume "$run" >res.out 2>&1 ||
        { echo "kill after $k: resume failed"; cat res.out; return 1; }
      resumed=$((resumed + 1)) ;;
    succeeded) ;;
    *) echo "kill after $k: run $run is $(q "SELECT status FROM runs WHERE id = '\''$run'\''")"
       return 1 ;;
    esac &&
    served_is api-green 1.2.0 &&
    test "$(pid_of "$BG/api-blue.pid")" = "$blue" && proc_alive "$blue" &&
    k=$((k + 1)) || return 1
  done &&
  echo "$resumed runs resumed ($switched after the switch); the run ended after commit $k" &&
  test "$resumed" -ge 5 && test "$switched" -ge 1
'

# The idle colour still runs the release an older deploy left there:
# deploying blue 1.0.0, green, then blue 2.0.0 failed on blue's pid file.
test_expect_success 'a deploy stops what an older deploy left in the idle colour' '
  blue=$(pid_of "$BG/api-blue.pid") && green=$(pid_of "$BG/api-green.pid") &&
  served_is api-green 1.2.0 &&
  bg blue 2.0.0 >out 2>&1 && last_run >blue2.run &&
  served_is api-blue 2.0.0 &&
  ! proc_alive "$blue" && test "$(pid_of "$BG/api-blue.pid")" != "$blue" &&
  proc_alive "$green" && test "$(pid_of "$BG/api-green.pid")" = "$green" &&
  q "SELECT json_extract(payload, '\''$.outputs.stopped'\'') FROM events
     WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
     AND state = '\''retire'\''" >actual &&
  echo 1 >expect && test_cmp expect actual
'

# What retire stopped cannot be started again: after the rollback the
# live colour serves on and the idle one runs nothing.
test_expect_success 'the rollback of such a deploy: the live colour serves on, the idle one runs nothing' '
  blue=$(pid_of "$BG/api-blue.pid") && green=$(pid_of "$BG/api-green.pid") &&
  test_must_fail_with 1 cairn run outer.yaml --set colour=green --set port="$P_GREEN" \
    --set release=3.0.0 --set fail=yes >out 2>&1 &&
  test_grep "rolled back: bg/switch, bg/start$" out &&
  served_is api-blue 2.0.0 &&
  proc_alive "$blue" && test "$(pid_of "$BG/api-blue.pid")" = "$blue" &&
  ! proc_alive "$green" && test_path_is_missing "$BG/api-green.pid" &&
  # undoing the deploy that made blue live would switch back to green,
  # where nothing answers: the switch puts nginx back and fails
  test_must_fail_with 6 cairn rollback "$(cat blue2.run)" >out 2>&1 &&
  test_grep "rollback failed" out &&
  served_is api-blue 2.0.0 && proc_alive "$blue"
'

# As in the example: an earlier step of the deploy started the idle
# colour's release already (rollout.yaml, same pid file and argv).
test_expect_success 'the release an earlier step started in the idle colour is kept, not restarted' '
  cairn run "$WF/rollout.yaml" --set dir="$BG" --set env="{\"JWT_SECRET\":\"$JWT_SECRET\"}" \
    --set services="[{\"name\":\"api-green\",\"port\":$P_GREEN,\"argv\":$(argv api-green "$P_GREEN" 3.0.0)}]" >out 2>&1 &&
  green=$(pid_of "$BG/api-green.pid") &&
  bg green 3.0.0 >out 2>&1 &&
  served_is api-green 3.0.0 &&
  test "$(pid_of "$BG/api-green.pid")" = "$green" && proc_alive "$green" &&
  q "SELECT json_extract(payload, '\''$.outputs.kept'\'') FROM events
     WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
     AND state = '\''retire'\''" >actual &&
  echo 1 >expect && test_cmp expect actual
'

# The idle colour runs, from an older deploy, the very release deployed
# again: retire keeps it, start adopts it. A rollback of that deploy
# must leave it as the deploy found it, running (it used to stop it).
test_expect_success 'the rollback of a deploy that adopted what an older deploy left running leaves it' '
  blue=$(pid_of "$BG/api-blue.pid") && green=$(pid_of "$BG/api-green.pid") &&
  served_is api-green 3.0.0 && proc_alive "$blue" &&
  cp "$BG/api-blue.pid" blue.pid.before &&
  test_must_fail_with 1 cairn run outer.yaml --set colour=blue --set port="$P_BLUE" \
    --set release=2.0.0 --set fail=yes >out 2>&1 &&
  test_grep "rolled back: bg/switch, bg/start$" out &&
  served_is api-green 3.0.0 &&
  proc_alive "$blue" && cmp blue.pid.before "$BG/api-blue.pid" &&
  proc_alive "$green" &&
  q "SELECT json_extract(payload, '\''$.outputs.adopted'\'') FROM events
     WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
     AND state = '\''bg/start'\''" >actual &&
  echo 1 >expect && test_cmp expect actual
'

# rollout.yaml run again over a layer an earlier run started: the
# services that run already are adopted, and when another one of the
# layer never gets healthy, the rollback stops only what this run started.
test_expect_success 'rollout: a failed layer leaves running what an earlier run started' '
  P1=$(free_port) && P2=$(free_port) &&
  api="{\"name\":\"api\",\"port\":$P1,\"argv\":$(argv api "$P1" 1.0.0)}" &&
  cairn run "$WF/rollout.yaml" --set dir="$TRASH/svc" --set services="[$api]" \
    --set env="{\"JWT_SECRET\":\"$JWT_SECRET\"}" >out 2>&1 &&
  pid=$(pid_of svc/api.pid) && proc_alive "$pid" &&
  test_must_fail_with 1 cairn run "$WF/rollout.yaml" --set dir="$TRASH/svc" --set within=1s \
    --set services="[$api,{\"name\":\"web\",\"port\":$P2,\"argv\":[\"sleep\",\"300\"]}]" \
    --set env="{\"JWT_SECRET\":\"$JWT_SECRET\"}" >out 2>&1 &&
  test_grep "rolled back: " out &&
  web=$(q "SELECT json_extract(payload, '\''$.outputs.pid'\'') FROM events
           WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
           AND state = '\''start/web'\''") &&
  test -n "$web" && ! proc_alive "$web" && test_path_is_missing svc/web.pid &&
  proc_alive "$pid" && test "$(pid_of svc/api.pid)" = "$pid" &&
  curl -fsS "http://127.0.0.1:$P1/health" | jq -e ".version == \"1.0.0\"" &&
  net_stop "$pid" && rm svc/api.pid
'

test_done
