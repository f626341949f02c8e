#include "common/stats.h"

#include <re2/re2.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/strings.h"

namespace sluice::stats {
namespace {

constexpr uint32_t kChunkBits = 10;
constexpr uint32_t kChunkSize = 1u << kChunkBits;
constexpr uint32_t kMaxChunks = 4096;  // 4M slots

struct Chunk {
  std::atomic<int64_t> slots[kChunkSize] = {};
};

// One per thread that ever touched a metric. Never freed: a thread's counts stay part of the
// totals. Blocks form a list that only grows at its head, so a scrape (and a plugin's
// proxy_get_metric on a request path) walks it without a lock.
struct ThreadBlock {
  std::atomic<Chunk*> chunks[kMaxChunks] = {};
  ThreadBlock* next = nullptr;  // set once, before the block is published
};

std::atomic<ThreadBlock*> g_blocks{nullptr};

ThreadBlock* this_thread_block() {
  thread_local ThreadBlock* block = [] {
    auto* b = new ThreadBlock();
    b->next = g_blocks.load(std::memory_order_relaxed);
    while (!g_blocks.compare_exchange_weak(b->next, b, std::memory_order_release,
                                           std::memory_order_relaxed)) {
    }
    return b;
  }();
  return block;
}

// Slots wrap around instead of overflowing: a plugin may add any u64 to a counter (or record it in
// a histogram's sum), and signed overflow would be undefined.
int64_t wrapping_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

void add(uint32_t slot, int64_t n) {
  if (slot == ~0u) return;  // a default-constructed handle (never defined) counts nothing
  std::atomic<int64_t>* s = Store::slot_for_this_thread(slot);
  // Only this thread writes the slot: a plain load+store is enough, no locked instruction.
  s->store(wrapping_add(s->load(std::memory_order_relaxed), n), std::memory_order_relaxed);
}

// Prometheus metric names are [a-zA-Z_:][a-zA-Z0-9_:]*. Envoy's names get the "envoy_" prefix;
// plugin metrics keep the name the plugin gave (as in Envoy), so a leading digit is escaped.
std::string prometheus_name(std::string_view base) {
  std::string out;
  if (base.starts_with(kWasmCustomPrefix)) {
    base.remove_prefix(kWasmCustomPrefix.size());
    if (base.empty() || (base[0] >= '0' && base[0] <= '9')) out.push_back('_');
  } else if (base.starts_with("sluice.")) {
    // Sluice's own series (sluice_wasm_...): no Envoy prefix.
  } else {
    out = "envoy_";
  }
  for (char c : base) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string labels(const Tags& tags, std::string_view extra_key = {}, std::string_view extra = {}) {
  if (tags.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : tags) {
    if (!first) out += ",";
    first = false;
    str_append(&out, k, "=\"", escape_label(v), "\"");
  }
  if (!extra_key.empty()) {
    if (!first) out += ",";
    str_append(&out, extra_key, "=\"", extra, "\"");
  }
  out += "}";
  return out;
}

std::string format_bound(double b) {
  std::string s = str_cat(b);
  return s;
}

}  // namespace

std::atomic<int64_t>* Store::slot_for_this_thread(uint32_t slot) {
  ThreadBlock* block = this_thread_block();
  std::atomic<Chunk*>& chunk_ref = block->chunks[slot >> kChunkBits];
  Chunk* chunk = chunk_ref.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    chunk = new Chunk();
    chunk_ref.store(chunk, std::memory_order_release);
  }
  return &chunk->slots[slot & (kChunkSize - 1)];
}

int64_t Store::sum_slot(uint32_t slot) const {
  int64_t total = 0;
  for (ThreadBlock* b = g_blocks.load(std::memory_order_acquire); b; b = b->next) {
    Chunk* c = b->chunks[slot >> kChunkBits].load(std::memory_order_acquire);
    if (!c) continue;
    total = wrapping_add(total, c->slots[slot & (kChunkSize - 1)].load(std::memory_order_relaxed));
  }
  return total;
}

void Counter::inc(uint64_t n) const { add(slot_, static_cast<int64_t>(n)); }
uint64_t Counter::value() const { return static_cast<uint64_t>(Store::instance().sum_slot(slot_)); }

void Gauge::inc(int64_t n) const { add(slot_, n); }
void Gauge::set(int64_t v) const {
  // The calling thread's slot absorbs the difference so the cross-thread sum becomes v.
  add(slot_, v - value());
}
int64_t Gauge::value() const { return Store::instance().sum_slot(slot_); }

void Histogram::record(uint64_t value) const {
  const auto& b = *bounds_;
  const auto it = std::lower_bound(b.begin(), b.end(), static_cast<double>(value));
  const uint32_t bucket = static_cast<uint32_t>(it - b.begin());  // == size() means +Inf
  const uint32_t n = static_cast<uint32_t>(b.size());
  add(slot_ + bucket, 1);
  add(slot_ + n + 1, static_cast<int64_t>(value));  // sum
  add(slot_ + n + 2, 1);                            // count
}

const std::vector<double>& default_buckets() {
  static const std::vector<double> kBuckets = {0.5,   1,      5,      10,      25,     50,    100,
                                               250,   500,    1000,   2500,    5000,   10000, 30000,
                                               60000, 300000, 600000, 1800000, 3600000};
  return kBuckets;
}

Store& Store::instance() {
  static Store* store = new Store();
  return *store;
}

Store::Metric* Store::define(MetricName&& name, MetricType type, const std::vector<double>* bounds,
                             bool shared_cell) {
  std::lock_guard lock(mu_);
  for (const auto& m : metrics_) {
    if (m->type == type && m->name.dotted == name.dotted) {
      return (m->cell != nullptr) == shared_cell ? m.get() : nullptr;
    }
  }
  const uint32_t width = bounds ? static_cast<uint32_t>(bounds->size()) + 3 : shared_cell ? 0 : 1;
  if (next_slot_ + width > kMaxChunks * kChunkSize) return nullptr;  // slots used up
  auto m = std::make_unique<Metric>();
  apply_tag_specifiers(specifiers_, name);
  m->name = std::move(name);
  m->type = type;
  m->slot = next_slot_;
  if (bounds) m->bounds = std::make_unique<std::vector<double>>(*bounds);
  if (shared_cell) m->cell = std::make_unique<std::atomic<int64_t>>(0);
  next_slot_ += width;
  metrics_.push_back(std::move(m));
  return metrics_.back().get();
}

void Store::set_tag_specifiers(std::vector<TagSpecifier> specifiers) {
  std::lock_guard lock(mu_);
  specifiers_ = std::move(specifiers);
}

void apply_tag_specifiers(const std::vector<TagSpecifier>& specifiers, MetricName& name) {
  for (const TagSpecifier& spec : specifiers) {
    const bool taken = std::any_of(name.tags.begin(), name.tags.end(),
                                   [&](const auto& tag) { return tag.first == spec.name; });
    if (taken) continue;
    if (!spec.regex) {
      name.tags.emplace_back(spec.name, spec.fixed_value);
      continue;
    }
    // Plugin metrics are matched without the hidden namespace, as users write their names.
    const bool wasm = name.base.starts_with(kWasmCustomPrefix);
    const std::string subject = wasm ? name.base.substr(kWasmCustomPrefix.size()) : name.base;
    const int groups = std::min(spec.regex->NumberOfCapturingGroups(), 2);
    re2::StringPiece match[3];
    if (groups < 1 ||
        !spec.regex->Match(subject, 0, subject.size(), re2::RE2::UNANCHORED, match, groups + 1)) {
      continue;
    }
    const re2::StringPiece removed = match[1];
    const re2::StringPiece value = groups == 2 ? match[2] : match[1];
    name.tags.emplace_back(spec.name, std::string(value.data(), value.size()));
    if (removed.data() == nullptr) continue;
    const size_t at = static_cast<size_t>(removed.data() - subject.data());
    std::string base = subject;
    base.erase(at, removed.size());
    name.base = wasm ? str_cat(kWasmCustomPrefix, base) : base;
  }
}

Counter Store::counter(MetricName name) {
  const Metric* m = define(std::move(name), MetricType::Counter, nullptr, false);
  return m ? Counter(m->slot) : Counter();
}

Gauge Store::gauge(MetricName name) {
  const Metric* m = define(std::move(name), MetricType::Gauge, nullptr, false);
  return m ? Gauge(m->slot) : Gauge();
}

SharedGauge Store::shared_gauge(MetricName name) {
  const Metric* m = define(std::move(name), MetricType::Gauge, nullptr, true);
  return m ? SharedGauge(m->cell.get()) : SharedGauge();
}

Histogram Store::histogram(MetricName name, const std::vector<double>& bounds) {
  // Metrics are never removed, so the bounds stay where they are.
  const Metric* m = define(std::move(name), MetricType::Histogram, &bounds, false);
  return m ? Histogram(m->slot, m->bounds.get()) : Histogram();
}

std::vector<MetricSnapshot> Store::snapshot() const {
  std::vector<MetricSnapshot> out;
  std::lock_guard lock(mu_);
  out.reserve(metrics_.size());
  for (const auto& m : metrics_) {
    MetricSnapshot s{};
    s.name = &m->name;
    s.type = m->type;
    switch (m->type) {
      case MetricType::Counter:
        s.counter = static_cast<uint64_t>(sum_slot(m->slot));
        break;
      case MetricType::Gauge:
        s.gauge = m->cell ? m->cell->load(std::memory_order_relaxed) : sum_slot(m->slot);
        break;
      case MetricType::Histogram: {
        const auto& b = *m->bounds;
        const uint32_t n = static_cast<uint32_t>(b.size());
        s.histogram.bounds = b;
        uint64_t running = 0;
        for (uint32_t i = 0; i <= n; ++i) {
          running += static_cast<uint64_t>(sum_slot(m->slot + i));
          s.histogram.cumulative.push_back(running);
        }
        s.histogram.sum = static_cast<uint64_t>(sum_slot(m->slot + n + 1));
        s.histogram.count = static_cast<uint64_t>(sum_slot(m->slot + n + 2));
        break;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

MetricName http_conn_manager_stat(std::string_view prefix, std::string_view stat) {
  return MetricName{str_cat("http.", prefix, ".", stat),
                    str_cat("http.", stat),
                    {{"envoy_http_conn_manager_prefix", std::string(prefix)}}};
}

MetricName cluster_stat(std::string_view cluster, std::string_view stat) {
  return MetricName{str_cat("cluster.", cluster, ".", stat),
                    str_cat("cluster.", stat),
                    {{"envoy_cluster_name", std::string(cluster)}}};
}

MetricName listener_stat(std::string_view listener_address, std::string_view stat) {
  return MetricName{str_cat("listener.", listener_address, ".", stat),
                    str_cat("listener.", stat),
                    {{"envoy_listener_address", std::string(listener_address)}}};
}

MetricName tcp_proxy_stat(std::string_view prefix, std::string_view stat) {
  return MetricName{str_cat("tcp.", prefix, ".", stat),
                    str_cat("tcp.", stat),
                    {{"envoy_tcp_prefix", std::string(prefix)}}};
}

MetricName server_stat(std::string_view stat) {
  return MetricName{str_cat("server.", stat), str_cat("server.", stat), {}};
}

MetricName response_class_stat(MetricName name, std::string_view family_base, int code_class) {
  name.base = std::string(family_base);
  name.tags.insert(name.tags.begin(), {"envoy_response_code_class", str_cat(code_class)});
  return name;
}

MetricName response_code_stat(MetricName name, std::string_view family_base, uint32_t code) {
  name.base = std::string(family_base);
  name.tags.insert(name.tags.begin(), {"envoy_response_code", str_cat(code)});
  return name;
}

MetricName wasm_metric_name(std::string_view plugin_name) {
  const std::string dotted = str_cat(kWasmCustomPrefix, plugin_name);
  constexpr std::string_view kFieldSeparator = ";.;", kValueSeparator = "=.=";
  if (plugin_name.find(kValueSeparator) == std::string_view::npos) {
    return MetricName{dotted, dotted, {}};
  }
  MetricName name{dotted, std::string(kWasmCustomPrefix), {}};
  std::string family;
  size_t start = 0;
  while (start <= plugin_name.size()) {
    size_t end = plugin_name.find(kFieldSeparator, start);
    if (end == std::string_view::npos) end = plugin_name.size();
    const std::string_view field = plugin_name.substr(start, end - start);
    const size_t eq = field.find(kValueSeparator);
    if (eq == std::string_view::npos) {
      family += field;  // the metric's own name (Istio puts it last)
    } else {
      // Prometheus label names are [a-zA-Z_][a-zA-Z0-9_]*.
      std::string label(field.substr(0, eq));
      for (char& c : label) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) c = '_';
      }
      if (label.empty() || (label[0] >= '0' && label[0] <= '9')) label.insert(0, "_");
      // A label named twice (a value that smuggled separators in) keeps its first value: a
      // Prometheus series must not repeat a label name.
      const bool repeated = std::any_of(name.tags.begin(), name.tags.end(),
                                        [&](const auto& tag) { return tag.first == label; });
      if (!repeated) {
        name.tags.emplace_back(std::move(label),
                               std::string(field.substr(eq + kValueSeparator.size())));
      }
    }
    start = end + kFieldSeparator.size();
  }
  // A leading '_' on the family (some Istio versions write ";.;_istio_requests_total") goes.
  while (family.size() > 1 && family[0] == '_') family.erase(0, 1);
  name.base += family.empty() ? "unnamed" : family;
  return name;
}

std::string_view visible_name(std::string_view dotted) {
  if (dotted.starts_with(kWasmCustomPrefix)) dotted.remove_prefix(kWasmCustomPrefix.size());
  return dotted;
}

std::string render_text(const std::vector<MetricSnapshot>& metrics) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const auto& m : metrics) {
    const std::string name(visible_name(m.name->dotted));
    switch (m.type) {
      case MetricType::Counter:
        lines.emplace_back(name, str_cat(m.counter));
        break;
      case MetricType::Gauge:
        lines.emplace_back(name, str_cat(m.gauge));
        break;
      case MetricType::Histogram: {
        std::string v = m.histogram.count == 0 ? "No recorded values" : "";
        if (m.histogram.count) {
          str_append(&v, "count=", m.histogram.count, " sum=", m.histogram.sum);
        }
        lines.emplace_back(name, std::move(v));
        break;
      }
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& [k, v] : lines) str_append(&out, k, ": ", v, "\n");
  return out;
}

std::string render_prometheus(const std::vector<MetricSnapshot>& metrics) {
  // Group samples by family: Prometheus wants one TYPE line and contiguous samples per family.
  std::map<std::string, std::vector<const MetricSnapshot*>> families;
  for (const auto& m : metrics) families[prometheus_name(m.name->base)].push_back(&m);
  std::string out;
  for (const auto& [family, members] : families) {
    const MetricType type = members.front()->type;
    const char* type_name = type == MetricType::Counter ? "counter"
                            : type == MetricType::Gauge ? "gauge"
                                                        : "histogram";
    str_append(&out, "# TYPE ", family, " ", type_name, "\n");
    // Distinct names can map to one family and label set ("a.b" and "a_b", both untagged): the
    // first one is kept, as a duplicate series would make the whole exposition invalid.
    std::set<std::string> series;
    for (const MetricSnapshot* m : members) {
      if (m->type != type) continue;  // a name clash across types: keep the family valid
      const Tags& tags = m->name->tags;
      if (!series.insert(labels(tags)).second) continue;
      switch (type) {
        case MetricType::Counter:
          str_append(&out, family, labels(tags), " ", m->counter, "\n");
          break;
        case MetricType::Gauge:
          str_append(&out, family, labels(tags), " ", m->gauge, "\n");
          break;
        case MetricType::Histogram: {
          const auto& h = m->histogram;
          for (size_t i = 0; i < h.bounds.size(); ++i) {
            str_append(&out, family, "_bucket", labels(tags, "le", format_bound(h.bounds[i])), " ",
                       h.cumulative[i], "\n");
          }
          str_append(&out, family, "_bucket", labels(tags, "le", "+Inf"), " ", h.count, "\n");
          str_append(&out, family, "_sum", labels(tags), " ", h.sum, "\n");
          str_append(&out, family, "_count", labels(tags), " ", h.count, "\n");
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace sluice::stats
