#!/bin/sh
# Every workflow of the standard library (workflows/) and of the examples
# passes `cairn validate`, and `cairn simulate` with a failure injected at
# each action its happy path runs, one at a time, gives a trace that holds
# together: the action named fails, nothing else does, no forward action
# starts after it unless an on_failure sends the run to a state, every undo
# in the rollback plan is of an action that completed before, the undos run
# once each in plan order, and the run ends the way its result says.
. "$(dirname "$0")/lib.sh"

# Params of the standard workflows, as a caller would give them (nothing
# runs: paths and ports only appear in the trace).
known_sets() { # FILE
  case $1 in
    */workflows/blue-green.yaml) printf '%s\n' colour=green name=api-green \
      port=18201 'argv=["/bin/sleep","300"]' dir=/srv/bg \
      'upstreams={"blue":"127.0.0.1:18101","green":"127.0.0.1:18201"}' \
      include=/srv/nginx/live.conf router_url=http://127.0.0.1:18080/health ;;
    */workflows/env-setup.yaml) printf '%s\n' secrets_file=/srv/secrets.env \
      'names=["DB_PASSWORD","API_KEY"]' \
      'files=[{"path":"/srv/a.conf","mode":"0644","content":"a=1"}]' ;;
    */workflows/migrate.yaml) printf '%s\n' dir=/srv/migrations db=/srv/app.db ;;
    */workflows/postgres.yaml) printf '%s\n' dir=/srv/pg port=15432 password=pw ;;
    */workflows/redis.yaml) printf '%s\n' dir=/srv/redis port=16379 password=pw ;;
    */workflows/rollout.yaml) printf '%s\n' dir=/srv/svc \
      'services=[{"name":"web","port":18080,"argv":["/bin/sleep","300"]},{"name":"api","port":18081,"argv":["/bin/sleep","300"]}]' ;;
    */workflows/validate.yaml) printf '%s\n' \
      'services=[{"name":"web","port":18080},{"name":"api","port":18081}]' \
      'smoke=[{"name":"home","url":"http://127.0.0.1:18080/","status":200,"json":{}}]' ;;
    */nginx/nginx.yaml) printf '%s\n' prefix=/srv/nginx port=18080 ;;
    */pyairtable-k8s/layer.yaml) printf '%s\n' \
      'services=["auth-service","user-service"]' release=1.0.0 colour=green \
      namespace=pyairtable env_values=values/dev.yaml ;;
  esac
}

# Required params get values of their type, found from the errors: a
# string first, then what the error says the param must be.
sets_for() { # FILE [ENV]: prints --set arguments, one per line
  file=$1 env=${2:-}
  known_sets "$file" >sets
  i=0
  while [ $i -lt 30 ]; do
    i=$((i + 1))
    set -- simulate "$file"
    [ -n "$env" ] && set -- "$@" --env "$env"
    while IFS= read -r s; do set -- "$@" --set "$s"; done <sets
    if "$CAIRN_BIN" "$@" --json >/dev/null 2>err; then
      cat sets
      return 0
    fi
    if p=$(sed -n "s/^cairn: param '\([A-Za-z0-9_]*\)' is required.*/\1/p" err) && [ -n "$p" ]; then
      echo "$p=x" >>sets
    elif p=$(sed -n "s/^cairn: param '\([A-Za-z0-9_]*\)' must match .*/\1/p" err) && [ -n "$p" ]; then
      # a pattern: most are versions
      grep -v "^$p=" sets >sets.new; mv sets.new sets
      echo "$p=1.0.0" >>sets
    elif p=$(sed -n "s/^cairn: param '\([A-Za-z0-9_]*\)' must be \(a list\|an object\|an integer\|a number\|a boolean\).*/\1 \2/p" err) && [ -n "$p" ]; then
      name=${p%% *} want=${p#* }
      case $want in
        "a list") v='["a","b"]' ;;
        "an object") v='{}' ;;
        "an integer"|"a number") v=1 ;;
        "a boolean") v=true ;;
      esac
      grep -v "^$name=" sets >sets.new; mv sets.new sets
      echo "$name=$v" >>sets
    else
      cat err >&2
      return 1
    fi
  done
  return 1
}

simulate() { # FILE ENV SETS-FILE [--fail-at P]: JSON lines on stdout
  file=$1 env=$2 setsf=$3
  shift 3
  set -- simulate "$file" --json "$@"
  [ -n "$env" ] && set -- "$@" --env "$env"
  while IFS= read -r s; do set -- "$@" --set "$s"; done <"$setsf"
  "$CAIRN_BIN" "$@"
}

