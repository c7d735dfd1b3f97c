#!/bin/bash
# t0014-switch: switch.blue-green. symlink mode: atomic swap, from/to,
# idempotent, undo switching back. nginx mode against a real nginx on
# 127.0.0.1 (its own prefix, config, pid and logs in the trash folder, on
# free ports) serving a blue and a green backend: switch with an HTTP
# confirm through nginx, a broken include rejected by nginx -t and
# restored, the rollback switching back, also after kill -9 of cairn
# during the switch and a resume. nginx is stopped at the end.
. "$(dirname "$0")/lib.sh"

# ---- symlink mode ------------------------------------------------------------

mkdir -p releases/blue releases/green
echo blue >releases/blue/colour
echo green >releases/green/colour
ln -s releases/blue live

write_workflow sl.yaml <<\EOF
cairn: 1
name: sl
params:
  to: { default: green }
  fail: { default: "" }
start: switch
states:
  switch:
    do: switch.blue-green
    with: { to: "{{ params.to }}", link: live,
            targets: { blue: releases/blue, green: releases/green } }
    undo:
      do: switch.blue-green
      with: { to: "{{ self.output.from }}", mode: "{{ self.input.mode }}", link: "{{ self.input.link }}",
              targets: "{{ self.input.targets }}" }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

out_of() { # out_of STATE KEY: the output KEY of STATE in the last run
  q "SELECT json_extract(payload, '$.outputs.$2') FROM events
     WHERE kind = 'action.finished' AND state = '$1' AND run_id = '$(last_run)'
     ORDER BY seq LIMIT 1"
}

test_expect_success 'symlink: switch to green; from is blue' '
  cairn run sl.yaml &&
  test "$(readlink live)" = releases/green &&
  test "$(cat live/colour)" = green &&
  test "$(out_of switch from)" = blue &&
  test "$(out_of switch to)" = green
'

test_expect_success 'symlink: a second switch to green changes nothing' '
  cairn run sl.yaml &&
  test "$(out_of switch from)" = green &&
  test_grep "already points at green" .cairn/runs/$(last_run)/switch.log
'

test_expect_success 'symlink: a failed run switches back (undo)' '
  test_must_fail_with 1 cairn run sl.yaml --set to=blue --set fail=yes &&
  test "$(readlink live)" = releases/green
'

test_expect_success 'symlink: a live path that is a folder is refused' '
  mv live live.link && mkdir live &&
  test_must_fail_with 1 cairn run sl.yaml --set to=blue >out.txt 2>&1 &&
  test_grep "it is a directory, not a link" out.txt &&
  rmdir live && mv live.link live
'

test_expect_success 'symlink: mode "" is symlink mode, at check and at run' '
  sed "s/ link: live,/ mode: \"\", link: live,/" sl.yaml >empty-mode.yaml &&
  cairn validate empty-mode.yaml &&
  cairn run empty-mode.yaml --set to=blue &&
  test "$(readlink live)" = releases/blue &&
  sed "s/ link: live,/ mode: \"{{ params.fail }}\", link: live,/" sl.yaml >tmpl-mode.yaml &&
  cairn run tmpl-mode.yaml --set to=green &&
  test "$(readlink live)" = releases/green
'

# A link in a folder of its own, relative targets (from the working
# directory, as every path input), and the default undo.
mkdir -p combo/blue combo/green combo/releases/1.3
echo blue >combo/blue/colour
echo green >combo/green/colour
write_workflow cl.yaml <<\EOF
cairn: 1
name: cl
params:
  to: { default: green }
  green: { default: combo/green }
  fail: { default: "" }
start: switch
states:
  switch:
    do: switch.blue-green
    with: { to: "{{ params.to }}", link: combo/live,
            targets: { blue: combo/blue, green: "{{ params.green }}" } }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'symlink: a relative target is from the working directory; a relative link is told' '
  ln -s blue combo/live &&
  cairn run cl.yaml &&
  test "$(readlink combo/live)" = green &&
  test "$(cat combo/live/colour)" = green &&
  test "$(out_of switch from)" = blue &&
  test "$(out_of switch to)" = green
