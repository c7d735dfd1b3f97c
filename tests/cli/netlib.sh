# tests/cli/netlib.sh: servers on 127.0.0.1 for the network adapter tests
# (t0010-http, t0011-tcp, t0012-sql, t0030-service, tests/bench/http.sh):
# a real nginx, PostgreSQL and Redis from Debian in private folders, a
# listener that accepts and never answers (nc), and free ports. Everything
# started here is stopped by net_stop_all (call it from an EXIT trap),
# except PostgreSQL: pg_stop.

net_pids=()

# free_port: prints a port nothing listens on (probes 127.0.0.1), outside
# the kernel's ephemeral range: a port from inside it may be taken as the
# local end of some client's connection (another test's fan-out of
# checks) between this probe and the server's bind; and from 20000 up:
# the example's dev stack listens on 18000 and above.
free_port() {
	local p i lo=32768 hi=60999 base=20000 span
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	if [ "$lo" -gt $((base + 1000)) ]; then
		span=$((lo - base))
	elif [ "$hi" -lt 64535 ]; then
		base=$((hi + 1)) span=$((65535 - hi))
	else
		base=20000 span=40000 # the range is everything: nothing better
	fi
	for i in $(seq 1 200); do
		p=$((base + RANDOM % span))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# net_need COMMAND PACKAGE: installs the Debian PACKAGE when COMMAND is
# missing (root only).
net_need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || return 1
	DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$2" >/dev/null 2>&1 ||
	{ apt-get -qq update >/dev/null 2>&1 &&
	  DEBIAN_FRONTEND=noninteractive apt-get -qq -y install "$2" >/dev/null 2>&1; }
	command -v "$1" >/dev/null 2>&1
}

net_need_nginx() { net_need nginx nginx; }

# nginx_start DIR SERVERS: runs nginx with its prefix, pid file, logs and
# temp folders in DIR; SERVERS is the text of the server blocks. Waits for
# the pid file. Sets NGINX_PID.
nginx_start() {
	local dir=$1 servers=$2 user='' i
	mkdir -p "$dir/logs" "$dir/tmp"
	[ "$(id -u)" -eq 0 ] && user='user root;'
	cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 4096; }
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  default_type application/json;
  keepalive_requests 100000;
$servers
}
EOF
	nginx -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" || return 1
	for i in $(seq 1 50); do
		if [ -s "$dir/nginx.pid" ]; then
			NGINX_PID=$(cat "$dir/nginx.pid")
			net_track "$NGINX_PID"
			return 0
		fi
		sleep 0.1
	done
	echo "nginx_start: no pid file in $dir"
	return 1
}

# net_stop PID: TERM, wait until it is gone (KILL after 5s).
net_stop() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
}

# net_started PID: the start time of PID (clock ticks since boot), or
# nothing when it is gone.
net_started() {
	sed -n 's/^.*) [^ ]* \(.*\)$/\1/p' "/proc/$1/stat" 2>/dev/null | cut -d" " -f19
}

# net_track PID: net_stop_all stops it, also when a test body (a subshell,
# whose net_pids the script never sees) started it: the pid and its start
# time go to $TRASH/net-pids too, so that a pid reused since is left alone.
net_track() {
	net_pids+=("$1")
	if [ -n "${TRASH:-}" ]; then
		echo "$1 $(net_started "$1")" >>"$TRASH/net-pids"
	fi
}

# net_tracked: the pids net_track recorded that still run as recorded.
net_tracked() {
	local pid start
	[ -n "${TRASH:-}" ] && [ -f "$TRASH/net-pids" ] || return 0
	while read -r pid start; do
		if [ -n "$start" ] && [ "$(net_started "$pid")" = "$start" ]; then
			echo "$pid"
		fi
	done <"$TRASH/net-pids"
}

net_stop_all() {
	local p
	for p in "${net_pids[@]}" $(net_tracked); do
		net_stop "$p"
	done
	net_pids=()
}

# listen_silent PORT [DELAY]: after DELAY seconds, a listener on PORT that
# accepts and never answers (netcat-openbsd). Sets LISTEN_PID.
listen_silent() {
	local port=$1 delay=${2:-0}
	if [ "$delay" = 0 ]; then
		nc -l 127.0.0.1 "$port" </dev/null >/dev/null 2>&1 &
	else
		sh -c 'sleep "$1"; exec nc -l 127.0.0.1 "$2"' sh "$delay" "$port" \
			</dev/null >/dev/null 2>&1 &
	fi
	LISTEN_PID=$!
	net_track "$LISTEN_PID"
}