# check_trace P TRACE: the checks above, for a failure injected at P
check_trace() {
  jq -s -e --arg p "$1" '
    . as $ev
    | [$ev[] | select(.kind == "action.finished" and .payload.outcome == "failed")] as $failed
    | ($failed[0].seq // 0) as $at
    | ([$ev[] | select(.kind == "rollback.planned") | .seq][0] // 1e18) as $planned
    # what completed (or was cancelled: it may have done part) before the plan
    | [$ev[] | select(.kind == "action.finished" and .seq < $planned
                      and (.payload.outcome == "succeeded" or .payload.outcome == "cancelled"))
       | .state] as $done
    # an on_failure that names a state lets forward actions go on
    | [$ev[] | select(.kind == "transition" and .payload.reason == "on_failure"
                      and .payload.to != "rollback" and .payload.to != "")] as $redirect
    | [$ev[] | select(.kind == "action.started" and .seq > $at
                      and (.state | startswith("undo:") | not) and .state != $p)] as $after
    | [$ev[] | select(.kind == "rollback.planned") | .payload.steps[]] as $plan
    | [$ev[] | select(.kind == "state.entered" and .payload.kind == "undo") | .state] as $undos
    | ([$ev[] | select(.kind == "result")][0]) as $r
    # the action named fails, and no other action or undo
    | ($failed | length) >= 1
      and ([$failed[] | .state] | unique) == [$p]
      # no forward action after it, unless an on_failure sent the run on
      and (($redirect | length) > 0 or ($after | length) == 0)
      # the plan: undos of completed actions only, each run once, in order
      and ([$plan[] | .path] - $done) == []
      and $undos == [$plan[] | .undo_path]
      # the end agrees with the result line
      and $r != null
      and (if $r.status == "failed" then $r.exit_code == 1 else true end)
  ' "$2" >/dev/null
}

# every workflow file: the YAML files that say `cairn: 1` (the examples
# also hold Helm values, charts and kustomizations)
FILES=$(cd "$CAIRN_SRCDIR" && grep -l "^cairn: 1" workflows/*.yaml \
          examples/*/*.yaml examples/*/*/*.yaml 2>/dev/null)

test_expect_success 'there are workflows to check' '
  test "$(echo "$FILES" | wc -l)" -ge 10
'

for f in $FILES; do
  path=$CAIRN_SRCDIR/$f
  env=
  grep -q "^environments:" "$path" && env=dev
  test_expect_success "validate $f" '
    cairn validate "$path"
  '
  test_expect_success "simulate $f with a failure at each action" '
    sets_for "$path" "$env" >sets.ok &&
    simulate "$path" "$env" sets.ok >happy.json &&
    tail -n 1 happy.json | jq -e ".kind == \"result\"" >/dev/null &&
    jq -r "select(.kind == \"action.started\") | .state" happy.json |
      grep -v "^undo:" | awk "!seen[\$0]++" >actions &&
    test -s actions &&
    while IFS= read -r p; do
      simulate "$path" "$env" sets.ok --fail-at "$p" >trace.json &&
      check_trace "$p" trace.json || {
        echo "$f: the trace of --fail-at $p does not hold together:"
        cat trace.json
        return 1
      }
    done <actions
  '
done

test_expect_success 'the checks catch a trace that does not hold together' '
  # a rollback plan naming an action that never completed
  printf "%s\n" \
    "{\"kind\":\"action.started\",\"state\":\"a\",\"seq\":1,\"payload\":{}}" \
    "{\"kind\":\"action.finished\",\"state\":\"a\",\"seq\":2,\"payload\":{\"outcome\":\"failed\"}}" \
    "{\"kind\":\"rollback.planned\",\"state\":\"a\",\"seq\":3,\"payload\":{\"steps\":[{\"path\":\"b\",\"undo_path\":\"undo:b\"}]}}" \
    "{\"kind\":\"state.entered\",\"state\":\"undo:b\",\"seq\":4,\"payload\":{\"kind\":\"undo\"}}" \
    "{\"kind\":\"result\",\"status\":\"failed\",\"exit_code\":1}" >bad.json &&
  ! check_trace a bad.json &&
  # and one where a forward action starts after the failure
  printf "%s\n" \
    "{\"kind\":\"action.finished\",\"state\":\"a\",\"seq\":2,\"payload\":{\"outcome\":\"failed\"}}" \
    "{\"kind\":\"action.started\",\"state\":\"c\",\"seq\":3,\"payload\":{}}" \
    "{\"kind\":\"result\",\"status\":\"failed\",\"exit_code\":1}" >bad2.json &&
  ! check_trace a bad2.json
'

test_expect_success 'validate.yaml refuses a health_path without its leading /' '
  test_must_fail_with 2 cairn simulate "$CAIRN_SRCDIR/workflows/validate.yaml" \
    --set health_path=health 2>err &&
  test_grep -F "param '\''health_path'\'' must match '\''^/'\'', got '\''health'\''" err
'

test_done
