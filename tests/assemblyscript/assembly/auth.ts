// Sluice test filter (AssemblyScript SDK): an authorization filter that asks a service over
// proxy_http_call before letting a request through. Configuration: the cluster name of the
// service. For each request it calls GET /auth-check on that cluster with the request's
// Authorization header and pauses; a 200 lets the request continue (with the service's
// x-auth-user header added), any other answer gives the client 403, and no answer 503.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, BaseContext, registerRootContext, FilterHeadersStatusValues,
  stream_context, send_local_response, GrpcStatusValues, HeaderPair, Headers, log,
  LogLevelValues, WasmResultValues,
} from "@solo-io/proxy-runtime";

class AuthRoot extends RootContext {
  cluster: string = "auth";

  onConfigure(configuration_size: u32): bool {
    if (!super.onConfigure(configuration_size)) return false;
    const config = this.getConfiguration();
    if (config.length > 0) this.cluster = config;
    return true;
  }

  createContext(context_id: u32): Context {
    return new AuthStream(context_id, this);
  }
}

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

// The service's answer, with the paused stream as the effective context (the SDK switched).
function decide(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  if (headers == 0) {
    log(LogLevelValues.warn, "as_auth: no answer from the service");
    send_local_response(503, "as auth unavailable", String.UTF8.encode("auth unavailable\n"),
      [], GrpcStatusValues.InvalidCode);
    return;
  }
  const status = stream_context.headers.http_callback.get(":status");
  if (status != "200") {
    send_local_response(403, "as auth denied", String.UTF8.encode("denied by the auth service\n"),
      [], GrpcStatusValues.InvalidCode);
    return;
  }
  const user = stream_context.headers.http_callback.get("x-auth-user");
  stream_context.headers.request.replace("x-auth-user", user);
  origin.continueRequest();
}

class AuthStream extends Context {
  root: AuthRoot;

  constructor(context_id: u32, root: AuthRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const call: Headers = [];
    call.push(pair(":method", "GET"));
    call.push(pair(":path", "/auth-check"));
    call.push(pair(":authority", "auth"));
    const auth = stream_context.headers.request.get("authorization");
    if (auth.length > 0) call.push(pair("authorization", auth));
    const result = this.root.httpCall(this.root.cluster, call, new ArrayBuffer(0), [], 2000, this,
      decide);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.warn, "as_auth: http_call refused: " + result.toString());
      send_local_response(503, "as auth unavailable", String.UTF8.encode("auth unavailable\n"),
        [], GrpcStatusValues.InvalidCode);
    }
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32): RootContext => new AuthRoot(context_id), "as_auth");
