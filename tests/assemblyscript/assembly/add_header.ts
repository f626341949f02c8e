// Sluice test filter (AssemblyScript SDK): the plugin configuration "name=value" names a response
// header to add; the upstream also sees a request header carrying the configured value.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  log, LogLevelValues,
} from "@solo-io/proxy-runtime";

class HeaderSetting {
  name: string = "x-as-header";
  value: string = "";
}

function parseSetting(config: string): HeaderSetting {
  const setting = new HeaderSetting();
  const eq = config.indexOf("=");
  if (eq > 0) {
    setting.name = config.substring(0, eq).trim();
    setting.value = config.substring(eq + 1).trim();
  } else {
    setting.value = config.trim();
  }
  return setting;
}

class AddHeaderPluginRoot extends RootContext {
  setting: HeaderSetting = new HeaderSetting();

  onConfigure(configuration_size: u32): bool {
    // The SDK reads buffer 7 into getConfiguration().
    const ok = super.onConfigure(configuration_size);
    this.setting = parseSetting(this.getConfiguration());
    log(LogLevelValues.info, "as_add_header configured: " + this.setting.name + "=" + this.setting.value);
    return ok;
  }

  createContext(context_id: u32): Context {
    return new AddHeaderStream(context_id, this);
  }
}

class AddHeaderStream extends Context {
  setting: HeaderSetting;

  constructor(context_id: u32, root: AddHeaderPluginRoot) {
    super(context_id, root);
    this.setting = root.setting;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-from-wasm", "as-" + this.setting.value);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add(this.setting.name, this.setting.value);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => new AddHeaderPluginRoot(context_id), "as_add_header");
