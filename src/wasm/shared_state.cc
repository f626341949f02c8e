#include "wasm/shared_state.h"

#include <atomic>

#include "common/strings.h"

namespace sluice::wasm {

namespace {

uint32_t next_cas() {
  static std::atomic<uint32_t> counter{1};
  uint32_t cas = counter.fetch_add(1, std::memory_order_relaxed);
  while (cas == 0) cas = counter.fetch_add(1, std::memory_order_relaxed);  // wrapped: skip 0
  return cas;
}

// vm_id -> state, weakly: the instances and plugins own the states.
struct StateRegistry {
  std::mutex mu;
  std::unordered_map<std::string, std::weak_ptr<VmSharedState>, StringHash, std::equal_to<>>
      by_vm_id;
};
StateRegistry& states() {
  static auto* r = new StateRegistry();  // never destroyed: states may die after main returns
  return *r;
}

// token -> queue, weakly: a queue belongs to its vm_id's state.
struct QueueRegistry {
  std::mutex mu;
  uint32_t next_token = 1;
  std::unordered_map<uint32_t, std::weak_ptr<SharedQueue>> by_token;
};
QueueRegistry& queues() {
  static auto* r = new QueueRegistry();
  return *r;
}

// Stat names are one line of text in /stats: control characters would break it.
std::string stat_safe(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  return out;
}

}  // namespace

// ---- shared data -------------------------------------------------------------------------------

SharedData::Shard& SharedData::shard_of(std::string_view key) const {
  // The high bits pick the shard; the map inside uses the whole hash for its buckets.
  return shards_[(StringHash{}(key) >> 32) % kShards];
}

std::optional<SharedData::Value> SharedData::get(std::string_view key) const {
  Shard& s = shard_of(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return std::nullopt;
  return it->second;
}

WasmResult SharedData::set(std::string_view key, std::string_view value, uint32_t cas) {
  Shard& s = shard_of(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    s.map.emplace(std::string(key), Value{std::string(value), next_cas()});
    return WasmResult::Ok;
  }
  if (cas != 0 && cas != it->second.cas) return WasmResult::CasMismatch;
  it->second.value.assign(value);
  it->second.cas = next_cas();
  return WasmResult::Ok;
}

// ---- queues ------------------------------------------------------------------------------------

SharedQueue::SharedQueue(uint32_t token, std::string_view vm_id, std::string_view name,
                         size_t capacity)
    : token_(token), capacity_(capacity) {
  dropped_ = stats::Store::instance().counter(stats::MetricName{
      str_cat("wasm.shared_queue.", stat_safe(vm_id), ".", stat_safe(name), ".dropped"),
      "wasm.shared_queue.dropped",
      {{"vm_id", std::string(vm_id)}, {"queue", std::string(name)}}});
}

QueueNotification::QueueNotification(std::shared_ptr<SharedQueue> queue)
    : queue_(std::move(queue)) {}

QueueNotification::~QueueNotification() {
  queue_->pending_.fetch_sub(1, std::memory_order_relaxed);
}

uint32_t QueueNotification::token() const { return queue_->token(); }

void SharedQueue::enqueue(std::string_view value) {
  QueueNotifier notify;
  {
    std::lock_guard lock(mu_);
    if (items_.size() >= capacity_) {
      items_.pop_front();
      if (dropped_.valid()) dropped_.inc();
    }
    items_.emplace_back(value);
    notify = notifier_;
  }
  if (!notify || !*notify) return;
  // Enough notifications in flight already to dequeue every entry the queue can hold.
  size_t pending = pending_.load(std::memory_order_relaxed);
  do {
    if (pending >= capacity_) return;
  } while (!pending_.compare_exchange_weak(pending, pending + 1, std::memory_order_relaxed));
  // Outside the lock: the notifier posts to another thread's loop (with its own lock).
  (*notify)(std::make_shared<QueueNotification>(shared_from_this()));
}

WasmResult SharedQueue::dequeue(std::string* out) {
  std::lock_guard lock(mu_);
  if (items_.empty()) return WasmResult::Empty;
  *out = std::move(items_.front());
  items_.pop_front();
  return WasmResult::Ok;
}

void SharedQueue::set_notifier(QueueNotifier notifier) {
  std::lock_guard lock(mu_);
  notifier_ = std::move(notifier);
}

size_t SharedQueue::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

std::shared_ptr<SharedQueue> find_shared_queue(uint32_t token) {
  QueueRegistry& r = queues();
  std::lock_guard lock(r.mu);
  auto it = r.by_token.find(token);
  if (it == r.by_token.end()) return nullptr;
  return it->second.lock();
}

// ---- per-vm_id state ---------------------------------------------------------------------------

std::shared_ptr<VmSharedState> VmSharedState::get(std::string_view vm_id) {
  StateRegistry& r = states();
  std::lock_guard lock(r.mu);
  auto it = r.by_vm_id.find(vm_id);
  if (it == r.by_vm_id.end())
    it = r.by_vm_id.emplace(std::string(vm_id), std::weak_ptr<VmSharedState>()).first;
  std::weak_ptr<VmSharedState>& slot = it->second;
  std::shared_ptr<VmSharedState> state = slot.lock();
  if (!state) {
    state = std::make_shared<VmSharedState>(std::string(vm_id));
    slot = state;
  }
  return state;
}

std::shared_ptr<VmSharedState> VmSharedState::find(std::string_view vm_id) {
  StateRegistry& r = states();
  std::lock_guard lock(r.mu);
  auto it = r.by_vm_id.find(vm_id);
  return it == r.by_vm_id.end() ? nullptr : it->second.lock();
}

VmSharedState::~VmSharedState() {
  // Forget this state's queue tokens and its registry entry (unless a new state of the same
  // vm_id took it meanwhile).
  {
    QueueRegistry& q = queues();
    std::lock_guard lock(q.mu);
    for (const auto& [name, queue] : queues_) q.by_token.erase(queue->token());
  }
  StateRegistry& r = states();
  std::lock_guard lock(r.mu);
  auto it = r.by_vm_id.find(vm_id_);
  if (it != r.by_vm_id.end() && it->second.expired()) r.by_vm_id.erase(it);
}

uint32_t VmSharedState::register_queue(std::string_view name, QueueNotifier notifier,
                                       size_t capacity) {
  std::lock_guard lock(queues_mu_);
  auto it = queues_.find(name);
  if (it != queues_.end()) {
    // A registration that cannot be notified (a canary, on the main thread) must not take the
    // notifications away from a consumer that can.
    if (notifier) it->second->set_notifier(std::move(notifier));
    return it->second->token();
  }
  QueueRegistry& q = queues();
  std::shared_ptr<SharedQueue> queue;
  {
    std::lock_guard registry_lock(q.mu);
    uint32_t token = q.next_token++;
    if (token == 0) token = q.next_token++;  // wrapped: tokens are never 0
    queue = std::make_shared<SharedQueue>(token, vm_id_, name, capacity);
    q.by_token[token] = queue;
  }
  queue->set_notifier(std::move(notifier));
  queues_.emplace(std::string(name), queue);
  return queue->token();
}

std::optional<uint32_t> VmSharedState::resolve_queue(std::string_view name) const {
  std::lock_guard lock(queues_mu_);
  auto it = queues_.find(name);
  if (it == queues_.end()) return std::nullopt;
  return it->second->token();
}

}  // namespace sluice::wasm
