// Context bookkeeping and callback dispatch: the same code behind the .wasm exports and the
// null-runtime thunks.
#include "dispatch.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <string>

namespace sluice {
inline namespace SLUICE_SDK_NS {

namespace detail {

namespace {
// Function-local so registrations from other translation units' static initializers are safe.
std::map<std::string, Registration, std::less<>>& registry() {
  static std::map<std::string, Registration, std::less<>> r;
  return r;
}
}  // namespace

void register_factories(std::string_view root_id, Registration registration) {
  registry()[std::string(root_id)] = std::move(registration);
}

}  // namespace detail

namespace {

// Stands in for a root id no registration matches, so the VM fails loudly at start-up.
class UnknownRoot : public RootContext {
 public:
  using RootContext::RootContext;
  bool on_vm_start(size_t) override {
    log_error("sluice sdk: no context factory registered for root_id '{}'", root_id());
    return false;
  }
  bool on_configure(size_t) override {
    log_error("sluice sdk: no context factory registered for root_id '{}'", root_id());
    return false;
  }
};

const detail::Registration* find_registration(std::string_view root_id) {
  auto& r = detail::registry();
  if (auto it = r.find(root_id); it != r.end()) return &it->second;
  // Envoy configurations often leave root_id empty: a single extension is unambiguous.
  if (r.size() == 1) return &r.begin()->second;
  return nullptr;
}

RootContext* find_root(VmState& vm, uint32_t id) {
  auto* root = vm.roots.find(id);
  return root ? root->get() : nullptr;
}

HttpContext* find_stream(VmState& vm, uint32_t id) {
  auto* stream = vm.streams.find(id);
  return stream ? stream->get() : nullptr;
}

NetworkContext* find_connection(VmState& vm, uint32_t id) {
  auto* connection = vm.connections.find(id);
  return connection ? connection->get() : nullptr;
}

// A callout's callback is for a stream or connection that may have ended meanwhile.
bool stream_alive(VmState& vm, uint32_t id) {
  return find_stream(vm, id) != nullptr || find_connection(vm, id) != nullptr;
}

// The context of `id` in `contexts` (the VM's HTTP streams or TCP connections); an undecided
// one (a root that makes both kinds) is made here, by `factories`, as the callback's kind.
template <typename T, typename Factory>
T* context_for_event(VmState& vm, uint32_t id, IdMap<std::unique_ptr<T>>& contexts,
                     IdMap<const Factory*>& factories) {
  if (auto* context = contexts.find(id)) return context->get();
  auto u = vm.undecided.find(id);
  if (u == vm.undecided.end()) return nullptr;
  const uint32_t root_id = u->second;
  vm.undecided.erase(u);
  RootContext* root = find_root(vm, root_id);
  const Factory* const* f = factories.find(root_id);
  if (!root || !f) return nullptr;
  return contexts.put(id, (**f)(id, root)).get();
}

HttpContext* stream_for_event(VmState& vm, uint32_t id) {
  return context_for_event(vm, id, vm.streams, vm.http_factories);
}

NetworkContext* connection_for_event(VmState& vm, uint32_t id) {
  return context_for_event(vm, id, vm.connections, vm.network_factories);
}

// A Sluice function whose answer does not matter: without it (another host, or a capability
// restriction) everything works as before, only with more calls. True if the host took it.
bool call_sluice_function(std::string_view name, std::initializer_list<uint64_t> args) {
  std::string bytes;
  for (uint64_t v : args) {
    for (int b = 0; b < 8; ++b) bytes.push_back(static_cast<char>(v >> (8 * b)));
  }
  const char* result = nullptr;
  size_t size = 0;
  if (proxy_call_foreign_function(name.data(), name.size(), bytes.data(), bytes.size(), &result,
                                  &size) != 0) {
    return false;
  }
  release_host_buffer(result);
  return true;
}

bool offer_return_buffer(VmState& vm) {
  vm.return_buffer_offered = true;
  const bool taken = call_sluice_function(
      kSetReturnBuffer,
      {reinterpret_cast<uintptr_t>(vm.return_buffer.data()), vm.return_buffer.size()});
  if (taken) vm.host_is_sluice = true;
  return taken;
}

}  // namespace

bool grow_return_buffer(size_t size) {
  VmState* vm = current_vm_state();
  if (!vm || size == 0) return false;
  size_t grown = vm->return_buffer.size();
  while (grown < size) grown *= 2;
  if (grown > vm->return_buffer.size()) vm->return_buffer.assign(grown, '\0');
  if (grown > kMaxKeptReturnBuffer) vm->return_buffer_oversized = true;
  return offer_return_buffer(*vm);
}

void shrink_return_buffer(VmState& vm) {
  vm.return_buffer_oversized = false;
  // The host may write to the old buffer until it has the new one: freed only after.
  std::vector<char> oversized = std::move(vm.return_buffer);
  vm.return_buffer = std::vector<char>(kInitialReturnBuffer);
  offer_return_buffer(vm);
}

void release_host_buffer(const char* data) {
  if (!data) return;
  const VmState* vm = current_vm_state();
  if (vm && data == vm->return_buffer.data()) return;
  ::free(const_cast<char*>(data));
}

void Dispatch::on_context_create(VmState& vm, uint32_t id, uint32_t parent_id) {
  if (parent_id == 0) {
    if (!vm.return_buffer_offered && offer_return_buffer(vm)) {
      call_sluice_function(
          kSetDeleteMailbox,
          {reinterpret_cast<uintptr_t>(vm.delete_mailbox.data()), vm.delete_mailbox.size()});
    }
    std::string root_id = get_property_string({"plugin_root_id"}).value_or("");
    const detail::Registration* reg = find_registration(root_id);
    std::unique_ptr<RootContext> root;
    if (reg) {
      if (reg->declined_callbacks != 0) {
        call_sluice_function(kDeclineStreamCallbacks, {reg->declined_callbacks});
      }
      root = reg->root(id, root_id);
      if (reg->http) vm.http_factories.put(id, &reg->http);
      if (reg->network) vm.network_factories.put(id, &reg->network);
    } else {
      root = std::make_unique<UnknownRoot>(id, root_id);
    }
    vm.roots.put(id, std::move(root));
    return;
  }
  RootContext* root = find_root(vm, parent_id);
  if (!root) return;  // callbacks on `id` are then no-ops
  const detail::HttpFactory* const* http = vm.http_factories.find(parent_id);
  const detail::NetworkFactory* const* network = vm.network_factories.find(parent_id);
  if (http && network) {
    vm.undecided[id] = parent_id;
    return;
  }
  if (http) {
    vm.streams.put(id, (**http)(id, root));
  } else if (network) {
    vm.connections.put(id, (**network)(id, root));
  }
}

uint32_t Dispatch::on_vm_start(VmState& vm, uint32_t root_id, uint32_t config_size) {
  RootContext* root = find_root(vm, root_id);
  return root ? root->on_vm_start(config_size) : 1;
}

uint32_t Dispatch::on_configure(VmState& vm, uint32_t root_id, uint32_t config_size) {
  RootContext* root = find_root(vm, root_id);
  return root ? root->on_configure(config_size) : 1;
}

void Dispatch::on_tick(VmState& vm, uint32_t root_id) {
  if (RootContext* root = find_root(vm, root_id)) root->on_tick();
}

void Dispatch::on_queue_ready(VmState& vm, uint32_t root_id, uint32_t token) {
  if (RootContext* root = find_root(vm, root_id)) root->on_queue_ready(token);
}

void Dispatch::on_foreign_function(VmState& vm, uint32_t root_id, uint32_t function_id,
                                   uint32_t args_size) {
  if (RootContext* root = find_root(vm, root_id)) root->on_foreign_function(function_id, args_size);
}

void Dispatch::on_http_call_response(VmState& vm, uint32_t root_id, uint32_t token,
                                     uint32_t num_headers, uint32_t body_size,
                                     uint32_t num_trailers) {
  RootContext* root = find_root(vm, root_id);
  if (!root) return;
  auto it = root->http_calls_.find(token);
  if (it == root->http_calls_.end()) return;
  // Taken out first: the callback may start another call (and rehash the map).
  RootContext::PendingCall call = std::move(it->second);
  root->http_calls_.erase(it);
  if (call.stream_id != 0) {
    if (!stream_alive(vm, call.stream_id)) return;                 // the stream ended meanwhile
    if (proxy_set_effective_context(call.stream_id) != 0) return;  // ended, delete to come
  }
  HttpCallResponse response{token, num_headers, body_size, num_trailers};
  if (call.callback) call.callback(response);
}

namespace {

std::string status_message() {
  uint32_t code = 0;
  const char* msg = nullptr;
  size_t len = 0;
  if (proxy_get_status(&code, &msg, &len) != 0 || !msg) return {};
  std::string out(msg, len);
  release_host_buffer(msg);
  return out;
}

}  // namespace

// A stream handler's event, with the handler deleted afterwards if it cancelled itself.
template <typename Event>
void Dispatch::grpc_stream_event(RootContext& root, uint32_t token, Event&& event) {
  auto it = root.grpc_streams_.find(token);
  if (it == root.grpc_streams_.end()) return;
  GrpcStreamHandler* h = it->second.get();
  h->in_event_ = true;
  event(*h);
  h->in_event_ = false;
  if (h->cancelled_) root.grpc_streams_.erase(token);
}

void Dispatch::on_grpc_receive_initial_metadata(VmState& vm, uint32_t root_id, uint32_t token,
                                                uint32_t num_elements) {
  RootContext* root = find_root(vm, root_id);
  if (!root) return;
  grpc_stream_event(*root, token,
                    [&](GrpcStreamHandler& h) { h.on_initial_metadata(num_elements); });
}

void Dispatch::on_grpc_receive(VmState& vm, uint32_t root_id, uint32_t token,
                               uint32_t message_size) {
  RootContext* root = find_root(vm, root_id);
  if (!root) return;
  auto call = root->grpc_calls_.find(token);
  if (call != root->grpc_calls_.end()) {
    // A unary call's answer: its success.
    RootContext::PendingGrpcCall pending = std::move(call->second);
    root->grpc_calls_.erase(call);
    if (pending.stream_id != 0) {
      if (!stream_alive(vm, pending.stream_id)) return;  // the stream ended meanwhile
      if (proxy_set_effective_context(pending.stream_id) != 0) return;  // ended, delete to come
    }
    GrpcCallResult result;
    result.token = token;
    result.response = grpc_receive_buffer().get(0, message_size);
    if (pending.callback) pending.callback(result);
    return;
  }
  const std::string message = grpc_receive_buffer().get(0, message_size);
  grpc_stream_event(*root, token, [&](GrpcStreamHandler& h) { h.on_message(message); });
}

void Dispatch::on_grpc_receive_trailing_metadata(VmState& vm, uint32_t root_id, uint32_t token,
                                                 uint32_t num_elements) {
  RootContext* root = find_root(vm, root_id);
  if (!root) return;
  grpc_stream_event(*root, token,
                    [&](GrpcStreamHandler& h) { h.on_trailing_metadata(num_elements); });
}

void Dispatch::on_grpc_close(VmState& vm, uint32_t root_id, uint32_t token, uint32_t status) {
  RootContext* root = find_root(vm, root_id);
  if (!root) return;
  const auto code = static_cast<GrpcStatus>(static_cast<int32_t>(status));
  auto call = root->grpc_calls_.find(token);
  if (call != root->grpc_calls_.end()) {
    RootContext::PendingGrpcCall pending = std::move(call->second);
    root->grpc_calls_.erase(call);
    GrpcCallResult result;
    result.token = token;
    result.status = code == GrpcStatus::Ok ? GrpcStatus::Internal : code;  // Ok without an answer
    result.status_message = status_message();
    if (pending.stream_id != 0) {
      if (!stream_alive(vm, pending.stream_id)) return;
      if (proxy_set_effective_context(pending.stream_id) != 0) return;  // ended, delete to come
    }
    if (pending.callback) pending.callback(result);
    return;
  }
  auto it = root->grpc_streams_.find(token);
  if (it == root->grpc_streams_.end()) return;
  // Out of the map first: the handler is deleted after its last event, whatever it does in it.
  std::unique_ptr<GrpcStreamHandler> h = std::move(it->second);
  root->grpc_streams_.erase(it);
  h->in_event_ = true;
  h->on_close(code, status_message());
}

uint32_t Dispatch::on_request_headers(VmState& vm, uint32_t id, uint32_t num_headers,
                                      uint32_t end_of_stream) {
  HttpContext* s = stream_for_event(vm, id);
  return s ? static_cast<uint32_t>(s->on_request_headers(num_headers, end_of_stream != 0)) : 0;
}

uint32_t Dispatch::on_request_body(VmState& vm, uint32_t id, uint32_t body_size,
                                   uint32_t end_of_stream) {
  HttpContext* s = stream_for_event(vm, id);
  return s ? static_cast<uint32_t>(s->on_request_body(body_size, end_of_stream != 0)) : 0;
}

uint32_t Dispatch::on_request_trailers(VmState& vm, uint32_t id, uint32_t num_trailers) {
  HttpContext* s = stream_for_event(vm, id);
  return s ? static_cast<uint32_t>(s->on_request_trailers(num_trailers)) : 0;
}

uint32_t Dispatch::on_response_headers(VmState& vm, uint32_t id, uint32_t num_headers,
                                       uint32_t end_of_stream) {
  HttpContext* s = stream_for_event(vm, id);
  if (!s) return 0;
  // edit_response_headers on a host that did not take them (or did not skip the callback).
  if (s->sdk_response_edits_) s->sdk_response_edits_->apply_to(response_headers());
  if (s->skip_response_headers_) return static_cast<uint32_t>(FilterHeadersStatus::Continue);
  return static_cast<uint32_t>(s->on_response_headers(num_headers, end_of_stream != 0));
}

uint32_t Dispatch::on_response_body(VmState& vm, uint32_t id, uint32_t body_size,
                                    uint32_t end_of_stream) {
  HttpContext* s = stream_for_event(vm, id);
  return s ? static_cast<uint32_t>(s->on_response_body(body_size, end_of_stream != 0)) : 0;
}

uint32_t Dispatch::on_response_trailers(VmState& vm, uint32_t id, uint32_t num_trailers) {
  HttpContext* s = stream_for_event(vm, id);
  return s ? static_cast<uint32_t>(s->on_response_trailers(num_trailers)) : 0;
}

uint32_t Dispatch::on_new_connection(VmState& vm, uint32_t id) {
  NetworkContext* c = connection_for_event(vm, id);
  return c ? static_cast<uint32_t>(c->on_new_connection()) : 0;
}

uint32_t Dispatch::on_downstream_data(VmState& vm, uint32_t id, uint32_t data_size,
                                      uint32_t end_of_stream) {
  NetworkContext* c = connection_for_event(vm, id);
  return c ? static_cast<uint32_t>(c->on_downstream_data(data_size, end_of_stream != 0)) : 0;
}

uint32_t Dispatch::on_upstream_data(VmState& vm, uint32_t id, uint32_t data_size,
                                    uint32_t end_of_stream) {
  NetworkContext* c = connection_for_event(vm, id);
  return c ? static_cast<uint32_t>(c->on_upstream_data(data_size, end_of_stream != 0)) : 0;
}

void Dispatch::on_downstream_connection_close(VmState& vm, uint32_t id, uint32_t peer_type) {
  if (NetworkContext* c = connection_for_event(vm, id)) {
    c->on_downstream_connection_close(static_cast<PeerType>(peer_type));
  }
}

void Dispatch::on_upstream_connection_close(VmState& vm, uint32_t id, uint32_t peer_type) {
  if (NetworkContext* c = connection_for_event(vm, id)) {
    c->on_upstream_connection_close(static_cast<PeerType>(peer_type));
  }
}

uint32_t Dispatch::on_done(VmState& vm, uint32_t id) {
  if (HttpContext* s = find_stream(vm, id)) {
    s->on_done();
    return 1;
  }
  if (NetworkContext* c = find_connection(vm, id)) {
    c->on_done();
    return 1;
  }
  if (RootContext* root = find_root(vm, id)) return root->on_done() ? 1 : 0;
  return 1;
}

void Dispatch::on_log(VmState& vm, uint32_t id) {
  if (HttpContext* s = find_stream(vm, id)) s->on_log();
  if (NetworkContext* c = find_connection(vm, id)) c->on_log();
}

uint32_t Dispatch::on_stream_start(VmState& vm, uint32_t id, uint32_t root_id, uint32_t num_headers,
                                   uint32_t end_of_stream) {
  // The host starts only HTTP streams this way, so a root that makes HTTP streams gets its
  // stream made at once: no undecided step (a root that makes both kinds), no second lookup.
  RootContext* root = find_root(vm, root_id);
  const detail::HttpFactory* const* f = root ? vm.http_factories.find(root_id) : nullptr;
  if (!f) {  // as the two callbacks it stands for
    on_context_create(vm, id, root_id);
    return on_request_headers(vm, id, num_headers, end_of_stream);
  }
  HttpContext* s = vm.streams.put(id, (**f)(id, root)).get();
  return static_cast<uint32_t>(s->on_request_headers(num_headers, end_of_stream != 0));
}

void Dispatch::on_stream_end(VmState& vm, uint32_t id) {
  if (HttpContext* s = find_stream(vm, id)) {  // the usual case: one lookup for both callbacks
    s->on_log();
    s->on_delete();
    vm.streams.take(id);  // by key: the callbacks may have touched the map
    return;
  }
  on_log(vm, id);
  on_delete(vm, id);
}

void Dispatch::on_delete_batch(VmState& vm, uint32_t count) {
  const size_t n = std::min<size_t>(count, vm.delete_mailbox.size());
  for (size_t i = 0; i < n; ++i) on_delete(vm, vm.delete_mailbox[i]);
}

void Dispatch::on_delete(VmState& vm, uint32_t id) {
  vm.undecided.erase(id);  // a context no callback ever reached
  if (HttpContext* s = find_stream(vm, id)) {
    s->on_delete();
    vm.streams.take(id);  // by key: on_delete may have touched the map
    return;
  }
  if (NetworkContext* c = find_connection(vm, id)) {
    c->on_delete();
    vm.connections.take(id);
    return;
  }
  if (RootContext* root = find_root(vm, id)) {
    root->on_delete();
    vm.roots.take(id);
    vm.http_factories.take(id);
    vm.network_factories.take(id);
  }
}

}  // namespace SLUICE_SDK_NS
}  // namespace sluice
