#!/usr/bin/env bash
# Proxy-Wasm shared queues through the real binary, on both runtimes: queue_producer (an HTTP
# filter) enqueues "<method> <path>" per request on whichever worker serves it; queue_consumer,
# another plugin (another VM) of the same vm_id, receives each entry on the worker that
# registered the queue. A flood past the queue's bound (10,000) drops the oldest entries, counted.
source "$(dirname "$0")/lib.sh"
require_extensions queue_producer queue_consumer
UP=$(free_port)
start_nginx "$UP"

for rt in v8 null; do
  PORT=$(free_port); ADMIN_PORT=$(free_port)
  sdk_bootstrap "$UP" "$(
    sdk_listener main "$PORT" "$(
      sdk_filter producer "$rt" queue_producer "queue = events" events
      sdk_filter consumer "$rt" queue_consumer "queue = events" events
      sdk_filter hoarder "$rt" queue_consumer "queue = flood\ndrain = false" events
    )"
  )" > "$WORK/sluice-$rt.yaml"
  start_sluice "$WORK/sluice-$rt.yaml"

  # 4 clients x 10 requests, each on fresh connections (both workers produce).
  pids=()
  for c in 1 2 3 4; do
    (for i in $(seq 10); do
       curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/?q=$c-$i" >> "$WORK/codes-$rt"
     done) & pids+=($!)
  done
  wait "${pids[@]}"
  [[ $(grep -c '^200$' "$WORK/codes-$rt") == 40 ]] || fail "$rt: not every request passed"
  # "GET /?q=c-i": 11 bytes with a one-digit i, 12 with i = 10.
  bytes=$((4 * (9 * 11 + 12)))
  received() { [[ $(stat_of queue_consumer.consumer.received_total) == 40 ]]; }
  wait_until "$rt: the consumer received $(stat_of queue_consumer.consumer.received_total) of 40" received
  [[ $(stat_of queue_consumer.consumer.received_bytes_total) == "$bytes" ]] ||
    fail "$rt: received $(stat_of queue_consumer.consumer.received_bytes_total) bytes, expected $bytes"
  [[ $(stat_of wasm.shared_queue.events.events.dropped) == 0 ]] || fail "$rt: entries dropped"
  pass "$rt: every entry produced on either worker reached the consumer"

  out=$(curl -s -D - -o /dev/null -H 'x-queue: nowhere' "http://127.0.0.1:$PORT/")
  [[ $out == *"x-queue-status: NotFound"* ]] || fail "$rt: unknown queue: $out"
  pass "$rt: a queue nobody registered resolves to NotFound"

  # Flood: 12 requests x 1000 copies into a queue whose consumer leaves the entries there.
  for _ in $(seq 12); do
    out=$(curl -s -D - -o /dev/null -H 'x-queue: flood' -H 'x-enqueue-copies: 1000' "http://127.0.0.1:$PORT/")
    [[ $out == *"x-queue-status: Ok"* ]] || fail "$rt: flood enqueue: $out"
  done
  [[ $(stat_of wasm.shared_queue.events.flood.dropped) == 2000 ]] ||
    fail "$rt: dropped $(stat_of wasm.shared_queue.events.flood.dropped), expected 2000"
  # One notification per entry, but never more in flight than the queue holds: between 10000
  # (the bound) and 12000 (one per enqueue), depending on how fast the consumer's worker ran.
  notified() { [[ $(stat_of queue_consumer.hoarder.notifications_total) -ge 10000 ]]; }
  wait_until "$rt: the hoarder got $(stat_of queue_consumer.hoarder.notifications_total) notifications" notified
  [[ $(stat_of queue_consumer.hoarder.notifications_total) -le 12000 ]] || fail "$rt: notifications"
  [[ $(stat_of queue_consumer.hoarder.received_total) == 0 ]] || fail "$rt: the hoarder dequeued"
  prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
  grep -q '^envoy_wasm_shared_queue_dropped{vm_id="events",queue="flood"} 2000$' <<<"$prom" ||
    fail "$rt: the drop counter in Prometheus"
  pass "$rt: a flood past the bound drops the oldest entries and counts them"

  ! grep -q "failed:" "$WORK/sluice.log" || fail "$rt: plugin failure logged"
  stop_sluice
done
