# Shared helpers for end-to-end tests: start real servers on free 127.0.0.1 ports, bounded in
# time, and stop them when the test exits.
set -euo pipefail
: "${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}"
: "${SLUICE_SOURCE_DIR:?set SLUICE_SOURCE_DIR}"
WORK=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -n ${KEEP_WORK:-} ]] && trap - EXIT

fail() { echo "FAIL: $*" >&2; [[ -f $WORK/sluice.log ]] && tail -20 "$WORK/sluice.log" >&2; exit 1; }
pass() { echo "ok: $*"; }

free_port() {
  # Bind port 0 in a throwaway process and print what the kernel picked.
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}

wait_http() {  # url
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  fail "$1 never answered"
}

# start_nginx PORT: a demo upstream answering /, /echo-headers-ish and /big.
start_nginx() {
  local port=$1 dir=$WORK/nginx-$1
  mkdir -p "$dir/html"
  echo "upstream $port" > "$dir/html/index.html"
  head -c 1048576 /dev/zero | tr '\0' 'x' > "$dir/html/big"
  cat > "$dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    root $dir/html;
    location /headers { default_type text/plain;
      return 200 "xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto rid=\$http_x_request_id host=\$host uri=\$request_uri added=\$http_x_added wasm=\$http_x_from_wasm\n"; }
    location /status/ { return 503 "unavailable\n"; }
    location /post { client_max_body_size 10m; proxy_pass http://127.0.0.1:$port/echo-len; }
    location /echo-len { default_type text/plain; return 200 "len=\$content_length\n"; }
  }
}
NGINX
  /usr/sbin/nginx -c "$dir/nginx.conf" -e "$dir/error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/"
}

# start_sluice CONFIG_FILE [extra args]: waits for the admin /ready given by $ADMIN_PORT.
start_sluice() {
  local cfg=$1; shift
  "$SLUICE_BIN" -c "$cfg" --concurrency 2 -l debug "$@" > "$WORK/sluice.log" 2>&1 &
  SLUICE_PID=$!
  PIDS+=($SLUICE_PID)
  wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
}

# raw_request PORT: sends stdin verbatim over TCP and prints the reply (bounded by a timeout).
raw_request() {
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; cat >&3; timeout 2 cat <&3" || true
}
