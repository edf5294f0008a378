#include "actors/kv/kv_shard.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "actors/kv/hashing.hpp"

namespace infinity {
namespace {

/// Largest arena: offsets are 32 bits and UINT32_MAX marks an empty slot.
constexpr size_t max_arena = UINT32_MAX - 1;
constexpr size_t min_table = 8;
constexpr size_t min_arena = 256;

size_t varint_size(size_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

char* put_varint(char* out, size_t value) {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

/// Reads a varint written by put_varint (the arena holds only well-formed ones).
const char* get_varint(const char* in, size_t& value) {
  value = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<uint8_t>(*in++);
    value |= static_cast<size_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0)
      return in;
  }
}

size_t record_size(std::string_view key, std::string_view value) {
  return varint_size(key.size()) + varint_size(value.size()) + key.size() + value.size();
}

} // namespace

kv_shard::kv_shard(const kv_shard& other)
    : arena_size_(other.arena_size_), garbage_(other.garbage_), slots_(other.slots_),
      size_(other.size_) {
  // Room for some writes after the copy (a copy on write is followed by one at once).
  if (arena_size_ > 0) {
    arena_capacity_ = std::min(max_arena, arena_size_ + std::max(arena_size_ / 8, min_arena));
    arena_.reset(new char[arena_capacity_]);
    std::memcpy(arena_.get(), other.arena_.get(), arena_size_);
  }
}

kv_shard& kv_shard::operator=(const kv_shard& other) {
  if (this != &other) {
    kv_shard copy(other);
    *this = std::move(copy);
  }
  return *this;
}

kv_shard::kv_shard(kv_shard&& other) noexcept
    : arena_(std::move(other.arena_)), arena_size_(other.arena_size_),
      arena_capacity_(other.arena_capacity_), garbage_(other.garbage_),
      slots_(std::move(other.slots_)), size_(other.size_) {
  other.arena_size_ = other.arena_capacity_ = other.garbage_ = other.size_ = 0;
  other.slots_.clear();
}

kv_shard& kv_shard::operator=(kv_shard&& other) noexcept {
  if (this != &other) {
    arena_ = std::move(other.arena_);
    arena_size_ = other.arena_size_;
    arena_capacity_ = other.arena_capacity_;
    garbage_ = other.garbage_;
    slots_ = std::move(other.slots_);
    size_ = other.size_;
    other.arena_size_ = other.arena_capacity_ = other.garbage_ = other.size_ = 0;
    other.slots_.clear();
  }
  return *this;
}

uint32_t kv_shard::hash_of(std::string_view key) {
  // FNV-1a, then a 64-bit finalizer (murmur3's): the state machine picks the shard from FNV-1a's
  // low bits, so every key of a shard shares them; the finalizer spreads all bits over the table.
  return static_cast<uint32_t>(mix64(fnv1a(key)));
}

kv_shard::record kv_shard::record_at(uint32_t offset) const {
  const char* start = arena_.get() + offset;
  size_t key_size = 0, value_size = 0;
  const char* p = get_varint(start, key_size);
  p = get_varint(p, value_size);
  record r;
  r.key = std::string_view(p, key_size);
  r.value = std::string_view(p + key_size, value_size);
  r.value_offset = static_cast<size_t>(p + key_size - arena_.get());
  r.bytes = static_cast<size_t>(p - start) + key_size + value_size;
  return r;
}

size_t kv_shard::probe(std::string_view key, uint32_t hash) const {
  for (size_t i = home(hash);; i = next(i)) {
    const auto& s = slots_[i];
    if (s.offset == empty_offset || (s.hash == hash && record_at(s.offset).key == key))
      return i;
  }
}

std::optional<std::string_view> kv_shard::find(std::string_view key) const {
  if (size_ == 0)
    return std::nullopt;
  const auto& s = slots_[probe(key, hash_of(key))];
  if (s.offset == empty_offset)
    return std::nullopt;
  return record_at(s.offset).value;
}

void kv_shard::reserve_arena(size_t bytes) {
  if (arena_size_ + bytes <= arena_capacity_)
    return;
  // Garbage first: compacting may make room without a larger arena. With compaction at a quarter
  // of garbage, the arena stays below about twice the live records.
  if (garbage_ > 0 && garbage_ * 4 >= arena_size_) {
    compact();
    if (arena_size_ + bytes <= arena_capacity_)
      return;
  }
  size_t needed = arena_size_ + bytes;
  if (needed > max_arena)
    throw std::length_error("kv_shard: more than 4 GiB of keys and values in one shard");
  // Growth by a quarter: the shards fill at the same pace, so they grow in step, and a larger
  // factor would leave every arena of the map that much too large at once.
  size_t capacity = std::max({needed, arena_capacity_ + arena_capacity_ / 4, min_arena});
  capacity = std::min(capacity, max_arena);
  std::unique_ptr<char[]> grown(new char[capacity]);
  if (arena_size_ > 0)
    std::memcpy(grown.get(), arena_.get(), arena_size_);
  arena_ = std::move(grown);
  arena_capacity_ = capacity;
}

uint32_t kv_shard::append_record(std::string_view key, std::string_view value) {
  auto bytes = record_size(key, value);
  reserve_arena(bytes);
  auto offset = static_cast<uint32_t>(arena_size_);
  char* p = arena_.get() + arena_size_;
  p = put_varint(p, key.size());
  p = put_varint(p, value.size());
  if (!key.empty())
    std::memcpy(p, key.data(), key.size());
  if (!value.empty())
    std::memcpy(p + key.size(), value.data(), value.size());
  arena_size_ += bytes;
  return offset;
}

void kv_shard::grow_table() {
  std::vector<slot> old = std::move(slots_);
  // By half, not by doubling: the table is a tenth of the shard's bytes at most, but a power of
  // two size would leave it a third empty on average.
  slots_.assign(std::max(min_table, old.size() + old.size() / 2), slot{});
  for (const auto& s : old) {
    if (s.offset == empty_offset)
      continue;
    size_t i = home(s.hash);
    while (slots_[i].offset != empty_offset)
      i = next(i);
    slots_[i] = s;
  }
}

void kv_shard::compact() {
  // Live records in arena order, so the copy is one forward pass.
  std::vector<size_t> live;
  live.reserve(size_);
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].offset != empty_offset)
      live.push_back(i);
  std::sort(live.begin(), live.end(),
            [&](size_t a, size_t b) { return slots_[a].offset < slots_[b].offset; });
  size_t used = arena_size_ - garbage_;
  size_t capacity = std::min(max_arena, std::max(used + used / 4, min_arena));
  std::unique_ptr<char[]> fresh(new char[capacity]);
  size_t at = 0;
  for (auto i : live) {
    auto r = record_at(slots_[i].offset);
    std::memcpy(fresh.get() + at, arena_.get() + slots_[i].offset, r.bytes);
    slots_[i].offset = static_cast<uint32_t>(at);
    at += r.bytes;
  }
  arena_ = std::move(fresh);
  arena_size_ = at;
  arena_capacity_ = capacity;
  garbage_ = 0;
}

