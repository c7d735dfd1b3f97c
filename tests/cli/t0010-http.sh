#!/bin/bash
# t0010-http: http.check and notify.webhook against a real nginx on
# 127.0.0.1 (plain and TLS with a self-signed certificate made here by the
# openssl CLI), a port nothing listens on, and a listener that never
# answers; many checks at once on one loop.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

net_need_nginx || test_skip_all 'nginx is not installed (apt-get install nginx)'
command -v openssl >/dev/null 2>&1 || test_skip_all 'openssl is not installed'
command -v nc >/dev/null 2>&1 || test_skip_all 'nc is not installed (apt-get install netcat-openbsd)'
trap 'net_stop_all; _cairn_test_exit' EXIT

NG=$TRASH/nginx
PORT=$(free_port)
TLS_PORT=$(free_port)
REFUSED=$(free_port)
SILENT=$(free_port)
mkdir -p "$NG/www/data"
printf '{"status":"healthy","version":"2.4.1","data":{"items":[{"name":"api","replicas":3}]}}\n' >"$NG/www/health.json"
printf '{"status":"starting"}\n' >"$NG/www/slow.json"
printf 'not json\n' >"$NG/www/plain.txt"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$NG/key.pem" \
	-out "$NG/cert.pem" >/dev/null 2>&1 || test_skip_all 'openssl cannot make a certificate'
nginx_start "$NG" "
  server {
    listen 127.0.0.1:$PORT;
    root $NG/www;
    add_header X-Release 2.4.1;
    location = /boom { return 500 '{\"error\":\"boom\"}'; }
    location = /hook { if (\$request_method != POST) { return 405; } return 204; }
    location = /hook-broken { return 503; }
    location = /echo-auth { return 200 '{\"auth\":\"\$http_authorization\"}'; }
    location = /conn { return 200 '{\"connection\":\$connection,\"requests\":\$connection_requests}'; }
  }
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $NG/cert.pem;
    ssl_certificate_key $NG/key.pem;
    root $NG/www;
  }" || { cat "$NG/logs/error.log"; exit 1; }
U=http://127.0.0.1:$PORT

# fan NAME: NAME.yaml, one parallel state whose branches are the lines on
# stdin ("c001: { do: http.check, ... }").
fan() {
	{
		printf 'cairn: 1\nname: %s\nstart: fan\nstates:\n' "$1"
		printf '  fan:\n    parallel:\n'
		sed 's/^/      /'
		printf '    next: done\n  done: { succeed: true }\n'
	} >"$1.yaml"
}

# succeeded: how many actions of the last run succeeded.
succeeded() {
	q "SELECT count(*) FROM events WHERE run_id = '$(last_run)'
	   AND kind = 'action.finished'
	   AND json_extract(payload, '\$.outcome') = 'succeeded'"
}

# check NAME WITH: a one-state workflow NAME.yaml running http.check.
check() {
	write_workflow "$1.yaml" <<-EOF
	cairn: 1
	name: $1
	start: c
	states:
	  c:
	    do: http.check
	    with: $2
	    next: done
	  done: { succeed: true }
	EOF
}

# out KEY [STATE]: output KEY of STATE (default c) in the newest run.
out() {
	q "SELECT json_extract(payload, '\$.outputs.$1') FROM events
	   WHERE run_id = '$(last_run)' AND kind = 'action.finished'
	   AND state = '${2:-c}' ORDER BY seq DESC LIMIT 1"
}

