#!/usr/bin/env bash
# TLS to upstreams (a cluster's UpstreamTlsContext) against nginx speaking TLS: SNI, the
# upstream's certificate verified against trusted_ca and its SANs, a client certificate for
# nginx's ssl_verify_client, connection reuse, and each failure a 503 counted in
# cluster.<name>.ssl.connection_error.
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed (make deps)"

make_ca ca; make_ca otherca
make_cert upstream "/CN=upstream.test" "DNS:upstream.test,URI:spiffe://sluice.test/upstream" ca
make_cert client "/CN=sluice-client" "DNS:client.test" ca
make_cert renewed "/CN=sluice-client-renewed" "DNS:client.test" ca
cp "$WORK/client.pem" "$WORK/rotating.pem"; cp "$WORK/client.key" "$WORK/rotating.key"

UP=$(free_port); UP_CLOSE=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$UP ssl;
    ssl_certificate $WORK/upstream.pem;
    ssl_certificate_key $WORK/upstream.key;
    ssl_client_certificate $WORK/ca.pem;
    ssl_verify_client optional;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000;
    location / { default_type text/plain;
      return 200 "sni=\$ssl_server_name client=\$ssl_client_s_dn verify=\$ssl_client_verify proto=\$ssl_protocol\n"; }
  }
  # The same without keep-alive: every request reaches it on a new connection (new handshake).
  server {
    listen 127.0.0.1:$UP_CLOSE ssl;
    ssl_certificate $WORK/upstream.pem;
    ssl_certificate_key $WORK/upstream.key;
    ssl_client_certificate $WORK/ca.pem;
    ssl_verify_client optional;
    keepalive_timeout 0;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /reuse/ { default_type text/plain; return 200 "reused=\$ssl_session_reused\n"; }
    location / { default_type text/plain; return 200 "client=\$ssl_client_s_dn\n"; }
  }
}
NGINX
/usr/sbin/nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$UP/" && break; sleep 0.05; done

