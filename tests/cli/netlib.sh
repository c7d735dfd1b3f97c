# tests/cli/netlib.sh: servers on 127.0.0.1 for the network adapter tests
# (t0010-http, t0011-tcp, tests/bench/http.sh): a real nginx from Debian
# in a private folder, a listener that accepts and never answers (nc), and
# free ports. Everything started here is stopped by net_stop_all (call it
# from an EXIT trap).

net_pids=()

# free_port: prints a port nothing listens on (probes 127.0.0.1).
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# net_need_nginx: installs Debian's nginx when it is missing (root only).
net_need_nginx() {
	command -v nginx >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || return 1
	DEBIAN_FRONTEND=noninteractive apt-get -qq -y install nginx >/dev/null 2>&1 ||
	{ apt-get -qq update >/dev/null 2>&1 &&
	  DEBIAN_FRONTEND=noninteractive apt-get -qq -y install nginx >/dev/null 2>&1; }
	command -v nginx >/dev/null 2>&1
}

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
			net_pids+=("$NGINX_PID")
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

net_stop_all() {
	local p
	for p in "${net_pids[@]}"; do
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
	net_pids+=("$LISTEN_PID")
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