# wait_listening PORT: up to 5s for a listening socket on 127.0.0.1:PORT
# (read from /proc/net/tcp: a probe connection would use up nc's one
# accept).
wait_listening() {
	local hex i
	hex=$(printf '0100007F:%04X' "$1")
	for i in $(seq 1 50); do
		awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' \
			/proc/net/tcp && return 0
		sleep 0.1
	done
	echo "wait_listening: nothing listens on port $1"
	return 1
}

# ---- PostgreSQL ----------------------------------------------------------------

# as_pg CMD...: runs CMD as the postgres user when root (initdb refuses to
# run as root), else as is.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_missing: returns 0, with the reason in PG_MISSING (for
# test_skip_all), when a PostgreSQL of the test's own cannot run here.
# Sets PG_BIN.
pg_missing() {
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	PG_MISSING=
	if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || ! command -v psql >/dev/null; then
		PG_MISSING="PostgreSQL is not installed (apt-get install postgresql)"
	elif [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		PG_MISSING="running as root and there is no postgres user to run the server"
	fi
	[ -n "$PG_MISSING" ]
}

# pg_start DIR PASSWORD: initdb in DIR/data (DIR is given to the postgres
# user when root) with the superuser cairn, password PASSWORD and md5
# authentication, then pg_ctl start on a free 127.0.0.1 port with its
# socket in DIR. Sets PG_PORT; on failure sets PG_ERROR and returns 1.
# Call pg_missing first.
pg_start() {
	local dir=$1 port _
	PG_PORT= PG_ERROR=
	if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
	printf '%s\n' "$2" >"$dir/pwfile"
	if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir/pwfile"; fi
	if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U cairn --auth=md5 \
	     --pwfile="$dir/pwfile" >"$dir/initdb.log" 2>&1; then
		PG_ERROR="initdb failed: $(tail -n 5 "$dir/initdb.log")"
		return 1
	fi
	rm -f "$dir/pwfile"
	for _ in 1 2 3; do
		port=$(free_port) || break
		if pg_ctl_start "$dir" "$port"; then
			PG_PORT=$port
			return 0
		fi
	done
	PG_ERROR="pg_ctl start failed: $(tail -n 5 "$dir/log" 2>/dev/null)"
	return 1
}

# pg_ctl_start DIR PORT: starts (again) the server of pg_start DIR.
pg_ctl_start() {
	as_pg "$PG_BIN/pg_ctl" -D "$1/data" -w -t 30 -l "$1/log" \
		-o "-p $2 -k $1 -c listen_addresses=127.0.0.1" start >/dev/null 2>&1
}

# pg_stop DIR: stops the server of pg_start DIR, if it runs.
pg_stop() {
	[ -n "${PG_BIN:-}" ] && [ -d "$1/data" ] || return 0
	as_pg "$PG_BIN/pg_ctl" -D "$1/data" stop -m fast >/dev/null 2>&1 || :
}

# ---- Redis -----------------------------------------------------------------------

# redis_start DIR PASSWORD: redis-server in the foreground (in the
# background of the shell) on a free 127.0.0.1 port, with requirepass
# PASSWORD, no persistence and its files in DIR. The password goes in a
# config file, not on a command line. Waits for PING. Sets REDIS_PORT and
# REDIS_PID; on failure prints why and returns 1.
redis_start() {
	local dir=$1 port _ i
	for _ in 1 2 3; do
		port=$(free_port) || return 1
		cat >"$dir/redis.conf" <<EOF
port $port
bind 127.0.0.1
requirepass $2
save ""
appendonly no
dir $dir
daemonize no
logfile $dir/redis.log
EOF
		chmod 600 "$dir/redis.conf"
		redis-server "$dir/redis.conf" </dev/null >/dev/null 2>&1 &
		REDIS_PID=$!
		for i in $(seq 1 50); do
			kill -0 "$REDIS_PID" 2>/dev/null || break
			if [ "$(REDISCLI_AUTH=$2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
				REDIS_PORT=$port
				net_track "$REDIS_PID"
				return 0
			fi
			sleep 0.1
		done
		net_stop "$REDIS_PID"
	done
	echo "redis_start: redis-server did not answer PING: $(tail -n 3 "$dir/redis.log" 2>/dev/null)"
	return 1
}