cluster() {  # name tls-context-lines [port]
  cat <<YAML
  - name: $1
    connect_timeout: 2s
    load_assignment:
      cluster_name: $1
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${3:-$UP} } } } } ] } ]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
$2
YAML
}
route() { echo "              - { match: { prefix: \"/$1/\" }, route: { cluster: $1, prefix_rewrite: \"/\" } }"; }
{
  front_config "$PORT" "$(for c in verified nocheck wrongsan wrongca rotating resumed resumed12 fresh; do route $c; done)"
  echo "  clusters:"
  cluster verified "        sni: upstream.test
        common_tls_context:
          tls_certificates: [ { certificate_chain: { filename: $WORK/client.pem }, private_key: { filename: $WORK/client.key } } ]
          validation_context:
            trusted_ca: { filename: $WORK/ca.pem }
            match_typed_subject_alt_names:
            - { san_type: URI, matcher: { exact: \"spiffe://sluice.test/upstream\" } }"
  cluster nocheck "        sni: anything.test"
  cluster wrongsan "        sni: upstream.test
        common_tls_context:
          validation_context:
            trusted_ca: { filename: $WORK/ca.pem }
            match_typed_subject_alt_names: [ { san_type: DNS, matcher: { exact: other.test } } ]"
  cluster wrongca "        common_tls_context:
          validation_context: { trusted_ca: { filename: $WORK/otherca.pem } }"
  cluster rotating "        common_tls_context:
          tls_certificates: [ { certificate_chain: { filename: $WORK/rotating.pem }, private_key: { filename: $WORK/rotating.key } } ]" "$UP_CLOSE"
  # Every request a new connection (keepalive_timeout 0): the handshakes after the first resume.
  cluster resumed "        sni: upstream.test" "$UP_CLOSE"
  cluster resumed12 "        sni: upstream.test
        common_tls_context: { tls_params: { tls_maximum_protocol_version: TLSv1_2 } }" "$UP_CLOSE"
  cluster fresh "        sni: upstream.test
        max_session_keys: 0" "$UP_CLOSE"
} > "$WORK/up.yaml"
start_sluice "$WORK/up.yaml"

body=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/verified/")
[[ $body == *"sni=upstream.test"* ]] || fail "SNI to the upstream: $body"
[[ $body == *"client=CN=sluice-client"* && $body == *"verify=SUCCESS"* ]] || fail "client certificate: $body"
[[ $body == *"proto=TLSv1.3"* ]] || fail "TLS version: $body"
for _ in 1 2 3; do curl -sS -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/verified/"; done
# Four requests, two workers: at most one connection (and one handshake) per worker.
cx=$(stat_of cluster.verified.upstream_cx_total)
(( cx <= 2 )) || fail "the TLS connections were not reused: $cx connections for 4 requests"
[[ $(stat_of cluster.verified.ssl.handshake) == "$cx" ]] || fail "ssl.handshake: $(stat_of cluster.verified.ssl.handshake) for $cx connections"
pass "upstream TLS: SNI, the upstream's URI SAN verified, client certificate accepted, connection reused"

# Session resumption (max_session_keys, default 1): the cluster's workers share its sessions.
# nginx says whether each handshake resumed; sluice counts it in ssl.session_reused.
for c in resumed resumed12; do  # TLS 1.3 tickets, then TLS 1.2 tickets
  seen=""
  for _ in 1 2 3 4; do seen+=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/$c/reuse/"); done
  [[ $seen == "reused=."*"reused=r"*"reused=r"* ]] || fail "$c: upstream TLS sessions were not resumed: $seen"
  (( $(stat_of cluster.$c.ssl.session_reused) >= 2 )) ||
    fail "$c: ssl.session_reused: $(stat_of cluster.$c.ssl.session_reused) of $(stat_of cluster.$c.ssl.handshake)"
done
seen=""
for _ in 1 2 3; do seen+=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/fresh/reuse/"); done
[[ $seen == "reused=.reused=.reused=." ]] || fail "max_session_keys 0 resumed: $seen"
[[ $(stat_of cluster.fresh.ssl.session_reused) == 0 ]] || fail "fresh: ssl.session_reused"
pass "upstream TLS sessions are resumed (TLS 1.3 and 1.2), and not with max_session_keys: 0"

body=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/nocheck/")
[[ $body == *"sni=anything.test"* && $body == *"verify=NONE"* ]] || fail "no validation context: $body"
pass "without a validation_context the upstream is not verified (Envoy's default)"

for c in wrongsan wrongca; do
  code=$(curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/$c/")
  [[ $code == 503 ]] || fail "$c: status $code"
  [[ $(stat_of "cluster.$c.ssl.connection_error") -ge 1 ]] || fail "$c: ssl.connection_error"
  [[ $(stat_of "cluster.$c.upstream_cx_connect_fail") -ge 1 ]] || fail "$c: upstream_cx_connect_fail"
done
pass "a SAN mismatch or an unknown CA is a 503 counted in ssl.connection_error"

# The cluster's client certificate is replaced on disk: new upstream connections present it.
body=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/rotating/")
[[ $body == "client=CN=sluice-client" ]] || fail "before the reload: $body"
cp "$WORK/renewed.key" "$WORK/rotating.key.new"; cp "$WORK/renewed.pem" "$WORK/rotating.pem.new"
mv "$WORK/rotating.key.new" "$WORK/rotating.key"; mv "$WORK/rotating.pem.new" "$WORK/rotating.pem"
wait_until "the renewed client certificate in use" bash -c \
  "[[ \$(curl -s --max-time 5 http://127.0.0.1:$PORT/rotating/) == client=CN=sluice-client-renewed ]]"
[[ $(stat_of cluster.rotating.ssl.certificate_reload) -ge 1 ]] || fail "cluster certificate_reload stat"
pass "a cluster's client certificate is reloaded from disk without a restart"
stop_sluice

# A cluster's bad client key is a config error naming its path.
sed "s|private_key: { filename: $WORK/client.key }|private_key: { filename: $WORK/otherca.key }|" "$WORK/up.yaml" > "$WORK/bad.yaml"
"$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" > "$WORK/bad.log" 2>&1 && fail "a mismatched client key validated"
grep -q "clusters\[0\].*does not belong to the first certificate" "$WORK/bad.log" || fail "message: $(cat "$WORK/bad.log")"
pass "a cluster's mismatched client key is a config error naming its path"
