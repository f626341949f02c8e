#include "common/header_map.h"

#include <algorithm>

namespace sluice {

void ascii_lower(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

void HeaderMap::add(std::string_view key, std::string_view value) {
  Entry& e = entries_.emplace_back();
  e.key.assign(key);
  ascii_lower(e.key);
  e.value.assign(value);
}

void HeaderMap::set(std::string_view key, std::string_view value) {
  std::string lower(key);
  ascii_lower(lower);
  bool replaced = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->key == lower) {
      if (!replaced) {
        it->value.assign(value);
        replaced = true;
        ++it;
      } else {
        it = entries_.erase(it);
      }
    } else {
      ++it;
    }
  }
  if (!replaced) entries_.push_back(Entry{std::move(lower), std::string(value)});
}

size_t HeaderMap::remove(std::string_view key) {
  const size_t before = entries_.size();
  std::erase_if(entries_, [&](const Entry& e) { return e.key == key; });
  return before - entries_.size();
}

size_t HeaderMap::remove_prefix(std::string_view prefix) {
  const size_t before = entries_.size();
  std::erase_if(entries_, [&](const Entry& e) { return e.key.starts_with(prefix); });
  return before - entries_.size();
}

const std::string* HeaderMap::get(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e.value;
  }
  return nullptr;
}

std::string_view HeaderMap::get_or_empty(std::string_view key) const {
  const std::string* v = get(key);
  return v ? std::string_view(*v) : std::string_view();
}

std::string HeaderMap::get_joined(std::string_view key) const {
  std::string out;
  for (const Entry& e : entries_) {
    if (e.key != key) continue;
    if (!out.empty()) out += ", ";
    out += e.value;
  }
  return out;
}

size_t HeaderMap::count(std::string_view key) const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; }));
}

size_t HeaderMap::byte_size() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.key.size() + e.value.size();
  return n;
}

}  // namespace sluice
