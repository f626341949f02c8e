// Internal: a map from context ids to values, for the SDK's per-VM tables (dispatch.h).
//
// Every callback looks its context up, and every stream adds and removes one. std::unordered_map
// allocated a node per insert (a dlmalloc/dlfree pair in the .wasm build) and divided by a prime
// per lookup (a slow instruction in wasm). This is open addressing over a power-of-two array:
// the host's ids come from one counter, and Fibonacci hashing spreads such ids well, so lookups
// are a multiply, a shift and a short probe; inserts allocate only when the table grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace sluice {
inline namespace SLUICE_SDK_NS {

template <typename V>
class IdMap {
 public:
  size_t size() const { return size_; }

  // The value of `id`, or nullptr. Valid until the next put or take.
  V* find(uint32_t id) {
    if (size_ == 0) return nullptr;
    for (size_t i = home(id);; i = next(i)) {
      Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.id == id) return &s.value;
    }
  }
  bool contains(uint32_t id) { return find(id) != nullptr; }

  // Sets `id`'s value (replacing one there was); the stored value.
  V& put(uint32_t id, V value) {
    if (V* there = find(id)) return *there = std::move(value);
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = home(id);
    while (slots_[i].used) i = next(i);
    slots_[i].used = true;
    slots_[i].id = id;
    slots_[i].value = std::move(value);
    ++size_;
    return slots_[i].value;
  }

  // Removes `id` and hands its value back (a default V if there was none), so that the caller
  // destroys it once the map is consistent again: a destructor may use the map.
  V take(uint32_t id) {
    if (size_ == 0) return V{};
    size_t i = home(id);
    for (;; i = next(i)) {
      if (!slots_[i].used) return V{};
      if (slots_[i].id == id) break;
    }
    V value = std::move(slots_[i].value);
    // Backward-shift deletion: later entries of the probe run move into the hole when their
    // home is not between it and them, so no tombstones are needed.
    size_t hole = i;
    for (size_t j = next(i); slots_[j].used; j = next(j)) {
      const size_t h = home(slots_[j].id);
      const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      slots_[hole].id = slots_[j].id;
      slots_[hole].value = std::move(slots_[j].value);
      hole = j;
    }
    slots_[hole].used = false;
    slots_[hole].value = V{};
    --size_;
    return value;
  }

 private:
  struct Slot {
    uint32_t id = 0;
    bool used = false;
    V value{};
  };

  size_t home(uint32_t id) const {
    return static_cast<size_t>((id * 0x9E3779B9u) >> shift_) & (slots_.size() - 1);
  }
  size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_ = std::vector<Slot>(old.empty() ? 16 : old.size() * 2);
    shift_ = 32;
    for (size_t n = slots_.size(); n > 1; n >>= 1) --shift_;  // the top log2(size) bits
    size_ = 0;
    for (Slot& s : old) {
      if (s.used) put(s.id, std::move(s.value));
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  unsigned shift_ = 32;
};

}  // namespace SLUICE_SDK_NS
}  // namespace sluice
