// typed_config @type URLs of the Envoy v3 config Sluice reads, and the well-known filter names
// used when typed_config is absent.
#pragma once

#include <string_view>

namespace sluice::config {

inline constexpr std::string_view kHcmType =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager";
inline constexpr std::string_view kHcmName = "envoy.filters.network.http_connection_manager";
inline constexpr std::string_view kTcpProxyType =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
inline constexpr std::string_view kRouterType =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
inline constexpr std::string_view kRouterName = "envoy.filters.http.router";
inline constexpr std::string_view kWasmType =
    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
inline constexpr std::string_view kWasmName = "envoy.filters.http.wasm";
inline constexpr std::string_view kNetworkWasmType =
    "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";
inline constexpr std::string_view kDownstreamTlsType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
inline constexpr std::string_view kUpstreamTlsType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
inline constexpr std::string_view kTlsInspectorName = "envoy.filters.listener.tls_inspector";
inline constexpr std::string_view kTlsInspectorType =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
inline constexpr std::string_view kWasmServiceType =
    "type.googleapis.com/envoy.extensions.wasm.v3.WasmService";

}  // namespace sluice::config