'

test_expect_success 'symlink: a target that does not exist is refused, the link untouched' '
  test_must_fail_with 1 cairn run cl.yaml --set to=green --set green=combo/gren >out.txt 2>&1 &&
  test_grep -F "state '\''switch'\'' failed: target '\''combo/gren'\'' of colour '\''green'\'' (input '\''targets'\'') does not exist (a relative target is from the working directory, '\''$TRASH'\''); create it or correct the path" out.txt &&
  test "$(readlink combo/live)" = green
'

test_expect_success 'symlink: the rollback puts back a link that named no colour, as it was' '
  ln -sfn releases/1.3 combo/live &&
  test_must_fail_with 1 cairn run cl.yaml --set fail=yes >out.txt 2>&1 &&
  test_grep "rolled back: switch" out.txt &&
  test "$(out_of switch from)" = "" &&
  test "$(readlink combo/live)" = releases/1.3
'

test_expect_success 'symlink: the rollback puts back a relative link the user made, as it was' '
  ln -sfn blue combo/live &&
  test_must_fail_with 1 cairn run cl.yaml --set fail=yes >out.txt 2>&1 &&
  test "$(out_of switch from)" = blue &&
  test "$(readlink combo/live)" = blue
'

test_expect_success 'symlink: the rollback of the first switch removes the link it made' '
  rm combo/live &&
  test_must_fail_with 1 cairn run cl.yaml --set fail=yes >out.txt 2>&1 &&
  test "$(out_of switch from)" = "" &&
  ! test -L combo/live && test_path_is_missing combo/live
'

test_expect_success 'validate: a colour not in targets, a missing link' '
  sed "s/{{ params.to }}/red/" sl.yaml >bad.yaml &&
  test_must_fail_with 2 cairn validate bad.yaml >out.txt 2>&1 &&
  test_grep "colour .red. is not in input .targets." out.txt &&
  sed "s/ link: live,//" sl.yaml >bad2.yaml &&
  test_must_fail_with 2 cairn validate bad2.yaml >out.txt 2>&1 &&
  test_grep "in symlink mode needs input .link." out.txt
'

# ---- the state's timeout (no real nginx needed) -------------------------------

cat >slow-nginx <<\EOF
#!/bin/sh
echo $$ >slow-nginx.pid
exec sleep 30
EOF
chmod +x slow-nginx

