#!/bin/bash
# t0011-tcp: tcp.wait against real ports on 127.0.0.1: one that starts
# listening after a delay, one that never does, a name to resolve, and the
# state's timeout; no listener is left behind.
. "$(dirname "$0")/lib.sh"
. "$CAIRN_TEST_LIB_DIR/netlib.sh"

command -v nc >/dev/null 2>&1 || test_skip_all 'nc is not installed (apt-get install netcat-openbsd)'
trap 'net_stop_all; _cairn_test_exit' EXIT

wait_wf() {
	write_workflow "$1.yaml" <<-EOF
	cairn: 1
	name: $1
	start: w
	states:
	  w:
	    do: tcp.wait
	    with: $2
	    ${3:-}
	    next: done
	  done: { succeed: true }
	EOF
}

out() {
	q "SELECT json_extract(payload, '\$.outputs.$1') FROM events
	   WHERE run_id = '$(last_run)' AND kind = 'action.finished'
	   AND state = 'w' ORDER BY seq DESC LIMIT 1"
}

test_expect_success 'a port that starts listening after a second is waited for (refused first)' '
	port=$(free_port) &&
	listen_silent "$port" 1 &&
	wait_wf late "{ port: $port, within: 10s, interval: 100ms }" &&
	cairn run late.yaml >out 2>err &&
	net_stop "$LISTEN_PID" &&
	n=$(out attempts) && ms=$(out elapsed_ms) && echo "$n attempts, $ms ms" &&
	test "$n" -ge 2 &&
	step_tail w >tail &&
	test_grep "127.0.0.1:$port accepted a connection after $n attempts" tail
'

test_expect_success 'a port that never listens: the error after within' '
	port=$(free_port) &&
	wait_wf never "{ port: $port, within: 1s, interval: 100ms }" &&
	start=$(date +%s%N) &&
	test_must_fail_with 1 cairn run never.yaml >out 2>err &&
	ms=$(( ($(date +%s%N) - start) / 1000000 )) && echo "took $ms ms" &&
	test "$ms" -ge 800 && test "$ms" -lt 5000 &&
	test_grep "127.0.0.1:$port did not accept a connection within 1s (last: connection refused)" out
'

test_expect_success 'a host name is resolved (localhost)' '
	port=$(free_port) &&
	listen_silent "$port" &&
	wait_listening "$port" &&
	wait_wf named "{ host: localhost, port: $port, within: 5s }" &&
	cairn run named.yaml >out 2>err &&
	net_stop "$LISTEN_PID"
'

# A name whose first address cannot even be tried (224.0.0.1: connect()
# fails at once with "network is unreachable") and whose second listens:
# the second is tried in the same attempt, not after the interval. The
# name and the address order come from a private /etc/hosts and
# /etc/gai.conf, bind-mounted in a mount namespace of the run's own
# (unshare -m); where that is not allowed the test is skipped.
multi_ns() {
	unshare -m sh -c 'mount --bind "$1" /etc/hosts &&
		mount --bind "$2" /etc/gai.conf && shift 2 && exec "$@"' \
		sh "$TRASH/hosts" "$TRASH/gai.conf" "$@"
}
printf '224.0.0.1 multi.test\n127.0.0.1 multi.test\n' >hosts
printf 'precedence ::ffff:224.0.0.0/100 100\nprecedence ::ffff:0:0/96 10\nprecedence ::/0 40\n' >gai.conf
if test -e /etc/gai.conf &&
	multi_ns getent ahosts multi.test 2>/dev/null >ahosts &&
	test "$(awk '$2 == "STREAM" { print $1 }' ahosts | tr '\n' ' ')" = "224.0.0.1 127.0.0.1 "
then
	test_expect_success 'an address that fails at once: the next one is tried in the same attempt' '
		port=$(free_port) &&
		listen_silent "$port" &&
		wait_listening "$port" &&
		wait_wf multi "{ host: multi.test, port: $port, within: 3s, interval: 2s }" &&
		multi_ns "$CAIRN_BIN" run multi.yaml >out 2>err &&
		net_stop "$LISTEN_PID" &&
		test "$(out attempts)" = 1 &&
		test "$(out elapsed_ms)" -lt 1000
	'
else
	test_skip 'an address that fails at once: the next one is tried in the same attempt' \
		'no private /etc/hosts here (unshare -m, mount --bind)'
fi

test_expect_success 'a name that does not resolve says so' '
	wait_wf noname "{ host: no-such-host.invalid, port: 80, within: 300ms, interval: 100ms }" &&
	test_must_fail_with 1 cairn run noname.yaml >out 2>err &&
	test_grep "no-such-host.invalid:80 did not accept a connection within 300ms (last: " out
'

test_expect_success 'the state timeout ends the wait as timed out' '
	port=$(free_port) &&
	wait_wf st "{ port: $port, within: 30s, interval: 100ms }" "timeout: 500ms" &&
	test_must_fail_with 1 cairn run st.yaml >out 2>err &&
	test_grep "127.0.0.1:$port: timed out after 500ms (last: connection refused)" out
'

test_expect_success 'validate: a port out of range, a missing port' '
	wait_wf big "{ port: 70000 }" &&
	test_must_fail_with 2 cairn validate big.yaml >out 2>err &&
	test_grep "^big.yaml:7:13: error: value 70000 is out of range for input .port. in state .w. (hint: use a TCP port from 1 to 65535)" err &&
	wait_wf noport "{ host: 127.0.0.1 }" &&
	test_must_fail_with 2 cairn validate noport.yaml >out 2>err &&
	test_grep "missing required input '\''port'\''" err
'

test_expect_success 'no listener started by this script is left running' '
	test -s "$TRASH/net-pids" &&
	net_stop_all &&
	left=$(net_tracked) &&
	test -z "$left" || { echo "listeners still running: $left"; exit 1; }
'

test_done
