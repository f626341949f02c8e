// Sluice test filter (AssemblyScript SDK), a network filter: counts the bytes of each TCP
// connection both ways in two counters, closes a connection whose client starts with the
// configured word (default "BLOCK"), and logs each connection's totals and who closed it.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterStatusValues, Counter, log, LogLevelValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues, PeerTypeValues } from "@solo-io/proxy-runtime/runtime";
import { proxy_close_stream } from "@solo-io/proxy-runtime/imports";

const STREAM_DOWNSTREAM = 2;
// This module's connections by context id (see the exports at the end).
const connections = new Map<u32, CountConnection>();

class CountRoot extends RootContext {
  block: string = "BLOCK";
  downstream_bytes: Counter = new Counter("as_tcp.downstream_bytes");
  upstream_bytes: Counter = new Counter("as_tcp.upstream_bytes");

  onConfigure(configuration_size: u32): bool {
    if (!super.onConfigure(configuration_size)) return false;
    const config = this.getConfiguration();
    if (config.length > 0) this.block = config;
    return true;
  }

  createContext(context_id: u32): Context {
    const c = new CountConnection(context_id, this);
    connections.set(context_id, c);
    return c;
  }
}

class CountConnection extends Context {
  root: CountRoot;
  bytes_in: usize = 0;
  bytes_out: usize = 0;
  first: bool = true;

  constructor(context_id: u32, root: CountRoot) {
    super(context_id, root);
    this.root = root;
  }

  onDownstreamData(size: usize, end: bool): FilterStatusValues {
    if (this.first && size > 0) {
      this.first = false;
      const head = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.NetworkDownstreamData, 0, <u32>this.root.block.length));
      if (head == this.root.block) {
        log(LogLevelValues.warn, "as_tcp: blocked connection " + this.context_id.toString());
        proxy_close_stream(STREAM_DOWNSTREAM);
        return FilterStatusValues.StopIteration;
      }
    }
    this.bytes_in += size;
    this.root.downstream_bytes.increment(<u32>size);
    return FilterStatusValues.Continue;
  }

  onUpstreamData(size: usize, end: bool): FilterStatusValues {
    this.bytes_out += size;
    this.root.upstream_bytes.increment(<u32>size);
    return FilterStatusValues.Continue;
  }

  onDownstreamConnectionClose(t: PeerTypeValues): void {
    log(LogLevelValues.info, "as_tcp: connection " + this.context_id.toString() + " closed (peer " +
        t.toString() + "): " + this.bytes_in.toString() + " in, " + this.bytes_out.toString() + " out");
  }
}

registerRootContext((context_id: u32) => { return new CountRoot(context_id); }, "as_tcp");

// @solo-io/proxy-runtime 0.1.8 has the network callbacks on Context but does not export them (and
// a call through its base-class context map reaches Context's own logging versions, not the
// overrides, with assemblyscript 0.14): a network filter exports them itself, calling its own
// class. The same module runs in Envoy.
export function proxy_on_new_connection(context_id: u32): u32 { return 0; }
export function proxy_on_downstream_data(context_id: u32, size: u32, end: u32): u32 {
  return connections.has(context_id) ? <u32>connections.get(context_id).onDownstreamData(size, end != 0) : 0;
}
export function proxy_on_upstream_data(context_id: u32, size: u32, end: u32): u32 {
  return connections.has(context_id) ? <u32>connections.get(context_id).onUpstreamData(size, end != 0) : 0;
}
export function proxy_on_downstream_connection_close(context_id: u32, peer: u32): void {
  if (connections.has(context_id)) {
    connections.get(context_id).onDownstreamConnectionClose(<PeerTypeValues>peer);
    connections.delete(context_id);
  }
}
export function proxy_on_upstream_connection_close(context_id: u32, peer: u32): void {}