write_workflow slow.yaml <<\EOF
cairn: 1
name: slow
start: switch
states:
  switch:
    do: switch.blue-green
    timeout: 500ms
    with: { to: green, mode: nginx, include: live.inc, nginx: ./slow-nginx,
            upstreams: { blue: "127.0.0.1:1", green: "127.0.0.1:2" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'the state timeout stops a hanging nginx -t: timed out, its group killed' '
  start=$(date +%s) &&
  test_must_fail_with 1 cairn run slow.yaml >out.txt 2>&1 &&
  test $(( $(date +%s) - start )) -lt 10 &&
  test_grep "timed out" out.txt &&
  pid=$(cat slow-nginx.pid) &&
  sleep 0.2 &&
  ! kill -0 "$pid" 2>/dev/null &&
  test_path_is_missing live.inc
'

# ---- nginx mode ----------------------------------------------------------------

if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  test_skip 'nginx mode' 'nginx is not installed (apt-get install nginx)'
  test_done
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1
}
P_LIVE=$(free_port); P_BLUE=$(free_port); P_GREEN=$(free_port)
while [ "$P_BLUE" = "$P_LIVE" ]; do P_BLUE=$(free_port); done
while [ "$P_GREEN" = "$P_LIVE" ] || [ "$P_GREEN" = "$P_BLUE" ]; do P_GREEN=$(free_port); done
NX=$TRASH/nginx
mkdir -p "$NX/logs" "$NX/tmp"
cat >"$NX/live.conf" <<EOF
# cairn switch.blue-green: blue
server 127.0.0.1:$P_BLUE;
EOF
cat >"$NX/nginx.conf" <<EOF
worker_processes 1;
error_log $NX/logs/error.log;
pid $NX/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $NX/tmp/body;
  proxy_temp_path $NX/tmp/proxy;
  fastcgi_temp_path $NX/tmp/fastcgi;
  uwsgi_temp_path $NX/tmp/uwsgi;
  scgi_temp_path $NX/tmp/scgi;
  server { listen 127.0.0.1:$P_BLUE; location / { return 200 "blue\n"; } }
  server { listen 127.0.0.1:$P_GREEN; location / { return 200 "green\n"; } }
  upstream live { include $NX/live.conf; }
  server { listen 127.0.0.1:$P_LIVE; location / { proxy_pass http://live; } }
}
EOF

stop_nginx() { # keeps $? for _cairn_test_exit
  local st=$?
  if [ -f "$NX/nginx.pid" ]; then
    "$NX_BIN" -p "$NX" -c "$NX/nginx.conf" -s quit 2>/dev/null
    kill "$(cat "$NX/nginx.pid")" 2>/dev/null
  fi
  return $st
}
NX_BIN=$NGINX
trap 'stop_nginx; _cairn_test_exit' EXIT

test_expect_success 'nginx starts on loopback and serves blue' '
  "$NGINX" -p "$NX" -c "$NX/nginx.conf" &&
  wait_for_file "$NX/nginx.pid" 5 &&
  for i in $(seq 50); do curl -fs http://127.0.0.1:$P_LIVE/ >body.txt && break; sleep 0.1; done &&
  test "$(cat body.txt)" = blue
'

# live_is COLOUR: nginx serves COLOUR, within 5 s. After a reload nginx's
# old workers finish their connections and may still take a new one for a
# moment, so a request right after a confirmed switch can see the old
# colour once: poll, as the switch's own confirm does.
live_is() {
  local i
  for i in $(seq 50); do
    test "$(curl -fs http://127.0.0.1:$P_LIVE/)" = "$1" && return 0
    sleep 0.1
  done
  echo "nginx does not serve $1 after 5s"
  return 1
}

write_workflow nx.yaml <<EOF
cairn: 1
name: nx
params:
  to: { default: green }
  green: { default: "127.0.0.1:$P_GREEN" }
  fail: { default: "" }
start: switch
states:
  switch:
    do: switch.blue-green
    with:
      to: "{{ params.to }}"
      mode: nginx
      include: $NX/live.conf
      upstreams: { blue: "127.0.0.1:$P_BLUE", green: "{{ params.green }}" }
      nginx: $NGINX
      nginx_conf: $NX/nginx.conf
      nginx_prefix: $NX
      confirm_url: "http://127.0.0.1:$P_LIVE/"
      confirm_within: 5s
    undo:
      do: switch.blue-green
      with: { to: "{{ self.output.from }}", mode: "{{ self.input.mode }}",
              include: "{{ self.input.include }}", upstreams: "{{ self.input.upstreams }}",
              nginx: "{{ self.input.nginx }}", nginx_conf: "{{ self.input.nginx_conf }}",
              nginx_prefix: "{{ self.input.nginx_prefix }}", confirm_url: "{{ self.input.confirm_url }}" }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'nginx: switch to green, confirmed through nginx' '
  cairn run nx.yaml &&
  live_is green &&
  test "$(out_of switch from)" = blue &&
  test "$(out_of switch to)" = green &&
  test_grep "answers with .green." .cairn/runs/$(last_run)/switch.log &&
  test_grep "server 127.0.0.1:$P_GREEN;" "$NX/live.conf"
'

test_expect_success 'nginx: a broken include is rejected by nginx -t and restored byte for byte' '
  printf "# cairn switch.blue-green: blue\nserver 127.0.0.1:$P_BLUE;\n" >"$NX/live.conf" &&
  "$NGINX" -p "$NX" -c "$NX/nginx.conf" -s reload &&
  live_is blue &&
  cp "$NX/live.conf" before.conf &&
  test_must_fail_with 1 cairn run nx.yaml --set green=127.0.0.1:notaport >out.txt 2>&1 &&
  test_grep "nginx -t rejected the include for .green. (restored the previous one): \[emerg\] invalid port" out.txt &&
  cmp before.conf "$NX/live.conf" &&
  live_is blue
'

test_expect_success 'nginx: an upstream that would write configuration is refused' '
  cp "$NX/live.conf" before.conf &&
  test_must_fail_with 1 cairn run nx.yaml --set "green=127.0.0.1:1; include /etc/passwd" >out.txt 2>&1 &&
  test_grep -F "upstream of colour '\''green'\'' must be a host:port" out.txt &&
  cmp before.conf "$NX/live.conf"
'

test_expect_success 'nginx: a failed run switches back to blue (undo), confirmed' '
  test_must_fail_with 1 cairn run nx.yaml --set fail=yes >out.txt 2>&1 &&
  live_is blue &&
  test_grep "# cairn switch.blue-green: blue" "$NX/live.conf"
'

test_expect_success 'nginx: a colour that never answers fails and switches back' '
  sed "s/confirm_within: 5s/confirm_within: 1s/" nx.yaml >nx2.yaml &&
  test_must_fail_with 1 cairn run nx2.yaml --set green=127.0.0.1:$P_BLUE >out.txt 2>&1 &&
  test_grep "did not answer with .green." out.txt &&
  live_is blue &&
  test_grep "# cairn switch.blue-green: blue" "$NX/live.conf"
'

# nginx, but its reload waits while the file hold exists: cairn is killed
# there, after the include says green; then the reload goes on, as if
# cairn had died right after it.
cat >nginx-hold <<EOF
#!/bin/sh
case "\$*" in *"-s reload"*)
  if [ -e "$TRASH/hold" ]; then
    echo \$\$ >"$TRASH/held.pid"
    while [ -e "$TRASH/hold" ]; do sleep 0.1; done
    # cairn is gone: its end of the pipes too
    exec "$NGINX" "\$@" >>"$TRASH/held.log" 2>&1
  fi ;;
esac
exec "$NGINX" "\$@"
EOF
chmod +x nginx-hold
sed "s|nginx: $NGINX\$|nginx: $TRASH/nginx-hold|" nx.yaml >nx-hold.yaml

test_expect_success 'nginx: kill -9 during the switch, resume, a later failure: the rollback switches back to blue' '
  live_is blue &&
  touch hold &&
  { "$CAIRN_BIN" run nx-hold.yaml --set fail=yes >bg.out 2>&1 & } &&
  bg=$! &&
  wait_for_file held.pid 20 &&
  test_grep "# cairn switch.blue-green: green" "$NX/live.conf" &&
  kill -9 "$bg" &&
  { wait "$bg" || :; } &&
  held=$(cat held.pid) &&
  rm hold &&
  wait_until 10 "the held reload did not end" eval "! proc_alive $held" &&
  live_is green &&
  test_must_fail_with 1 cairn resume >out.txt 2>&1 &&
  test_grep "rolled back: switch" out.txt &&
  test "$(q "SELECT json_extract(payload, '\''$.outputs.from'\'') FROM events
             WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
             AND state = '\''switch'\''")" = blue &&
  live_is blue &&
  test_grep "# cairn switch.blue-green: blue" "$NX/live.conf"
'

# An nginx cairn never switched: its include has no marker line. The
# default undo (the state writes none) puts back what was live.
write_workflow nxd.yaml <<EOF
cairn: 1
name: nxd
params:
  blue: { default: "127.0.0.1:$P_BLUE" }
  fail: { default: "" }
  nginx: { default: "$NGINX" }
start: switch
states:
  switch:
    do: switch.blue-green
    with:
      to: green
      mode: nginx
      include: $NX/live.conf
      upstreams: { blue: "{{ params.blue }}", green: "127.0.0.1:$P_GREEN" }
      nginx: "{{ params.nginx }}"
      nginx_conf: $NX/nginx.conf
      nginx_prefix: $NX
      confirm_url: "http://127.0.0.1:$P_LIVE/"
      confirm_within: 5s
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

# hand_blue: live.conf as written by hand, serving blue, nginx reloaded.
hand_blue() {
  printf "# written by hand\nserver 127.0.0.1:$P_BLUE;\n" >"$NX/live.conf" &&
  "$NGINX" -p "$NX" -c "$NX/nginx.conf" -s reload &&
  live_is blue &&
  cp "$NX/live.conf" before.conf
}

test_expect_success 'nginx: an include without a marker: its server line tells blue, the rollback puts it back byte for byte' '
  hand_blue &&
  test_must_fail_with 1 cairn run nxd.yaml --set fail=yes >out.txt 2>&1 &&
  test_grep "rolled back: switch" out.txt &&
  test "$(out_of switch from)" = blue &&
  test_grep "answers with .green." .cairn/runs/$(last_run)/switch.log &&
  test_grep "answers with .blue." .cairn/runs/$(last_run)/undo:switch.log &&
  cmp before.conf "$NX/live.conf" &&
  live_is blue
'

test_expect_success 'nginx: an include that names no colour: the rollback still puts it back' '
  hand_blue &&
  test_must_fail_with 1 cairn run nxd.yaml --set fail=yes --set blue=127.0.0.1:1 >out.txt 2>&1 &&
  test_grep "rolled back: switch" out.txt &&
  test "$(out_of switch from)" = "" &&
  cmp before.conf "$NX/live.conf" &&
  live_is blue
'

# nginx whose reload waits while the file hold exists, but only once the
# include no longer says green: in the rollback's undo.
cat >nginx-hold-undo <<EOF
#!/bin/sh
case "\$*" in *"-s reload"*)
  if [ -e "$TRASH/hold" ] && ! grep -q "switch.blue-green: green" "$NX/live.conf"; then
    echo \$\$ >"$TRASH/held.pid"
    while [ -e "$TRASH/hold" ]; do sleep 0.1; done
    exec "$NGINX" "\$@" >>"$TRASH/held.log" 2>&1
  fi ;;
esac
exec "$NGINX" "\$@"
EOF
chmod +x nginx-hold-undo

test_expect_success 'nginx: kill -9 during the undo, resume: the include of before is back' '
  hand_blue &&
  rm -f held.pid && touch hold &&
  { "$CAIRN_BIN" run nxd.yaml --set fail=yes --set nginx="$TRASH/nginx-hold-undo" >bg.out 2>&1 & } &&
  bg=$! &&
  wait_for_file held.pid 20 &&
  cmp before.conf "$NX/live.conf" &&
  kill -9 "$bg" &&
  { wait "$bg" || :; } &&
  held=$(cat held.pid) &&
  rm hold &&
  wait_until 10 "the held reload did not end" eval "! proc_alive $held" &&
  test_must_fail_with 1 cairn resume >out.txt 2>&1 &&
  test_grep "rolled back: switch" out.txt &&
  cmp before.conf "$NX/live.conf" &&
  live_is blue
'

test_expect_success 'nginx stops and nothing of it is left' '
  pid=$(cat "$NX/nginx.pid") &&
  "$NGINX" -p "$NX" -c "$NX/nginx.conf" -s quit &&
  for i in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done &&
  ! proc_alive "$pid"
'

test_done
