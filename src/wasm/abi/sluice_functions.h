// Sluice's own foreign functions (reached through proxy_call_foreign_function), which Sluice's
// C++ SDK calls when a module starts. They only make crossings between the host and the module
// rarer; they never change what a plugin does. Another host (Envoy) answers NotFound, and the
// SDK then works as any SDK does. The SDK writes the same names and bits down on its side
// (sdk/cpp/include/sluice/sdk.h, sdk/cpp/src/dispatch.h); tests/sdk/sdk_native_test.cc checks
// that the two agree.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::wasm::sluice_functions {

// Args: two little-endian u64, the address and size of a buffer in module memory. From then
// on, a value the host returns (a header, a property, a buffer's bytes...) that fits is written
// there instead of into memory from the module's malloc, which on V8 costs a call into the
// module per value. The module must copy a result out of that buffer before its next host call,
// and must not free it. Size: at least kMinReturnBuffer bytes, all inside module memory; a size
// of 0 stops it. It may be set again, e.g. to a bigger buffer (see kRetriesBufferTooSmall).
inline constexpr std::string_view kSetReturnBuffer = "sluice_set_return_buffer";
inline constexpr uint64_t kMinReturnBuffer = 64;

// A module that exports a function of this name (never called) declares that, when
// proxy_get_property, proxy_get_header_map_value or proxy_call_foreign_function answers
// kBufferTooSmall, it sets a return buffer of at least the size the host wrote to the call's
// size out-param and calls again. Those can then run as leaf host functions (HostFunction::leaf:
// on V8, called straight from compiled code), which may not call the module's malloc. A foreign
// function's refused answer is kept until the same call comes again in the same callback, so
// the function runs once. Only such a module ever sees kBufferTooSmall; another host ignores the
// export.
inline constexpr std::string_view kRetriesBufferTooSmall = "sluice_retries_buffer_too_small";
inline constexpr uint32_t kBufferTooSmall = 1000;  // outside Proxy-Wasm's WasmResult values

// Reads several properties in one crossing (a telemetry report reads seven or more; on V8 each
// crossing costs more than reading the value). Args: u32 count, then count x u32 path size,
// then the paths back to back, each as proxy_get_property takes it (segments joined by NUL).
// Result: count x u32 value size, kNoProperty for a path proxy_get_property would refuse (not
// found, or any other status), then the values back to back. All u32 little-endian. At most
// kMaxBatchedProperties paths; a malformed request is BadArgument. Called from the current
// context, as proxy_get_property is.
inline constexpr std::string_view kGetProperties = "sluice_get_properties";
inline constexpr uint32_t kNoProperty = 0xffffffff;
inline constexpr uint32_t kMaxBatchedProperties = 64;

// Args: a little-endian u64 of DeclinedCallback bits. Called by a root context: its stream
// contexts (HTTP streams, TCP connections) do not implement these callbacks, and the host skips
// them as if the module did not export them (a skipped filter callback continues, a skipped
// on_done answers true). on_context_create and on_delete always run; kDeferDelete lets the host
// deliver on_delete later and batched (see kSetDeleteMailbox).
inline constexpr std::string_view kDeclineStreamCallbacks = "sluice_decline_stream_callbacks";

enum DeclinedCallback : uint32_t {
  kRequestHeaders = 1u << 0,
  kRequestBody = 1u << 1,
  kRequestTrailers = 1u << 2,
  kResponseHeaders = 1u << 3,
  kResponseBody = 1u << 4,
  kResponseTrailers = 1u << 5,
  kLog = 1u << 6,
  kDone = 1u << 7,
  kNewConnection = 1u << 8,
  kDownstreamData = 1u << 9,
  kUpstreamData = 1u << 10,
  kDownstreamConnectionClose = 1u << 11,
  kUpstreamConnectionClose = 1u << 12,
  kAllDeclinable = (1u << 13) - 1,
  // Not a skipped callback: the streams' on_delete only frees the module's object (the SDK's
  // default), so it may come up to one event-loop turn late, many streams in one call.
  kDeferDelete = 1u << 13,
};
// Args: two little-endian u64, the address and capacity (in u32 slots, 1 to
// kMaxDeleteMailbox) of an array in module memory; capacity 0 stops it. Where the module exports
// sluice_on_delete_batch, the host then ends the streams of a root that set kDeferDelete without
// calling proxy_on_delete: it collects their ids and, once per event-loop turn (and before the
// root's own on_done), writes up to `capacity` of them there and calls sluice_on_delete_batch
// (count), which must run proxy_on_delete's work for each, in order. Its on_log and on_done
// (when called) stay at the stream's end; a stream that ends with sluice_on_stream_end is not
// deferred (its on_delete shares a call already). BadArgument for a capacity out of range,
// InvalidMemoryAccess for an array outside module memory.
inline constexpr std::string_view kSetDeleteMailbox = "sluice_set_delete_mailbox";
inline constexpr uint64_t kMaxDeleteMailbox = 4096;

