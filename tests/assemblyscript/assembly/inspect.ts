// Sluice test filter (AssemblyScript SDK): reads what the host offers and reflects it back in
// response headers, so a test can see the SDK and the host agree on the ABI: request headers
// (one value and the whole map), properties (request path/method, plugin name and root id, the
// response code while logging), the clock, header replacement and logging at several levels.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  log, LogLevelValues,
} from "@solo-io/proxy-runtime";
import { get_property, get_current_time_nanoseconds } from "@solo-io/proxy-runtime/runtime";
import * as host from "@solo-io/proxy-runtime/imports";

function property(path: string): string {
  // The SDK traps (abort) unless the host answers Ok, so only ask for paths that exist.
  return String.UTF8.decode(get_property(path));
}

// The status the host gives for a path, without the SDK's check.
function propertyStatus(path: string): u32 {
  const p = String.UTF8.encode(path);
  const out = new ArrayBuffer(8);  // [ptr, len]
  const status = host.proxy_get_property(changetype<usize>(p), p.byteLength,
    changetype<usize>(out), changetype<usize>(out) + 4);
  return status;
}

class InspectRoot extends RootContext {
  onConfigure(configuration_size: u32): bool {
    const ok = super.onConfigure(configuration_size);
    log(LogLevelValues.info, "as_inspect configured: plugin_name=" + property("plugin_name") +
      " plugin_root_id=" + property("plugin_root_id") + " config=" + this.getConfiguration());
    return ok;
  }

  createContext(context_id: u32): Context {
    return new InspectStream(context_id, this);
  }
}

class InspectStream extends Context {
  path: string = "";
  method: string = "";
  agent: string = "";
  requestHeaderCount: i32 = 0;
  sawAuthority: bool = false;

  constructor(context_id: u32, root: InspectRoot) {
    super(context_id, root);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // Envoy's property paths are NUL-separated segments.
    this.path = property("request\0path");
    this.method = property("request\0method");
    this.agent = stream_context.headers.request.get("user-agent");
    const all = stream_context.headers.request.get_headers();
    this.requestHeaderCount = all.length;
    for (let i = 0; i < all.length; i++) {
      if (String.UTF8.decode(all[i].key) == ":authority") this.sawAuthority = true;
    }
    const before = stream_context.headers.request.get("x-added");
    if (before.length > 0) {
      stream_context.headers.request.replace("x-added", "as-replaced-" + before);
    }
    log(LogLevelValues.info, "as_inspect request " + this.method + " " + this.path +
      " headers=" + this.requestHeaderCount.toString() + " (callback saw " + headers.toString() + ")");
    log(LogLevelValues.debug, "as_inspect debug line");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const rs = stream_context.headers.response;
    rs.add("x-as-path", this.path);
    rs.add("x-as-method", this.method);
    rs.add("x-as-agent", this.agent);
    rs.add("x-as-request-headers", this.requestHeaderCount.toString());
    rs.add("x-as-authority-seen", this.sawAuthority ? "yes" : "no");
    rs.add("x-as-root-id", property("plugin_root_id"));
    rs.add("x-as-plugin-name", property("plugin_name"));
    rs.add("x-as-upstream-status", rs.get(":status"));
    rs.add("x-as-missing-header", "[" + rs.get("x-not-there") + "]");
    // A dotted path is one segment, which Envoy does not know: NotFound (1).
    rs.add("x-as-dotted-status", propertyStatus("request.path").toString());
    const now = get_current_time_nanoseconds();
    rs.add("x-as-clock", now > 1600000000000000000 ? "sane" : "bad:" + now.toString());
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    const code = get_property("response\0code");
    let value: i64 = -1;
    if (code.byteLength == 8) value = load<i64>(changetype<usize>(code));
    log(LogLevelValues.warn, "as_inspect log " + this.path + " code=" + value.toString());
  }
}

registerRootContext((context_id: u32): RootContext => new InspectRoot(context_id), "as_inspect");
