// Proxy-Wasm's process-wide state: shared data (a key-value store with compare-and-swap) and
// shared queues. Both are scoped by vm_id and seen by every VM of that vm_id, on every worker
// and whichever plugin or runtime runs it.
//
// Lifetime: a VmSharedState lives as long as something holds it: every WasmInstance of the vm_id
// and every Plugin configured with it (so that what a plugin's canary writes at config load is
// still there when the workers start). Then its data and queues are dropped, as in
// proxy-wasm-cpp-host when the last VM of a vm_id goes away.
//
// Threads: any thread may call anything here. Shared data is split into shards, each with its own
// mutex, so workers touching different keys do not contend; a queue has one mutex. Nothing here
// calls into a VM: a queue notifies its consumer through a callback the host supplies, which
// posts the work to the consumer's own thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/stats.h"
#include "common/strings.h"
#include "wasm/wasm_result.h"

namespace sluice::wasm {

// Shared data of one vm_id. Every successful set gives the key a new cas from one process-wide
// counter (starting at 1, never 0), so a cas read with get() identifies one version of one key.
class SharedData {
 public:
  struct Value {
    std::string value;
    uint32_t cas = 0;
  };
  std::optional<Value> get(std::string_view key) const;
  // cas 0 writes unconditionally; any other cas must equal the key's current one, or nothing is
  // written (CasMismatch). A missing key is created whatever the cas (cpp-host's behaviour).
  WasmResult set(std::string_view key, std::string_view value, uint32_t cas);

 private:
  struct alignas(64) Shard {  // own cache line: shards of different keys do not interfere
    mutable std::mutex mu;
    std::unordered_map<std::string, Value, StringHash, std::equal_to<>> map;
  };
  Shard& shard_of(std::string_view key) const;

  static constexpr size_t kShards = 16;
  mutable std::array<Shard, kShards> shards_;
};

class SharedQueue;

// One notification on its way to a queue's consumer. It counts as pending until it is destroyed,
// whether it was delivered or dropped (consumer gone, its worker stopped).
class QueueNotification {
 public:
  explicit QueueNotification(std::shared_ptr<SharedQueue> queue);
  ~QueueNotification();
  QueueNotification(const QueueNotification&) = delete;
  QueueNotification& operator=(const QueueNotification&) = delete;
  uint32_t token() const;

 private:
  std::shared_ptr<SharedQueue> queue_;
};

// Called after an enqueue, on the enqueuing thread, with no lock held. The host's implementation
// posts proxy_on_queue_ready (holding the notification) to the consumer's thread.
using QueueNotifier =
    std::shared_ptr<const std::function<void(std::shared_ptr<QueueNotification>)>>;

// A bounded FIFO of byte strings. Past its capacity the oldest entry is dropped (and counted), so
// a consumer that stopped reading cannot make the process grow without bound. Notifications are
// bounded the same way: one per enqueue, except that at most `capacity` are pending at once. As
// the queue never holds more entries than that, a consumer that dequeues one entry per
// notification still drains every entry.
class SharedQueue : public std::enable_shared_from_this<SharedQueue> {
 public:
  static constexpr size_t kDefaultCapacity = 10000;

  SharedQueue(uint32_t token, std::string_view vm_id, std::string_view name, size_t capacity);
  uint32_t token() const { return token_; }

  // Always Ok: the value is queued and the consumer notified.
  void enqueue(std::string_view value);
  // Ok (the oldest value moved to *out) or Empty.
  WasmResult dequeue(std::string* out);
  // Re-registration: notifications go to `notifier` from now on (data stays).
  void set_notifier(QueueNotifier notifier);

  size_t size() const;
  uint64_t dropped() const { return dropped_.value(); }
  size_t pending_notifications() const { return pending_.load(std::memory_order_relaxed); }

 private:
  friend class QueueNotification;
  const uint32_t token_;
  const size_t capacity_;
  stats::Counter dropped_;  // wasm.shared_queue.<vm_id>.<name>.dropped
  mutable std::mutex mu_;
  std::deque<std::string> items_;
  QueueNotifier notifier_;
  std::atomic<size_t> pending_{0};  // notifications in flight, at most capacity_
};

class VmSharedState {
 public:
  // The state of `vm_id`, created on first use.
  static std::shared_ptr<VmSharedState> get(std::string_view vm_id);
  // The state of `vm_id` if something still holds it (proxy_resolve_shared_queue of another
  // vm_id), else nullptr.
  static std::shared_ptr<VmSharedState> find(std::string_view vm_id);

  explicit VmSharedState(std::string vm_id) : vm_id_(std::move(vm_id)) {}
  ~VmSharedState();
  const std::string& vm_id() const { return vm_id_; }

  SharedData& data() { return data_; }

  // Creates the queue `name` or, when it exists, re-targets its notifications (unless `notifier`
  // is null: then the current consumer keeps them); the token either way (global, never 0).
  // `capacity` applies to a new queue only.
  uint32_t register_queue(std::string_view name, QueueNotifier notifier,
                          size_t capacity = SharedQueue::kDefaultCapacity);
  std::optional<uint32_t> resolve_queue(std::string_view name) const;

 private:
  const std::string vm_id_;
  SharedData data_;
  mutable std::mutex queues_mu_;
  std::unordered_map<std::string, std::shared_ptr<SharedQueue>, StringHash, std::equal_to<>>
      queues_;
};

// The queue with this token, whatever its vm_id; nullptr when unknown or dropped with its state.
std::shared_ptr<SharedQueue> find_shared_queue(uint32_t token);

}  // namespace sluice::wasm