test_expect_success 'status, json equality, regex and numbers pass; outputs' '
	check ok "{ url: \"$U/health.json\", expect: { status: 200,
	  headers: { Content-Type: application/json, X-Release: { regex: \"^2\\\\.\" } },
	  json: { status: healthy, \"data.items.0.name\": api,
	          \"data.items.0.replicas\": { ge: 3, lt: 4 }, version: { regex: \"^2\\\\.[0-9]+\\\\.[0-9]+$\" } } } }" &&
	cairn run ok.yaml >out 2>err &&
	test "$(out status)" = 200 &&
	test "$(out attempts)" = 1 &&
	test "$(out json.data.items[0].name)" = api &&
	test "$(out headers.x-release)" = 2.4.1 &&
	test "$(out latency_ms)" -ge 0 &&
	q "SELECT json_extract(payload, '\''\$.tail'\'') FROM events
	   WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''" >tail &&
	test_grep "GET $U/health.json: 200 in" tail &&
	# passed at its first try: the journal has its line, no log file
	test_path_is_missing ".cairn/runs/$(last_run)/c.log"
'

test_expect_success 'a json mismatch names the path, the value and the expectation' '
	check nomatch "{ url: \"$U/slow.json\", expect: { json: { status: healthy } } }" &&
	test_must_fail_with 1 cairn run nomatch.yaml >out 2>err &&
	test_grep "GET $U/slow.json: json '\''status'\'' is \"starting\", expected \"healthy\"" out
'

test_expect_success 'a numeric comparison that fails says so' '
	check num "{ url: \"$U/health.json\", expect: { json: { \"data.items.0.replicas\": { gt: 5 } } } }" &&
	test_must_fail_with 1 cairn run num.yaml >out 2>err &&
	test_grep "json '\''data.items.0.replicas'\'' is 3, expected > 5" out
'

test_expect_success 'a regex that does not match, a missing path, a missing header' '
	check re "{ url: \"$U/health.json\", expect: { json: { version: { regex: \"^3\" } } } }" &&
	test_must_fail_with 1 cairn run re.yaml >out 2>err &&
	test_grep "json '\''version'\'' is \"2.4.1\", expected to match regex '\''^3'\''" out &&
	check miss "{ url: \"$U/health.json\", expect: { json: { \"data.items.5.name\": api } } }" &&
	test_must_fail_with 1 cairn run miss.yaml >out 2>err &&
	test_grep "json '\''data.items.5.name'\'' is missing" out &&
	check hdr "{ url: \"$U/health.json\", expect: { headers: { X-Absent: yes } } }" &&
	test_must_fail_with 1 cairn run hdr.yaml >out 2>err &&
	test_grep "header '\''X-Absent'\'' is missing" out
'

test_expect_success 'status 500 and 404 fail; a list of statuses passes' '
	check boom "{ url: \"$U/boom\" }" &&
	test_must_fail_with 1 cairn run boom.yaml >out 2>err &&
	test_grep "GET $U/boom: status 500, expected 200" out &&
	check gone "{ url: \"$U/nope.json\", expect: { status: [200, 204] } }" &&
	test_must_fail_with 1 cairn run gone.yaml >out 2>err &&
	test_grep "status 404, expected one of \[200,204\]" out &&
	check either "{ url: \"$U/nope.json\", expect: { status: [404, 410] } }" &&
	cairn run either.yaml >out 2>err
'

test_expect_success 'a body that is not JSON fails a json expectation' '
	check plain "{ url: \"$U/plain.txt\", expect: { json: { a: 1 } } }" &&
	test_must_fail_with 1 cairn run plain.yaml >out 2>err &&
	test_grep "the body is not JSON" out
'

test_expect_success 'a parallel state of 150 checks of one server: all pass (64 in flight, the rest wait their turn)' '
	awk -v u="$U" '\''BEGIN {
	  for (i = 1; i <= 150; i++)
	    printf "c%03d: { do: http.check, with: { url: \"%s/health.json\", expect: { json: { status: healthy } } } }\n", i, u
	}'\'' | fan fan &&
	cairn run fan.yaml >out 2>err &&
	test "$(succeeded)" = 150
'

# Past the first 64, each request goes in on a handle an earlier one gave
# back: a POST's method and body must not stick to a later GET (nginx
# answers a POST of a static file with 405).
test_expect_success 'checks that reuse handles keep nothing of the request before: POSTs and GETs mixed' '
	awk -v u="$U" '\''BEGIN {
	  for (i = 1; i <= 200; i++)
	    if (i % 2)
	      printf "p%03d: { do: http.check, with: { url: \"%s/hook\", method: POST, body: \"{}\", expect: { status: 204 } } }\n", i, u
	    else
	      printf "g%03d: { do: http.check, with: { url: \"%s/health.json\", expect: { json: { status: healthy } } } }\n", i, u
	}'\'' | fan mix &&
	cairn run mix.yaml >out 2>err &&
	test "$(succeeded)" = 200
'

test_expect_success 'polling: fails while starting, passes once the file says healthy' '
	printf "{\"status\":\"starting\"}\n" >"$NG/www/slow.json" &&
	check poll "{ url: \"$U/slow.json\", expect: { json: { status: healthy } }, within: 10s, interval: 200ms }" &&
	{ ( sleep 1; printf "{\"status\":\"healthy\"}\n" >"$NG/www/slow.json.new" &&
	    mv "$NG/www/slow.json.new" "$NG/www/slow.json" ) & } &&
	cairn run poll.yaml >out 2>err &&
	wait &&
	n=$(out attempts) && echo "attempts: $n" &&
	test "$n" -ge 2 &&
	step_tail c >tail &&
	test_grep "json '\''status'\'' is \"starting\", expected \"healthy\"" tail &&
	test_grep "GET $U/slow.json: 200 in" tail &&
	test_path_is_missing .cairn/runs/$(last_run)/c.log
'

test_expect_success 'polling that never passes: the error counts attempts and the window' '
	printf "{\"status\":\"starting\"}\n" >"$NG/www/slow.json" &&
	check never "{ url: \"$U/slow.json\", expect: { json: { status: healthy } }, within: 1s, interval: 200ms }" &&
	test_must_fail_with 1 cairn run never.yaml >out 2>err &&
	cat out &&
	grep -o "GET [^ ]*: json .* (after [0-9]* attempts in 1s)" out | head -n 1 >msg &&
	n=$(sed "s/.*after \([0-9]*\) attempts.*/\1/" msg) &&
	test "$n" -ge 2 && test "$n" -le 6
'

test_expect_success 'connection refused' '
	check refused "{ url: \"http://127.0.0.1:$REFUSED/\" }" &&
	test_must_fail_with 1 cairn run refused.yaml >out 2>err &&
	test_grep "GET http://127.0.0.1:$REFUSED/: connection refused" out
'

test_expect_success 'a server that accepts and never answers: the request times out' '
	listen_silent "$SILENT" &&
	wait_listening "$SILENT" &&
	check silent "{ url: \"http://127.0.0.1:$SILENT/\", timeout: 500ms }" &&
	start=$(date +%s%N) &&
	test_must_fail_with 1 cairn run silent.yaml >out 2>err &&
	end=$(date +%s%N) &&
	net_stop "$LISTEN_PID" &&
	test_grep "GET http://127.0.0.1:$SILENT/: no response within 500ms" out &&
	test $(( (end - start) / 1000000 )) -lt 5000
'

test_expect_success 'a request cut short by within says the time it had, not its timeout' '
	listen_silent "$SILENT" &&
	wait_listening "$SILENT" &&
	check cut "{ url: \"http://127.0.0.1:$SILENT/\", within: 600ms, interval: 1s }" &&
	test_must_fail_with 1 cairn run cut.yaml >out 2>err &&
	net_stop "$LISTEN_PID" &&
	test_grep "GET http://127.0.0.1:$SILENT/: no response within 600ms" out &&
	test_grep ! "no response within 10s" out
'

# 64 checks of a silent server hold the host's places for 30s: three more
# wait their turn until their 300ms are up and end without a request.
test_expect_success 'a check whose time runs out while it waits for its turn ends unsent, as timed out' '
	listen_silent "$SILENT" &&
	wait_listening "$SILENT" &&
	awk -v u="http://127.0.0.1:$SILENT/" '\''BEGIN {
	  for (i = 1; i <= 64; i++)
	    printf "h%03d: { do: http.check, with: { url: \"%s\", timeout: 30s } }\n", i, u
	  for (i = 1; i <= 3; i++)
	    printf "w%03d: { do: http.check, with: { url: \"%s\", timeout: 300ms } }\n", i, u
	}'\'' | fan turn &&
	start=$(date +%s%N) &&
	test_must_fail_with 1 cairn run turn.yaml >out 2>err &&
	end=$(date +%s%N) &&
	net_stop "$LISTEN_PID" &&
	test_grep "w00[1-3].*GET http://127.0.0.1:$SILENT/: no response within 300ms" out &&
	test $(( (end - start) / 1000000 )) -lt 10000
'

test_expect_success 'the state timeout ends a hanging check as timed out' '
	listen_silent "$SILENT" &&
	wait_listening "$SILENT" &&
	write_workflow st.yaml <<-EOF &&
	cairn: 1
	name: st
	start: c
	states:
	  c:
	    do: http.check
	    with: { url: "http://127.0.0.1:$SILENT/", timeout: 30s }
	    timeout: 500ms
	    next: done
	  done: { succeed: true }
	EOF
	test_must_fail_with 1 cairn run st.yaml >out 2>err &&
	net_stop "$LISTEN_PID" &&
	test_grep "timed out after 500ms" out
'

test_expect_success 'TLS: a self-signed certificate is refused by default' '
	check tls "{ url: \"https://127.0.0.1:$TLS_PORT/health.json\" }" &&
	test_must_fail_with 1 cairn run tls.yaml >out 2>err &&
	test_grep "GET https://127.0.0.1:$TLS_PORT/health.json: TLS certificate not trusted" out
'

test_expect_success 'TLS: accepted with ca: pointing at the certificate' '
	check tlsca "{ url: \"https://127.0.0.1:$TLS_PORT/health.json\", ca: \"$NG/cert.pem\", expect: { json: { status: healthy } } }" &&
	cairn run tlsca.yaml >out 2>err &&
	cairn show $(last_run) >shown &&
	test_grep ! "TLS not verified" shown
'

# The last check goes in on a handle one of the first 100 gave back: the
# CA bundle they trusted must not stay with it.
# z comes after the fan, not in it: a failing branch cancels its siblings,
# and on a busy host some had not finished yet.
test_expect_success 'TLS: a check without ca: on a reused handle still refuses the certificate' '
	awk -v u="https://127.0.0.1:$TLS_PORT/health.json" -v ca="$NG/cert.pem" '\''BEGIN {
	  for (i = 1; i <= 100; i++)
	    printf "a%03d: { do: http.check, with: { url: \"%s\", ca: \"%s\" } }\n", i, u, ca
	}'\'' | fan reuse &&
	sed -i "s|^    next: done\$|    next: z\n  z: { do: http.check, with: { url: \"https://127.0.0.1:$TLS_PORT/health.json\" }, next: done }|" reuse.yaml &&
	test_grep "^  z: " reuse.yaml &&
	test_must_fail_with 1 cairn run reuse.yaml >out 2>err &&
	test_grep "GET https://127.0.0.1:$TLS_PORT/health.json: TLS certificate not trusted" out &&
	test "$(succeeded)" = 100
'

test_expect_success 'TLS: accepted with insecure: true, which the journal and show say' '
	check tlsins "{ url: \"https://127.0.0.1:$TLS_PORT/health.json\", insecure: true }" &&
	cairn run tlsins.yaml >out 2>err &&
	q "SELECT count(*) FROM events WHERE run_id = '\''$(last_run)'\''
	   AND payload LIKE '\''%\"insecure\":true%'\''" >n &&
	test "$(cat n)" -ge 1 &&
	cairn show $(last_run) >shown &&
	test_grep "^ *! TLS not verified (insecure: true)$" shown
'

test_expect_success 'a secret sent in a header is redacted from the json output' '
	write_workflow auth.yaml <<-EOF &&
	cairn: 1
	name: auth
	secrets: [API_TOKEN]
	start: c
	states:
	  c:
	    do: http.check
	    with: { url: "$U/echo-auth", headers: { Authorization: "Bearer {{ secrets.API_TOKEN }}" }, expect: { json: { auth: { regex: "^Bearer " } } } }
	    next: done
	  done: { succeed: true }
	EOF
	API_TOKEN=tok-s3cr3t-9f8e cairn run auth.yaml >out 2>err &&
	test "$(out json.auth)" = "Bearer ***" &&
	grep -rl s3cr3t .cairn out err >leaks || : &&
	test_cmp /dev/null leaks
'

test_expect_success 'validate catches bad expectations with file:line:col' '
	check badop "{ url: \"$U/\", expect: { json: { a: { above: 1 } } } }" &&
	test_must_fail_with 2 cairn validate badop.yaml >out 2>err &&
	test_grep "badop.yaml:[0-9]*:[0-9]*" err &&
	test_grep "unknown comparison '\''above'\''" err &&
	check badre "{ url: \"$U/\", expect: { json: { a: { regex: \"(\" } } } }" &&
	test_must_fail_with 2 cairn validate badre.yaml >out 2>err &&
	test_grep "bad regex" err
'

test_expect_success '20 checks in one parallel state share one loop' '
	{
	  printf "cairn: 1\nname: many\nstart: p\nstates:\n  p:\n    parallel:\n" &&
	  for i in $(seq 1 20); do
	    printf "      c%02d: { do: http.check, with: { url: \"%s/health.json\", expect: { json: { status: healthy } } } }\n" "$i" "$U"
	  done &&
	  printf "    next: done\n  done: { succeed: true }\n"
	} >many.yaml &&
	cairn run many.yaml >out 2>err &&
	test "$(grep -c "^✓ p/c" out)" = 20 &&
	test "$(grep -c "GET /health.json" "$NG/logs/access.log")" -ge 20
'

# The multi handle rests between states instead of going away: checks one
# after another (with a step between, so no two are in flight at once)
# find the connection the one before left open. nginx names it.
test_expect_success 'checks one state after another reuse the connection' '
	write_workflow seq.yaml <<-EOF &&
	cairn: 1
	name: seq
	start: a
	states:
	  a: { do: http.check, with: { url: "$U/conn" }, next: between }
	  between: { do: exec, with: { argv: ["true"] }, next: b }
	  b: { do: http.check, with: { url: "$U/conn" }, next: done }
	  done: { succeed: true }
	EOF
	cairn run seq.yaml >out 2>err &&
	a=$(out json.connection a) && b=$(out json.connection b) &&
	test -n "$a" && test "$a" = "$b" &&
	test "$(out json.requests b)" = 2
'

# Connections left idle stay for later checks: eight checks at once open
# eight, and the eight of the next state find them all (curl's default
# keeps four times the transfers running, which had closed most).
test_expect_success 'a fan-out of checks after another reuses all its connections' '
	{
	  printf "cairn: 1\nname: fan\nstart: one\nstates:\n" &&
	  for s in one two; do
	    printf "  %s:\n    parallel:\n" "$s" &&
	    for i in 1 2 3 4 5 6 7 8; do
	      printf "      c%d: { do: http.check, with: { url: \"%s/conn\" } }\n" "$i" "$U"
	    done &&
	    if test $s = one; then
	      printf "    next: between\n  between: { do: exec, with: { argv: [\"true\"] }, next: two }\n"
	    else
	      printf "    next: done\n"
	    fi
	  done &&
	  printf "  done: { succeed: true }\n"
	} >fan.yaml &&
	cairn run fan.yaml >out 2>err &&
	conns() {
		q "SELECT DISTINCT json_extract(payload, '\''$.outputs.json.connection'\'')
		   FROM events WHERE run_id = '\''$(last_run)'\'' AND kind = '\''action.finished'\''
		   AND state LIKE '\''$1/%'\'' ORDER BY 1"
	} &&
	conns one >first && conns two >second &&
	echo "first: $(wc -l <first) connections, second: $(wc -l <second)" &&
	test "$(wc -l <first)" -ge 5 &&
	comm -13 first second >new &&
	test_cmp /dev/null new
'

# ---- notify.webhook --------------------------------------------------------------

notify() {
	write_workflow "$1.yaml" <<-EOF
	cairn: 1
	name: $1
	start: n
	states:
	  n:
	    do: notify.webhook
	    with: $2
	    next: after
	  after:
	    do: exec
	    with: { argv: [sh, -c, "echo after >>after.txt"] }
	    next: done
	  done: { succeed: true }
	EOF
}

test_expect_success 'notify.webhook POSTs the event to nginx' '
	notify hook "{ url: \"$U/hook\", event: succeeded, data: { release: \"1.4.0\" } }" &&
	cairn run hook.yaml >out 2>err &&
	test "$(out delivered n)" = 1 &&
	test_grep "POST /hook HTTP/1.1\" 204" "$NG/logs/access.log"
'

test_expect_success 'notify.webhook to a refused port: logged, the run goes on' '
	rm -f after.txt &&
	notify lost "{ url: \"http://127.0.0.1:$REFUSED/hook\", event: failed, attempts: 2, delay: 100ms }" &&
	cairn run lost.yaml >out 2>err &&
	test_path_is_file after.txt &&
	test "$(out delivered n)" = 0 &&
	test "$(out attempts n)" = 2 &&
	test_grep "notification not delivered: POST http://127.0.0.1:$REFUSED/hook: connection refused (after 2 attempts)" .cairn/runs/*/n.log
'

test_expect_success 'notify.webhook required: true fails the state' '
	rm -f after.txt &&
	notify req "{ url: \"$U/hook-broken\", body: [1, 2], attempts: 2, delay: 100ms, required: true }" &&
	test_must_fail_with 1 cairn run req.yaml >out 2>err &&
	test_path_is_missing after.txt &&
	test_grep "POST $U/hook-broken: status 503 (after 2 attempts)" out
'

test_expect_success 'notify.webhook: body and event together are refused' '
	notify both "{ url: \"$U/hook\", body: {}, event: x }" &&
	test_must_fail_with 2 cairn validate both.yaml >out 2>err &&
	test_grep "'\''body'\'' cannot be used with '\''event'\''" err
'

test_expect_success 'nothing started by this script is left running' '
	net_stop_all &&
	for p in $(cat "$NG/nginx.pid" 2>/dev/null); do ! proc_alive "$p"; done
'

test_done
