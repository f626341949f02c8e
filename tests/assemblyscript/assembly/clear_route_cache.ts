// Sluice test filter (AssemblyScript SDK): calls the SDK's clear_route_cache(), which makes the
// module import env.proxy_clear_route_cache, an ABI 0.1.0 function, while it declares 0.2.0. A
// 0.2.x host must refuse to link it (the test expects a clear configuration error).
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
} from "@solo-io/proxy-runtime";
import { clear_route_cache } from "@solo-io/proxy-runtime/runtime";

class RouteCacheStream extends Context {
  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    clear_route_cache();
    return FilterHeadersStatusValues.Continue;
  }
}

class RouteCacheRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new RouteCacheStream(context_id, this);
  }
}

registerRootContext((context_id: u32): RootContext => new RouteCacheRoot(context_id), "as_clear_route_cache");