kv_shard::assign_result kv_shard::insert_or_assign(std::string_view key, std::string_view value) {
  // Views into this arena (a value found here, say) would dangle when it grows or is compacted.
  const char* begin = arena_.get();
  auto inside = [&](std::string_view s) {
    return !s.empty() && s.data() >= begin && s.data() < begin + arena_size_;
  };
  if (inside(key) || inside(value)) {
    std::string key_copy(key), value_copy(value);
    return insert_or_assign(key_copy, value_copy);
  }
  // Grow before probing so the slot found stays valid; at most 4/5 full.
  if ((size_ + 1) * 5 > slots_.size() * 4)
    grow_table();
  auto hash = hash_of(key);
  auto i = probe(key, hash);
  assign_result result;
  if (slots_[i].offset == empty_offset) {
    auto offset = append_record(key, value); // may compact: offsets move, slot indexes do not
    slots_[i] = slot{offset, hash};
    ++size_;
    result.inserted = true;
    return result;
  }
  auto old = record_at(slots_[i].offset);
  result.old_value_size = old.value.size();
  if (old.value.size() == value.size()) {
    if (!value.empty())
      std::memmove(arena_.get() + old.value_offset, value.data(), value.size());
    return result;
  }
  // Appending may compact, which keeps the old record (still referenced): it is garbage after.
  slots_[i].offset = append_record(key, value);
  garbage_ += old.bytes;
  return result;
}

std::optional<size_t> kv_shard::erase(std::string_view key) {
  if (size_ == 0)
    return std::nullopt;
  auto i = probe(key, hash_of(key));
  if (slots_[i].offset == empty_offset)
    return std::nullopt;
  auto old = record_at(slots_[i].offset);
  size_t removed = old.key.size() + old.value.size();
  garbage_ += old.bytes;
  --size_;
  // Backward shift: move later slots of the run into the hole if their home allows it.
  size_t hole = i;
  for (size_t j = next(i); slots_[j].offset != empty_offset; j = next(j)) {
    size_t h = home(slots_[j].hash);
    // Movable if its home is not in (hole, j] (cyclically).
    bool home_in_between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!home_in_between) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = slot{};
  if (size_ == 0) {
    // Empty: give everything back.
    arena_.reset();
    arena_size_ = arena_capacity_ = garbage_ = 0;
    slots_.clear();
    slots_.shrink_to_fit();
  } else if (garbage_ * 2 > arena_size_ && arena_size_ > min_arena) {
    compact();
  }
  return removed;
}

std::vector<uint32_t> kv_shard::sorted_offsets() const {
  std::vector<uint32_t> order;
  order.reserve(size_);
  for (const auto& s : slots_)
    if (s.offset != empty_offset)
      order.push_back(s.offset);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return record_at(a).key < record_at(b).key; });
  return order;
}

} // namespace infinity
