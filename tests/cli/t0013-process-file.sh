#!/bin/bash
# t0013-process-file: process.start/stop and file.write/remove with real
# processes and files: a service started, found again by a second start
# (same pid, no new process), stopped; a service that dies at once fails
# with its log; stop of a gone process and of a reused pid (a live
# unrelated process that must not be signalled); a failed run whose
# rollback stops the service (no orphan) and restores a file byte for
# byte or removes a new one (all by the adapters' default undos), but
# leaves running a service an earlier run started and this one only
# adopted, while a resumed run's own service is still stopped; a start
# with `port` refused while something listens there (IPv4 or IPv6, the
# listener never contacted), and not when it adopts its own service, on a
# re-run or a resume; a start cancelled by a failing sibling, whose undo
# finds nothing left; file.write keeping the owner and group of the file
# it replaces (the writer's when not root, which the log says) and its
# undo restoring them with the mode, 0000 included. Every pid the tests
# record is checked gone at the end.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

# Every pid a test saw; the last test proves none is left.
PIDS=$TRASH/pids.txt
: >"$PIDS"
cleanup_pids() { # keeps $? for _cairn_test_exit
  local st=$?
  while read -r p; do kill -9 "$p" 2>/dev/null; done <"$PIDS"
  return $st
}
trap 'cleanup_pids; _cairn_test_exit' EXIT

pidfile_pid() { jq -r .pid "$1"; }

write_workflow svc.yaml <<\EOF
cairn: 1
name: svc
params:
  fail: { default: "" }
  argv: { default: "" }
start: svc
states:
  svc:
    do: process.start
    with: { argv: [nc, -lk, 127.0.0.1, "0"], pid_file: "svc.pid", log: "svc.log", wait: 200ms }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

write_workflow stop.yaml <<\EOF
cairn: 1
name: stop
start: stop
states:
  stop:
    do: process.stop
    with: { pid_file: "svc.pid", grace: 2s }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'process.start starts a detached service with a pid file' '
  cairn run svc.yaml &&
  pid=$(pidfile_pid svc.pid) && echo "$pid" >>"$PIDS" &&
  proc_alive "$pid" &&
  test "$(ps -o pgid= -p "$pid" | tr -d " ")" = "$pid" &&
  test "$(ps -o sid= -p "$pid" | tr -d " ")" = "$pid" &&
  test "$(jq -r .proc_start svc.pid)" = "$(cut -d")" -f2 /proc/$pid/stat | cut -d" " -f21)" &&
  test "$(jq -c .argv svc.pid)" = "[\"nc\",\"-lk\",\"127.0.0.1\",\"0\"]" &&
  test "$(readlink /proc/$pid/fd/0)" = /dev/null &&
  test "$(readlink /proc/$pid/fd/1)" = "$TRASH/svc.log" &&
  test "$(ls /proc/$pid/fd | sort -n | tr "\n" " ")" = "0 1 2 3 " &&
  q "SELECT json_extract(payload, \"$.outputs.pid\") FROM events
     WHERE kind = \"action.finished\" AND state = \"svc\"" >out.txt &&
  test "$(cat out.txt)" = "$pid"
'
# fd 3 above is nc's own listening socket: nothing of cairn's leaked.

test_expect_success 'a second start finds the same live service: no new process' '
  pid=$(pidfile_pid svc.pid) &&
  cairn run svc.yaml &&
  test "$(pidfile_pid svc.pid)" = "$pid" &&
  # no process carries the marker of the second run (other tests on this
  # machine may run nc too, so nc processes are not counted)
  run2=$(last_run) &&
  ! grep -qsl "CAIRN_RUN_ID=$run2" /proc/[0-9]*/environ &&
  test_grep "already running as pid $pid" .cairn/runs/$(last_run)/svc.log
'

test_expect_success 'a start with another argv over a live pid file is refused' '
  pid=$(pidfile_pid svc.pid) &&
  sed "s/\"0\"\]/\"0\", -v]/" svc.yaml >svc2.yaml &&
  test_must_fail_with 1 cairn run svc2.yaml >out.txt 2>&1 &&
  test_grep "names pid $pid, running with another argv; stop it first" out.txt &&
  proc_alive "$pid"
