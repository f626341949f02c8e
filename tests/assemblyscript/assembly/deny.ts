// Sluice test filter (AssemblyScript SDK): the deny half of an auth filter. The configuration
// "header=expected" names a request header that must be present (and, if a value is given, equal
// to it); otherwise the plugin answers 403 itself and the upstream never sees the request.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  send_local_response, GrpcStatusValues, HeaderPair, Headers, log, LogLevelValues,
} from "@solo-io/proxy-runtime";

class DenyRoot extends RootContext {
  header: string = "x-as-token";
  expected: string = "";

  onConfigure(configuration_size: u32): bool {
    if (!super.onConfigure(configuration_size)) return false;
    const config = this.getConfiguration();
    const eq = config.indexOf("=");
    if (eq > 0) {
      this.header = config.substring(0, eq);
      this.expected = config.substring(eq + 1);
    } else if (config.length > 0) {
      this.header = config;
    }
    return true;
  }

  createContext(context_id: u32): Context {
    return new DenyStream(context_id, this);
  }
}

class DenyStream extends Context {
  header: string;
  expected: string;

  constructor(context_id: u32, root: DenyRoot) {
    super(context_id, root);
    this.header = root.header;
    this.expected = root.expected;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // get() gives "" when the host answers NotFound.
    const got = stream_context.headers.request.get(this.header);
    if (got.length > 0 && (this.expected.length == 0 || got == this.expected)) {
      stream_context.headers.request.remove(this.header);  // the upstream never sees the token
      return FilterHeadersStatusValues.Continue;
    }
    const reason = got.length == 0 ? "missing" : "wrong";
    log(LogLevelValues.warn, "as_deny: " + reason + " " + this.header);
    const extra: Headers = [];
    extra.push(new HeaderPair(String.UTF8.encode("x-as-denied"), String.UTF8.encode(reason)));
    send_local_response(403, "as denied " + reason, String.UTF8.encode("denied by assemblyscript\n"),
      extra, GrpcStatusValues.InvalidCode);
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32): RootContext => new DenyRoot(context_id), "as_deny");
