#!/usr/bin/env bash
# `make run`: starts a demo upstream (nginx on 127.0.0.1:18080) and sluice in front of it
# (examples/demo.yaml), prints what to curl, and stops both on Ctrl-C.
set -euo pipefail
BUILD_DIR=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/sluice-demo.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
cleanup() {
  [[ -n ${SLUICE_PID:-} ]] && kill "$SLUICE_PID" 2>/dev/null || true
  [[ -n ${NGINX_PID:-} ]] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/html"
echo "hello from the demo upstream (nginx)" > "$WORK/html/index.html"
cat > "$WORK/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK;
  proxy_temp_path $WORK;
  fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK;
  scgi_temp_path $WORK;
  server {
    listen 127.0.0.1:18080;
    root $WORK/html;
    location /api { default_type application/json; return 200 '{"upstream":"nginx","uri":"\$uri"}\n'; }
  }
}
NGINX
/usr/sbin/nginx -c "$WORK/nginx.conf" -e stderr &
NGINX_PID=$!
# The demo's Wasm modules are named relative to the build directory.
(cd "$ROOT/$BUILD_DIR" && exec ./sluice -c "$ROOT/examples/demo.yaml") &
SLUICE_PID=$!
for _ in $(seq 50); do curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null && break; sleep 0.1; done
cat <<MSG

Sluice demo is up. Try:
  curl -i http://127.0.0.1:10000/            # proxied to nginx; body rewritten and a header
                                             #   added by Wasm extensions (V8)
  curl -i http://127.0.0.1:10000/wasm        # answered by a Wasm extension (null runtime)
  curl -i http://127.0.0.1:10000/api/users   # proxied, JSON from nginx
  curl -i http://127.0.0.1:10000/hello       # direct response from sluice
  curl -i --http2-prior-knowledge http://127.0.0.1:10000/   # / again, over HTTP/2 (h2c)
  curl -i http://127.0.0.1:10000/old         # redirect
  curl -i http://127.0.0.1:10001/            # raw TCP through a Wasm network filter (tcp_rewrite)
  curl http://127.0.0.1:9901/stats/prometheus   # admin: metrics
  curl http://127.0.0.1:9901/config_dump        # admin: running config (and the last reload)
  curl http://127.0.0.1:9901/wasm               # admin: Wasm plugins, their VMs and limits
Deploy a plugin into the running proxy, see it, take it out again:
  $BUILD_DIR/sluice ext deploy $BUILD_DIR/extensions/add_header.wasm --to http://127.0.0.1:9901 \\
      --name stamp --config 'response.set.x-deployed = yes'
  curl -si http://127.0.0.1:10000/ | grep x-deployed
  $BUILD_DIR/sluice ext undeploy stamp --to http://127.0.0.1:9901
Edit examples/demo.yaml while this runs (say, the add_header rules): sluice reloads it without
a restart or a dropped request; a broken edit is refused and shown in /config_dump.
Ctrl-C stops everything.

MSG
wait "$SLUICE_PID"
