#include "common/header_map.h"

#include <algorithm>

namespace sluice {

void ascii_lower(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

namespace {
// Spare entries kept by clear(): enough for ordinary requests, bounded for hostile ones.
constexpr size_t kMaxSpareEntries = 64;
}  // namespace

HeaderMap::Entry& HeaderMap::append_empty() {
  if (size_ == entries_.size()) entries_.emplace_back();
  Entry& e = entries_[size_++];
  e.key.clear();
  e.value.clear();
  return e;
}

HeaderMap::Entry& HeaderMap::append(std::string_view key, std::string_view value) {
  if (size_ < entries_.size()) {
    Entry& e = entries_[size_++];
    e.key.assign(key);
    e.value.assign(value);
    return e;
  }
  // Growing moves every entry, and a short string's characters move with it. key or value may
  // be one of those (set(":authority", *get("host"))), so the new entry is built before growing.
  Entry fresh{std::string(key), std::string(value)};
  entries_.push_back(std::move(fresh));
  ++size_;
  return entries_.back();
}

void HeaderMap::erase_at(size_t i) {
  // The removed entry moves behind the live ones, keeping its strings for reuse.
  std::rotate(entries_.begin() + static_cast<std::ptrdiff_t>(i),
              entries_.begin() + static_cast<std::ptrdiff_t>(i) + 1,
              entries_.begin() + static_cast<std::ptrdiff_t>(size_));
  --size_;
}

void HeaderMap::clear() {
  size_ = 0;
  if (entries_.size() > kMaxSpareEntries) entries_.resize(kMaxSpareEntries);
}

void HeaderMap::add(std::string_view key, std::string_view value) {
  ascii_lower(append(key, value).key);
}

void HeaderMap::add_front(std::string_view key, std::string_view value) {
  add(key, value);
  move_last_to_front(1);
}

void HeaderMap::move_last_to_front(size_t n) {
  std::rotate(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(size_ - n),
              entries_.begin() + static_cast<std::ptrdiff_t>(size_));
}

namespace {
bool equals_lower(std::string_view lower_key, std::string_view key) {
  if (lower_key.size() != key.size()) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (lower_key[i] != c) return false;
  }
  return true;
}
}  // namespace

void HeaderMap::set(std::string_view key, std::string_view value) {
  bool replaced = false;
  for (size_t i = 0; i < size_;) {
    if (equals_lower(entries_[i].key, key)) {
      if (!replaced) {
        entries_[i].value.assign(value);
        replaced = true;
        ++i;
      } else {
        erase_at(i);
      }
    } else {
      ++i;
    }
  }
  if (!replaced) add(key, value);
}

size_t HeaderMap::remove(std::string_view key) {
  return remove_if([key](const Entry& e) { return e.key == key; });
}

size_t HeaderMap::remove_prefix(std::string_view prefix) {
  return remove_if([prefix](const Entry& e) { return e.key.starts_with(prefix); });
}

const std::string* HeaderMap::get(std::string_view key) const {
  for (size_t i = 0; i < size_; ++i) {
    if (entries_[i].key == key) return &entries_[i].value;
  }
  return nullptr;
}

std::string* HeaderMap::get_mutable(std::string_view key) {
  for (size_t i = 0; i < size_; ++i) {
    if (entries_[i].key == key) return &entries_[i].value;
  }
  return nullptr;
}

std::string_view HeaderMap::get_or_empty(std::string_view key) const {
  const std::string* v = get(key);
  return v ? std::string_view(*v) : std::string_view();
}

std::string HeaderMap::get_joined(std::string_view key) const {
  std::string out;
  for (const Entry& e : *this) {
    if (e.key != key) continue;
    if (!out.empty()) out += ", ";
    out += e.value;
  }
  return out;
}

size_t HeaderMap::count(std::string_view key) const {
  return static_cast<size_t>(
      std::count_if(begin(), end(), [&](const Entry& e) { return e.key == key; }));
}

size_t HeaderMap::byte_size() const {
  size_t n = 0;
  for (const Entry& e : *this) n += e.key.size() + e.value.size();
  return n;
}

}  // namespace sluice