// Header edits a module defines once and has the host apply to a stream's response headers with
// no call into the module: a filter that sets the same response headers on every request (or
// answers a mesh peer with its metadata) otherwise pays a crossing per request for them.
// Args: u32 set id (0: a new set; else that set, replaced), u32 count, count x (u32 op, u32 name
// size, u32 value size), then each op's name and value back to back. Ops as the header-map
// functions': add, replace, remove (its value empty). Result: the set's id, a u32. An empty name,
// CR, LF or NUL in a name or value, an unknown op or set, more than kMaxHeaderEdits ops or more
// than kMaxHeaderEditSets sets is BadArgument. An edit the plugin's capability restrictions do
// not allow (its header-map function, or proxy_on_response_headers, where the module would make
// it) is InternalFailure, as that function would answer. Sets live as long as the VM.
inline constexpr std::string_view kDefineHeaderEdits = "sluice_define_header_edits";
enum HeaderEditOp : uint32_t { kHeaderAdd = 0, kHeaderReplace = 1, kHeaderRemove = 2 };
inline constexpr uint32_t kMaxHeaderEditSets = 256;
inline constexpr uint32_t kMaxHeaderEdits = 64;

// Args: u32 set id (0: none), u32 flags. From an HTTP stream's context before its response
// headers: when they reach this plugin's filter, the host applies the set (as the module's own
// calls would there: a hidden header is left alone) and then calls on_response_headers, or, with
// kSkipResponseHeadersCallback, does not call it for this stream; with
// kCallResponseHeadersCallback it calls it even if the root declined it (a module whose set was
// refused makes the edits itself). A later call replaces an earlier one. BadArgument outside a
// stream's request callbacks, for an unknown set or for both flags.
inline constexpr std::string_view kEditResponseHeaders = "sluice_edit_response_headers";
inline constexpr uint32_t kSkipResponseHeadersCallback = 1;
inline constexpr uint32_t kCallResponseHeadersCallback = 2;

// ---- Sluice's own exports --------------------------------------------------------------------
// A module built with Sluice's SDK exports these besides the standard callbacks (another host
// ignores them). Each does in one call into the module what two standard callbacks do in a row,
// and the host calls it only where it would otherwise have made exactly those two calls, in that
// order: the module sees the same events, with one crossing fewer.

// (context_id, root_context_id, num_headers, end_of_stream) -> i32: proxy_on_context_create,
// then proxy_on_request_headers' answer. The host defers an HTTP stream's on_context_create to
// its first callback (the module cannot tell: nothing reaches it in between); when that callback
// is on_request_headers, both go in this call.
inline constexpr std::string_view kOnStreamStart = "sluice_on_stream_start";
// (context_id): proxy_on_log, then proxy_on_delete. For a stream that is logged and whose
// on_done is not called (declined, or not exported).
inline constexpr std::string_view kOnStreamEnd = "sluice_on_stream_end";
// (count): proxy_on_delete for each of the first `count` ids in the delete mailbox, in order
// (see kSetDeleteMailbox). Unlike the two above it moves a callback: on_delete comes later than
// the stream's end, with no other callback of that stream in between.
inline constexpr std::string_view kOnDeleteBatch = "sluice_on_delete_batch";

inline bool is_sluice_function(std::string_view name) {
  return name == kSetReturnBuffer || name == kDeclineStreamCallbacks || name == kGetProperties ||
         name == kDefineHeaderEdits || name == kEditResponseHeaders || name == kSetDeleteMailbox;
}

}  // namespace sluice::wasm::sluice_functions