'

test_expect_success 'process.stop stops the group and removes the pid file' '
  pid=$(pidfile_pid svc.pid) &&
  cairn run stop.yaml &&
  ! proc_alive "$pid" &&
  test_path_is_missing svc.pid &&
  q "SELECT json_extract(payload, \"$.outputs.signal\") || \" \" ||
            json_extract(payload, \"$.outputs.stopped\")
     FROM events WHERE kind = \"action.finished\" AND state = \"stop\"" >out.txt &&
  test "$(cat out.txt)" = "SIGTERM 1"
'

test_expect_success 'process.stop of a gone service succeeds (already stopped)' '
  cairn run stop.yaml &&
  test_grep "already stopped (no pid file" .cairn/runs/$(last_run)/stop.log &&
  { sleep 300 & } &&
  dead=$! && echo $dead >>"$PIDS" &&
  start=$(cut -d")" -f2 /proc/$dead/stat | cut -d" " -f21) &&
  kill $dead && { wait $dead || true; } &&
  printf "{\"pid\":%d,\"pgid\":%d,\"proc_start\":%s}" $dead $dead $start >svc.pid &&
  cairn run stop.yaml &&
  test_grep "already stopped (pid $dead is gone)" .cairn/runs/$(last_run)/stop.log
'

# Pid files are written without fsync: a crash of the machine may leave
# one empty or zero-filled, which must read as "no pid file", while any
# other content that is not a pid file is still refused.
test_expect_success 'an empty or zeroed pid file names nothing; garbage is refused' '
  : >svc.pid &&
  cairn run stop.yaml &&
  test_grep "already stopped (no pid file" .cairn/runs/$(last_run)/stop.log &&
  head -c 96 /dev/zero >svc.pid &&
  cairn run stop.yaml &&
  test_grep "already stopped (no pid file" .cairn/runs/$(last_run)/stop.log &&
  echo "not json" >svc.pid &&
  test_must_fail_with 1 cairn run stop.yaml >out.txt 2>&1 &&
  test_grep "is not one process.start wrote" out.txt &&
  rm -f svc.pid
'

# A pid file that exists (here a stale one, naming a process that is
# gone) is replaced by a rename, never rewritten where it is, so a reader
# sees the old content or the new; it is 0600 and leaves no temporary file.
test_expect_success 'a pid file is made 0600; a stale one is replaced by rename' '
  rm -f svc.pid &&
  cairn run svc.yaml &&
  pid=$(pidfile_pid svc.pid) && echo "$pid" >>"$PIDS" &&
  test "$(stat -c %a svc.pid)" = 600 &&
  cairn run stop.yaml &&
  { sleep 300 & } &&
  dead=$! && echo $dead >>"$PIDS" &&
  start=$(cut -d")" -f2 /proc/$dead/stat | cut -d" " -f21) &&
  kill $dead && { wait $dead || true; } &&
  printf "{\"pid\":%d,\"pgid\":%d,\"proc_start\":%s}" $dead $dead $start >svc.pid &&
  chmod 644 svc.pid &&
  stale=$(stat -c %i svc.pid) &&
  cairn run svc.yaml &&
  pid=$(pidfile_pid svc.pid) && echo "$pid" >>"$PIDS" &&
  test "$pid" != "$dead" &&
  proc_alive "$pid" &&
  test "$(stat -c %i svc.pid)" != "$stale" &&
  test "$(stat -c %a svc.pid)" = 600 &&
  test -z "$(find . -maxdepth 1 -name ".svc.pid.*")" &&
  cairn run stop.yaml &&
  ! proc_alive "$pid"
'

# The folders of the pid file and the log are made, 0700, when missing:
# a workflow needs no mkdir step before a start.
write_workflow deep.yaml <<\EOF
cairn: 1
name: deep
start: svc
states:
  svc:
    do: process.start
    with: { argv: [nc, -lk, 127.0.0.1, "0"], pid_file: "run/a/b/svc.pid", log: "logs/x/svc.log", wait: 200ms }
    next: stop
  stop:
    do: process.stop
    with: { pid_file: "run/a/b/svc.pid", grace: 2s }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'process.start makes the missing folders of its pid file and log (0700)' '
  (umask 022 && cairn run deep.yaml) &&
  for d in run run/a run/a/b logs logs/x; do
    test "$(stat -c %a $d)" = 700 || { echo "$d is $(stat -c %a $d)"; exit 1; }
  done &&
  test_path_is_file logs/x/svc.log &&
  test_path_is_missing run/a/b/svc.pid &&
  rm -rf run logs
'

test_expect_success 'process.stop never signals a reused pid (start time differs)' '
  { setsid sleep 300 & } &&
  other=$! && echo $other >>"$PIDS" &&
  sleep 0.1 &&
  test "$(ps -o pgid= -p $other | tr -d " ")" = $other &&
  printf "{\"pid\":%d,\"pgid\":%d,\"proc_start\":1}" $other $other >svc.pid &&
  cairn run stop.yaml &&
  proc_alive $other &&
  test_grep "pid $other now belongs to another process" .cairn/runs/$(last_run)/stop.log &&
  q "SELECT json_extract(payload, \"$.outputs.stopped\") FROM events
     WHERE kind = \"action.finished\" AND state = \"stop\"
     ORDER BY seq DESC LIMIT 1" >out.txt &&
  test "$(cat out.txt)" = 0 &&
  kill $other && { wait $other || true; }
'

test_expect_success 'a service that dies at once fails with the end of its log' '
  write_workflow die.yaml <<-\EOF &&
	cairn: 1
	name: die
	start: svc
	states:
	  svc:
	    do: process.start
	    with: { argv: [sh, -c, "echo listening; echo port taken >&2; exit 3"], wait: 300ms }
	    next: done
	  done: { succeed: true }
	EOF
  test_must_fail_with 1 cairn run die.yaml >out.txt 2>&1 &&
  test_grep "exited with status 3 right after it started: port taken" out.txt &&
  run=$(last_run) &&
  test_path_is_missing .cairn/runs/$run/svc.pid &&
  q "SELECT json_extract(payload, \"$.tail\") FROM events
     WHERE kind = \"action.finished\" AND state = \"svc\"" >tail.txt &&
  test_grep listening tail.txt
'

test_expect_success 'a failed run rolls back: the undo stops the service, no orphan' '
  cairn run svc.yaml --set fail=yes >out.txt 2>&1 || true &&
  test_grep "rolled back" out.txt &&
  pid=$(q "SELECT json_extract(payload, \"$.outputs.pid\") FROM events
           WHERE kind = \"action.finished\" AND state = \"svc\"
           AND run_id = \"$(last_run)\"") &&
  echo "$pid" >>"$PIDS" &&
  test -n "$pid" &&
  ! proc_alive "$pid" &&
  test_path_is_missing svc.pid
'

# A service an earlier run started is only adopted by the next run's
# start: rolling that run back must leave it as the run found it,
# running under its pid file, not leave less than there was before.
test_expect_success 'a rollback leaves running the service an earlier run started (adopted)' '
  cairn run svc.yaml &&
  first=$(last_run) &&
  pid=$(pidfile_pid svc.pid) && echo "$pid" >>"$PIDS" &&
  test "$(jq -r .run_id svc.pid)" = "$first" &&
  cp svc.pid svc.pid.before &&
  test_must_fail_with 1 cairn run svc.yaml --set fail=yes >out.txt 2>&1 &&
  test_grep "rolled back: svc" out.txt &&
  run=$(last_run) &&
  proc_alive "$pid" &&
  cmp svc.pid.before svc.pid &&
  test_grep "already running as pid $pid (pid file .*), started by another run or state: adopted" \
    .cairn/runs/$run/svc.log &&
  q "SELECT json_extract(payload, \"$.outputs.adopted\") FROM events
     WHERE kind = \"action.finished\" AND state = \"svc\"
     AND run_id IN (\"$first\", \"$run\") ORDER BY seq" >out.txt &&
  printf "0\n1\n" >want && test_cmp want out.txt &&
  q "SELECT json_extract(payload, \"$.outputs.stopped\") || \" \" ||
            json_extract(payload, \"$.outputs.kept\") FROM events
     WHERE kind = \"action.finished\" AND state = \"undo:svc\"
     AND run_id = \"$run\"" >out.txt &&
  test "$(cat out.txt)" = "0 1" &&
  cairn run stop.yaml &&
  ! proc_alive "$pid"
'

# The same run's own service, found running again after its engine died
# (the resumed run re-runs the start, which adopts it), is still the
# run's: a rollback of the resumed run stops it.
write_workflow own.yaml <<\EOF
cairn: 1
name: own
start: svc
states:
  svc:
    do: process.start
    with: { argv: [nc, -lk, 127.0.0.1, "0"], pid_file: "own.pid", log: "own.log" }
    ready: { do: exec, with: { shell: "while [ ! -e go ]; do sleep 0.05; done" } }
    next: last
  last:
    do: exec
    with: { shell: "test ! -e fail" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a resumed run that finds its own service again stops it in a rollback' '
  rm -rf .cairn go fail own.pid &&
  { "$CAIRN_BIN" run own.yaml >out 2>&1 & cpid=$!; } &&
  n=0 &&
  until [ "$(q "SELECT count(*) FROM events WHERE kind = '\''action.spawned'\'' AND state = '\''svc'\''" 2>/dev/null)" = 1 ]; do
    n=$((n + 1)) && [ $n -lt 100 ] && sleep 0.1 || return 1
  done &&
  pid=$(pidfile_pid own.pid) && echo "$pid" >>"$PIDS" &&
  kill -9 "$cpid" && { wait "$cpid" || :; } &&
  proc_alive "$pid" &&
  touch go fail &&
  test_must_fail_with 1 cairn resume >out.txt 2>&1 &&
  run=$(last_run) &&
  test_grep "already running as pid $pid (pid file .*), started by an earlier attempt of this step: its undo stops it" \
    .cairn/runs/$run/svc.log &&
  test_grep "rolled back: svc" out.txt &&
  ! proc_alive "$pid" &&
  test_path_is_missing own.pid &&
  rm -f go fail
'

# The default undo of a start stops the process that start ran, not
# whatever its pid file names by then: here a later state replaced the
# service under the same pid file, and the rollback must leave the newer
# one running.
write_workflow replaced.yaml <<\EOF
cairn: 1
name: replaced
start: first
states:
  first:
    do: process.start
    with: { argv: [nc, -lk, 127.0.0.1, "0"], pid_file: "replaced.pid", wait: 200ms }
    next: clear
  clear:
    do: process.stop
    with: { pid_file: "replaced.pid", grace: 2s }
    next: second
  second:
    do: process.start
    with: { argv: [nc, -lk, 127.0.0.1, "0", "-v"], pid_file: "replaced.pid", wait: 200ms }
    undo: false
    next: last
  last:
    do: exec
    with: { argv: ["false"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'the undo of a start leaves a newer process of its pid file alone' '
  test_must_fail_with 1 cairn run replaced.yaml >out.txt 2>&1 &&
  test_grep "rolled back" out.txt &&
  run=$(last_run) &&
  first=$(q "SELECT json_extract(payload, \"$.outputs.pid\") FROM events
             WHERE kind = \"action.finished\" AND state = \"first\"
             AND run_id = \"$run\"") &&
  newer=$(pidfile_pid replaced.pid) &&
  echo "$first $newer" | tr " " "\n" >>"$PIDS" &&
  test -n "$first" && test "$first" != "$newer" &&
  ! proc_alive "$first" &&
  proc_alive "$newer" &&
  test_grep "now names pid $newer, another process" \
    .cairn/runs/$run/undo:first.log &&
  q "SELECT json_extract(payload, \"$.outputs.stopped\") FROM events
     WHERE kind = \"action.finished\" AND state = \"undo:first\"
     AND run_id = \"$run\"" >out.txt &&
  test "$(cat out.txt)" = 0 &&
  kill "$newer"
'

# A start still in its wait when a parallel sibling fails is cancelled:
# it stops its service itself, and its undo (planned: a cancelled step
# may have done part of its work) must find nothing left, not fail to
# render for want of the pid file it reports.
write_workflow cancelled.yaml <<\EOF
cairn: 1
name: cancelled
start: both
states:
  both:
    parallel:
      svc:
        do: process.start
        with: { argv: [nc, -lk, 127.0.0.1, "0"], pid_file: "cancelled.pid", wait: 5s }
      bad:
        do: exec
        with: { shell: "sleep 0.3; exit 1" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'a start cancelled by a failing sibling: stopped, and its undo finds nothing' '
  test_must_fail_with 1 cairn run cancelled.yaml >out.txt 2>&1 &&
  test_grep "both/svc cancelled" out.txt &&
  test_grep "rolled back: both/svc" out.txt &&
  run=$(last_run) &&
  test "$(q "SELECT status FROM runs WHERE id = \"$run\"")" = failed &&
  pid=$(q "SELECT json_extract(payload, \"$.outputs.pid\") FROM events
           WHERE kind = \"action.finished\" AND state = \"both/svc\"
           AND run_id = \"$run\"") &&
  echo "$pid" >>"$PIDS" &&
  test -n "$pid" &&
  ! proc_alive "$pid" &&
  test_path_is_missing cancelled.pid &&
  test "$(q "SELECT json_extract(payload, \"$.outcome\") FROM events
            WHERE kind = \"action.finished\" AND state = \"undo:both/svc\"
            AND run_id = \"$run\"")" = succeeded
'

# A service on a port an older process holds would die at once ("address
# already in use") while checks got their answers from the old one.
write_workflow port.yaml <<\EOF
cairn: 1
name: port
params:
  port: { type: integer }
start: svc
states:
  svc:
    do: process.start
    with:
      argv: [nc, -lk, 127.0.0.1, "{{ '' + params.port }}"]
      pid_file: port.pid
      log: port.log
      wait: 200ms
      port: "{{ params.port }}"
    ready: { do: exec, with: { shell: "while [ ! -e go ]; do sleep 0.05; done" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'process.start with port: refused while something listens there' '
  P=$(free_port) && touch go &&
  listen_silent "$P" && echo "$LISTEN_PID" >>"$PIDS" && wait_listening "$P" &&
  test_must_fail_with 1 cairn run port.yaml --set port="$P" >out.txt 2>&1 &&
  test_grep -F "state '\''svc'\'' failed: port $P is already taken (something listens on it); stop what holds it or choose another port" out.txt &&
  test_path_is_missing port.pid &&
  # nc -l (no -k) ends after one connection: nothing connected to it
  proc_alive "$LISTEN_PID" && net_stop "$LISTEN_PID"
'

test_expect_success 'process.start with port: an IPv6 listener counts too' '
  test -e /proc/net/tcp6 || { echo "no IPv6 here"; return 0; } &&
  P=$(free_port) &&
  { nc -6 -l ::1 "$P" </dev/null >/dev/null 2>&1 & n6=$!; } &&
  echo "$n6" >>"$PIDS" &&
  wait_until 5 "nc did not listen on [::1]:$P" sh -c "ss -Hltn \"sport = :$P\" | grep -q ." &&
  test_must_fail_with 1 cairn run port.yaml --set port="$P" >out.txt 2>&1 &&
  test_grep -F "port $P is already taken" out.txt &&
  proc_alive "$n6" && kill "$n6"
'

test_expect_success 'process.start with port: started when free; a re-run adopts it, port and all' '
  P=$(free_port) &&
  cairn run port.yaml --set port="$P" >out.txt 2>&1 &&
  pid=$(pidfile_pid port.pid) && echo "$pid" >>"$PIDS" &&
  wait_listening "$P" &&
  cairn run port.yaml --set port="$P" >out.txt 2>&1 &&
  test "$(pidfile_pid port.pid)" = "$pid" &&
  test_grep "already running as pid $pid" ".cairn/runs/$(last_run)/svc.log" &&
  kill "$pid"
'

# The service the dead engine started holds its port: the resumed run
# adopts it rather than finding the port taken.
test_expect_success 'resume adopts a service with port whose ready check the kill interrupted' '
  rm -rf .cairn go port.pid && P=$(free_port) &&
  { "$CAIRN_BIN" run port.yaml --set port="$P" >out 2>&1 & cpid=$!; } &&
  n=0 &&
  until [ "$(q "SELECT count(*) FROM events WHERE kind = '\''action.spawned'\'' AND state = '\''svc'\''" 2>/dev/null)" = 1 ]; do
    n=$((n + 1)) && [ $n -lt 100 ] && sleep 0.1 || return 1
  done &&
  pid=$(pidfile_pid port.pid) && echo "$pid" >>"$PIDS" &&
  kill -9 "$cpid" && { wait "$cpid" || :; } &&
  wait_listening "$P" &&
  touch go &&
  cairn resume >out 2>&1 &&
  test "$(pidfile_pid port.pid)" = "$pid" &&
  test "$(q "SELECT status FROM runs")" = succeeded &&
  kill "$pid"
'

write_workflow fw.yaml <<\EOF
cairn: 1
name: fw
params:
  fail: { default: "" }
start: old
states:
  old:
    do: file.write
    with: { path: "old.txt", content: "new content\n", mode: "0600" }
    next: fresh
  fresh:
    do: file.write
    with: { path: "fresh.txt", content: "made by cairn\n" }
    next: gone
  gone:
    do: file.remove
    with: { path: "nothing-here.txt" }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'file.write writes atomically with its mode; outputs say what was there' '
  printf "old\000bytes\nno newline" >old.txt && chmod 0640 old.txt &&
  cp old.txt old.orig &&
  cairn run fw.yaml &&
  printf "new content\n" >want && test_cmp want old.txt &&
  test "$(stat -c %a old.txt)" = 600 &&
  test "$(stat -c %a fresh.txt)" = 644 &&
  q "SELECT json_extract(payload, \"$.outputs.previous\") || \" \" ||
            json_extract(payload, \"$.outputs.sha256\")
     FROM events WHERE kind = \"action.finished\" AND state = \"old\"" >out.txt &&
  test "$(cat out.txt)" = "1 $(sha256sum old.txt | cut -d" " -f1)" &&
  run=$(last_run) &&
  backup=$(q "SELECT json_extract(payload, \"$.outputs.backup\") FROM events
              WHERE kind = \"action.finished\" AND state = \"old\"") &&
  entry=$(q "SELECT seq FROM events WHERE run_id = \"$run\"
             AND kind = \"state.entered\" AND state = \"old\"") &&
  test "$backup" = "$PWD/.cairn/runs/$run/backups/old.$entry" &&
  cmp old.orig "$backup" &&
  test "$(stat -c %a "$backup")" = 600 &&
  fentry=$(q "SELECT seq FROM events WHERE run_id = \"$run\"
              AND kind = \"state.entered\" AND state = \"fresh\"") &&
  test_path_is_file .cairn/runs/$run/backups/fresh.$fentry.json &&
  test_path_is_missing .cairn/runs/$run/backups/fresh.$fentry
'

# A loop writes another path on each visit. Each visit keeps a backup of
# its own: before, the second overwrote the first, and the rollback put
# the second file old content into the first file.
write_workflow fw-loop.yaml <<\EOF
cairn: 1
name: fw-loop
start: count
states:
  count:
    do: exec
    with: { argv: [sh, -c, "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n >n; echo \"{\\\"n\\\":$n}\""] }
    idempotent: true
    next: write
  write:
    do: file.write
    with: { path: "loop{{ states.count.output.json.n }}.txt", content: "new {{ states.count.output.json.n }}\n" }
    next: again
  again:
    choice:
      - when: "states.count.output.json.n < 3"
        next: count
    default: stop
  stop: { fail: true, message: "stop here" }
EOF

test_expect_success 'file.write in a loop: the rollback restores what each visit replaced' '
  echo orig1 >loop1.txt && echo orig2 >loop2.txt && rm -f n loop3.txt &&
  test_must_fail_with 1 cairn run fw-loop.yaml >out &&
  echo "new 1" >want && test_cmp want loop1.txt &&
  cairn rollback "$(last_run)" >out &&
  echo orig1 >want && test_cmp want loop1.txt &&
  echo orig2 >want && test_cmp want loop2.txt &&
  test_path_is_missing loop3.txt
'

test_expect_success 'file.write again with the same content changes nothing' '
  touch -d @1000000000 fresh.txt &&
  cairn run fw.yaml &&
  test "$(stat -c %Y fresh.txt)" = 1000000000 &&
  test_grep "already has this content" .cairn/runs/$(last_run)/fresh.log
'

test_expect_success 'rollback restores a file byte for byte and removes a new one' '
  cp old.orig old.txt && chmod 0640 old.txt && rm -f fresh.txt &&
  test_must_fail_with 1 cairn run fw.yaml --set fail=yes &&
  cmp old.orig old.txt &&
  test "$(stat -c %a old.txt)" = 640 &&
  test_path_is_missing fresh.txt
'

# A configuration root:www-data 0640 rewritten by root must stay
# readable by the service's group; a file nobody may read (0000) stays
# so after a rollback, with its owner. Giving files away takes root.
write_workflow fw-own.yaml <<\EOF
cairn: 1
name: fw-own
params:
  fail: { default: "" }
start: own
states:
  own:
    do: file.write
    with: { path: "own.conf", content: "port=2\n", mode: "0640" }
    next: closed
  closed:
    do: file.write
    with: { path: "closed.conf", content: "open now\n" }
    next: last
  last:
    do: exec
    with: { shell: "test '{{ params.fail }}' != yes" }
    next: done
  done: { succeed: true }
EOF

owner() { stat -c "%u:%g %a" "$1"; }

test_expect_success 'file.write keeps the owner and group; the rollback restores them and mode 0000' '
  if [ "$(id -u)" != 0 ]; then echo "not root: cannot give files away"; return 0; fi &&
  printf "port=1\n" >own.conf && chown 1234:33 own.conf && chmod 0640 own.conf &&
  printf "secret\n" >closed.conf && chown 65534:65534 closed.conf && chmod 0 closed.conf &&
  cp own.conf own.orig && cp closed.conf closed.orig &&
  test_must_fail_with 1 cairn run fw-own.yaml --set fail=yes &&
  cmp own.orig own.conf && test "$(owner own.conf)" = "1234:33 640" &&
  cmp closed.orig closed.conf && test "$(owner closed.conf)" = "65534:65534 0" &&
  cairn run fw-own.yaml &&
  printf "port=2\n" >want && test_cmp want own.conf &&
  test "$(owner own.conf)" = "1234:33 640" &&
  test "$(owner closed.conf)" = "65534:65534 644"
'

# Not root, cairn cannot keep another user's ownership: the file is
# written all the same, becomes the writer's, and the step's log says so.
test_expect_success 'file.write not as root: the file becomes the writer'\''s, the log says whose it was' '
  if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    echo "needs root and setpriv to run cairn as nobody"; return 0
  fi &&
  mkdir nb && cp fw-own.yaml nb/ && printf "port=1\n" >nb/own.conf &&
  printf "x\n" >nb/closed.conf && chown -R 65534:65534 nb &&
  chown 0:0 nb/own.conf && chmod 0644 nb/own.conf &&
  chmod o+x "$CAIRN_TEST_BASE" "$TRASH" && # nobody passes through
  (cd nb && HOME=$PWD setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$CAIRN_BIN" run fw-own.yaml >out 2>&1) &&
  printf "port=2\n" >want && test_cmp want nb/own.conf &&
  test "$(owner nb/own.conf)" = "65534:65534 640" &&
  test_grep "file.write: .own.conf. is owned by uid 65534 gid 65534, not uid 0 gid 0: only root may give a file away" \
    nb/.cairn/runs/*/own.log &&
  rm -rf nb
'

test_expect_success 'file.remove removes a file; a missing one is success' '
  echo x >nothing-here.txt &&
  cairn run fw.yaml &&
  test_path_is_missing nothing-here.txt &&
  test_grep "removed" .cairn/runs/$(last_run)/gone.log &&
  cairn run fw.yaml &&
  test_grep "already gone" .cairn/runs/$(last_run)/gone.log
'

test_expect_success 'bad inputs are caught by validate' '
  write_workflow bad.yaml <<-\EOF &&
	cairn: 1
	name: bad
	start: w
	states:
	  w: { do: file.write, with: { path: x, content: y, mode: "rw-r--r--" }, next: done }
	  done: { succeed: true }
	EOF
  test_must_fail_with 2 cairn validate bad.yaml >out.txt 2>&1 &&
  test_grep "bad mode .rw-r--r--. for input .mode." out.txt &&
  sed "s/mode: \"rw-r--r--\"/restore_from: z/" bad.yaml >bad2.yaml &&
  test_must_fail_with 2 cairn validate bad2.yaml >out.txt 2>&1 &&
  test_grep "cannot be used together" out.txt &&
  write_workflow bad3.yaml <<-\EOF &&
	cairn: 1
	name: bad3
	start: s
	states:
	  s: { do: process.stop, with: { grace: 1s }, next: done }
	  done: { succeed: true }
	EOF
  test_must_fail_with 2 cairn validate bad3.yaml >out.txt 2>&1 &&
  test_grep "process.stop needs .pid_file. or .pid." out.txt
'

test_expect_success 'no process the tests recorded is left' '
  while read -r p; do
    if proc_alive "$p"; then echo "left behind: $p"; exit 1; fi
  done <"$PIDS"
'

write_workflow fsecret.yaml <<\EOF
cairn: 1
name: fsecret
secrets: [DB_PASSWORD]
start: conf
states:
  conf:
    do: file.write
    with: { path: "db.conf", mode: "0600", content: "password={{ secrets.DB_PASSWORD }}\n" }
    next: plain
  plain:
    do: file.write
    with: { path: "plain.conf", content: "password=none\n" }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'file.write gives no hash of a content that holds a secret' '
  DB_PASSWORD=s3cret-pw cairn run fsecret.yaml &&
  printf "password=s3cret-pw\n" >want && test_cmp want db.conf &&
  q "SELECT json_extract(payload, \"$.outputs.sha256\")
     FROM events WHERE kind = \"action.finished\" AND state = \"conf\"" >out.txt &&
  test "$(cat out.txt)" = "" &&
  q "SELECT json_extract(payload, \"$.outputs.sha256\")
     FROM events WHERE kind = \"action.finished\" AND state = \"plain\"" >out.txt &&
  test "$(cat out.txt)" = "$(sha256sum plain.conf | cut -d" " -f1)" &&
  ! grep -c "$(sha256sum db.conf | cut -d" " -f1)" .cairn/journal.db
'

# Resume after a kill while a service's ready check runs: the service the
# dead engine started is adopted (same pid, no second process), and the
# ready check's own child is stopped.
write_workflow adopt.yaml <<\EOF
cairn: 1
name: adopt
start: svc
states:
  svc:
    do: process.start
    with: { argv: [sleep, "300"], pid_file: "adopt.pid", log: "adopt.log" }
    ready: { do: exec, with: { shell: "echo waiting; while [ ! -e go ]; do sleep 0.05; done" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'resume adopts a service whose ready check the kill interrupted' '
  rm -rf .cairn go &&
  { "$CAIRN_BIN" run adopt.yaml >out 2>&1 & cpid=$!; } &&
  n=0 &&
  until [ "$(q "SELECT count(*) FROM events WHERE kind = '\''action.spawned'\'' AND state = '\''svc'\''" 2>/dev/null)" = 1 ]; do
    n=$((n + 1)) && [ $n -lt 100 ] && sleep 0.1 || return 1
  done &&
  pid=$(pidfile_pid adopt.pid) && echo "$pid" >>"$PIDS" &&
  kill -9 "$cpid" && { wait "$cpid" || :; } &&
  proc_alive "$pid" &&
  touch go &&
  cairn resume >out 2>&1 &&
  test "$(pidfile_pid adopt.pid)" = "$pid" &&
  proc_alive "$pid" &&
  test "$(pgrep -c -f "^sleep 300$" -s "$pid")" = 1 &&
  test "$(q "SELECT status FROM runs")" = succeeded &&
  kill "$pid"
'

test_done
