// An ordered multimap of HTTP headers. Keys are stored lower-cased (HTTP/1 names are
// case-insensitive, HTTP/2 and Proxy-Wasm see them lower-cased); lookups take lower-case keys.
// Pseudo-headers
// (":method", ":path", ":authority", ":scheme", ":status") live in the same map, as in Envoy, so
// filters and plugins see one uniform view whatever the wire protocol.
//
// Headers are few (typically < 30), so a flat vector with linear search beats hashing. Removed and
// cleared entries stay in the vector past the live ones, strings and all, so a map reused for the
// next request on a connection (clear(), swap()) fills them again without allocating.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

class HeaderMap {
 public:
  struct Entry {
    std::string key;
    std::string value;
  };
  using const_iterator = std::vector<Entry>::const_iterator;

  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) : entries_(other.begin(), other.end()), size_(other.size_) {}
  HeaderMap& operator=(const HeaderMap& other) {
    if (this != &other) {
      clear();
      for (const Entry& e : other) append(e.key, e.value);
    }
    return *this;
  }
  HeaderMap(HeaderMap&& other) noexcept
      : entries_(std::move(other.entries_)), size_(std::exchange(other.size_, 0)) {}
  HeaderMap& operator=(HeaderMap&& other) noexcept {
    entries_ = std::move(other.entries_);
    size_ = std::exchange(other.size_, 0);
    other.entries_.clear();
    return *this;
  }
  void swap(HeaderMap& other) noexcept {
    entries_.swap(other.entries_);
    std::swap(size_, other.size_);
  }

  // Appends a value (keeps existing ones). `key` is lower-cased on insert.
  void add(std::string_view key, std::string_view value);
  // Inserts before every other entry (pseudo-headers go first).
  void add_front(std::string_view key, std::string_view value);
  // Replaces every value of `key` with one value (added at the end when absent).
  void set(std::string_view key, std::string_view value);
  // Removes every value of `key`; returns how many were removed.
  size_t remove(std::string_view key);
  // Removes every key starting with `prefix` (e.g. "x-envoy-").
  size_t remove_prefix(std::string_view prefix);
  // Removes every entry for which pred(entry) is true, in one pass.
  template <typename Pred>
  size_t remove_if(Pred pred) {
    size_t removed = 0;
    for (size_t i = 0; i < size_;) {
      if (pred(entries_[i])) {
        erase_at(i);
        ++removed;
      } else {
        ++i;
      }
    }
    return removed;
  }

  // First value of `key` (lower-case), or nullptr.
  const std::string* get(std::string_view key) const;
  std::string* get_mutable(std::string_view key);
  std::string_view get_or_empty(std::string_view key) const;
  bool has(std::string_view key) const { return get(key) != nullptr; }
  // Every value of `key` joined with ", " (the HTTP list form), or "" when absent.
  std::string get_joined(std::string_view key) const;
  size_t count(std::string_view key) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Bytes of names and values, for limits such as max_request_headers_kb.
  size_t byte_size() const;
  void clear();
  void reserve(size_t n) { entries_.reserve(n); }

  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.begin() + static_cast<std::ptrdiff_t>(size_); }
  const Entry& operator[](size_t i) const { return entries_[i]; }

  // For parsers that fill an entry piece by piece: a new (empty) entry at the end, and the last
  // one. The caller lower-cases the key.
  Entry& append_empty();
  Entry& back() { return entries_[size_ - 1]; }
  Entry& front_mutable() { return entries_[0]; }
  Entry& operator[](size_t i) { return entries_[i]; }
  void pop_back() { --size_; }
  // Moves the last `n` entries, in their order, before all the others.
  void move_last_to_front(size_t n);

  // Convenience accessors for pseudo-headers.
  std::string_view method() const { return get_or_empty(":method"); }
  std::string_view path() const { return get_or_empty(":path"); }
  std::string_view authority() const { return get_or_empty(":authority"); }
  std::string_view scheme() const { return get_or_empty(":scheme"); }
  std::string_view status() const { return get_or_empty(":status"); }

 private:
  // A new entry at the end; key and value may point into this map.
  Entry& append(std::string_view key, std::string_view value);
  void erase_at(size_t i);

  std::vector<Entry> entries_;  // [0, size_) live, the rest spare
  size_t size_ = 0;
};

// Lower-cases ASCII in place.
void ascii_lower(std::string& s);

}  // namespace sluice
