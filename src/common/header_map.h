// An ordered multimap of HTTP headers. Keys are stored lower-cased (HTTP/1 names are case-insensitive,
// HTTP/2 and Proxy-Wasm see them lower-cased); lookups take lower-case keys. Pseudo-headers
// (":method", ":path", ":authority", ":scheme", ":status") live in the same map, as in Envoy, so
// filters and plugins see one uniform view whatever the wire protocol.
//
// Headers are few (typically < 30), so a flat vector with linear search beats hashing; a map is reused
// across requests on a connection, keeping its capacity.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class HeaderMap {
 public:
  struct Entry {
    std::string key;
    std::string value;
  };
  using const_iterator = std::vector<Entry>::const_iterator;

  // Appends a value (keeps existing ones). `key` is lower-cased on insert.
  void add(std::string_view key, std::string_view value);
  // Replaces every value of `key` with one value (added at the end when absent).
  void set(std::string_view key, std::string_view value);
  // Removes every value of `key`; returns how many were removed.
  size_t remove(std::string_view key);
  // Removes every key starting with `prefix` (e.g. "x-envoy-").
  size_t remove_prefix(std::string_view prefix);

  // First value of `key` (lower-case), or nullptr.
  const std::string* get(std::string_view key) const;
  std::string_view get_or_empty(std::string_view key) const;
  bool has(std::string_view key) const { return get(key) != nullptr; }
  // Every value of `key` joined with ", " (the HTTP list form), or "" when absent.
  std::string get_joined(std::string_view key) const;
  size_t count(std::string_view key) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Bytes of names and values, for limits such as max_request_headers_kb.
  size_t byte_size() const;
  void clear() { entries_.clear(); }
  void reserve(size_t n) { entries_.reserve(n); }

  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  std::vector<Entry>& entries() { return entries_; }

  // Convenience accessors for pseudo-headers.
  std::string_view method() const { return get_or_empty(":method"); }
  std::string_view path() const { return get_or_empty(":path"); }
  std::string_view authority() const { return get_or_empty(":authority"); }
  std::string_view scheme() const { return get_or_empty(":scheme"); }
  std::string_view status() const { return get_or_empty(":status"); }

 private:
  std::vector<Entry> entries_;
};

// Lower-cases ASCII in place.
void ascii_lower(std::string& s);

}  // namespace sluice
