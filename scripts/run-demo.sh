#!/usr/bin/env bash
# `make run`: starts a demo upstream (nginx on 127.0.0.1:18080), sluice in front of it
# (examples/demo.yaml) and the extension hub (127.0.0.1:5080, with its web UI) holding one of the
# demo's extensions; prints what to try, and stops everything on Ctrl-C.
set -euo pipefail
BUILD_DIR=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/sluice-demo.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
cleanup() {
  [[ -n ${SLUICE_PID:-} ]] && kill "$SLUICE_PID" 2>/dev/null || true
  [[ -n ${HUB_PID:-} ]] && kill "$HUB_PID" 2>/dev/null || true
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

# The hub, with an administrator "demo" and the add_header extension pushed to it. The CLI's
# credentials stay in this demo's folder, not in ~/.sluice.
SLUICE="$ROOT/$BUILD_DIR/sluice"
HUB=127.0.0.1:5080
HUB_TOKEN=$("$SLUICE" hub user add demo --admin --data-dir "$WORK/hub" 2>/dev/null)
"$SLUICE" hub serve --data-dir "$WORK/hub" --listen "$HUB" -l warning > "$WORK/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://$HUB/healthz" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/add_header.md" <<'README'
# add_header

Adds, sets and removes request and response headers, one rule per line of its configuration:

```
request.set.x-demo-plugin = add_header
response.set.x-wasm-plugin = add_header on V8
response.remove.server
```

Built with Sluice's C++ SDK, to `.wasm` for V8 and to a native plugin for the null runtime.
README
export SLUICE_HOME=$WORK/sluice-home
echo "$HUB_TOKEN" | "$SLUICE" ext login "$HUB" -u demo --password-stdin --plain-http > /dev/null 2>&1 &&
  "$SLUICE" ext push "$ROOT/$BUILD_DIR/extensions/add_header.wasm" "$HUB/demo/add-header:1.0" \
    --description "Adds, sets and removes HTTP headers by rule" --license Apache-2.0 \
    --readme "$WORK/add_header.md" --plain-http > /dev/null 2>&1 ||
  echo "(the hub did not start: see $WORK/hub.log)"
unset SLUICE_HOME
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
  curl -s http://127.0.0.1:9901/stats/prometheus | grep '^istio_requests_total'
                                             # Istio's metrics from the telemetry extension
  curl http://127.0.0.1:9901/config_dump        # admin: running config (and the last reload)
  curl http://127.0.0.1:9901/wasm               # admin: Wasm plugins, their VMs and limits
Deploy a plugin into the running proxy, see it, take it out again:
  $BUILD_DIR/sluice ext deploy $BUILD_DIR/extensions/add_header.wasm --to http://127.0.0.1:9901 \\
      --name stamp --config 'response.set.x-deployed = yes'
  curl -si http://127.0.0.1:10000/ | grep x-deployed
  $BUILD_DIR/sluice ext undeploy stamp --to http://127.0.0.1:9901
The extension hub (an OCI registry with a web UI) holds demo/add-header:1.0:
  open http://$HUB/ in a browser; log in with the demo administrator's token:
      $HUB_TOKEN
  curl -s "http://$HUB/api/v1/search?q=header"
  $BUILD_DIR/sluice ext pull $HUB/demo/add-header:1.0 --plain-http -o /tmp/add_header.wasm
  $BUILD_DIR/sluice ext deploy $HUB/demo/add-header:1.0 --plain-http --to http://127.0.0.1:9901 \\
      --name from-hub --config 'response.set.x-from-hub = yes'
  curl -si http://127.0.0.1:10000/ | grep x-from-hub
Edit examples/demo.yaml while this runs (say, the add_header rules): sluice reloads it without
a restart or a dropped request; a broken edit is refused and shown in /config_dump.
Ctrl-C stops everything.

MSG
wait "$SLUICE_PID"
