// One shard of the key-value state machine: a compact hash map from byte strings to byte strings.
//
// Layout (issue 13): no allocation per key. The keys and values live in one arena per shard as
// records `varint key length | varint value length | key | value`; an open-addressing table
// (linear probing, growing by half, at most 4/5 full) holds 8-byte slots: the record's offset in
// the arena and 32 bits of the key's hash, which also picks the home slot (multiply-shift, so
// any table size works). A 100-byte value under a short key costs about 108 bytes of record,
// 10-15 bytes of table and up to a quarter of arena headroom, against about 220 bytes for a node
// of an std::unordered_map<std::string, std::string> with the value on the heap.
//
// Overwriting a value of the same length writes it in place; any other overwrite or an erase
// leaves the old record as garbage, and the arena is compacted when garbage is more than half of
// it. Erasing shifts the following slots back (no tombstones). Iteration order of `for_each`
// depends on the history of the table; `for_each_sorted` visits keys in byte order (what a
// snapshot needs to be the same on every replica).
//
// A copy copies the arena's used bytes and the table: two allocations, whatever the number of
// keys (what copy on write of a shard costs). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace infinity {

class kv_shard {
 public:
  kv_shard() = default;
  kv_shard(const kv_shard& other);
  kv_shard& operator=(const kv_shard& other);
  kv_shard(kv_shard&& other) noexcept;
  kv_shard& operator=(kv_shard&& other) noexcept;
  ~kv_shard() = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  /// The value of `key`, valid until the next mutation of this shard.
  std::optional<std::string_view> find(std::string_view key) const;

  struct assign_result {
    bool inserted = false;
    /// The length of the value replaced (0 if inserted).
    size_t old_value_size = 0;
  };
  /// Throws std::length_error if the shard would exceed 4 GiB of records.
  assign_result insert_or_assign(std::string_view key, std::string_view value);

  /// Bytes of key and value removed, or nullopt if `key` was absent.
  std::optional<size_t> erase(std::string_view key);

  /// f(key, value) for every pair, in table order.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.offset != empty_offset) {
        auto r = record_at(s.offset);
        f(r.key, r.value);
      }
  }

  /// f(key, value) for every pair, keys in ascending byte order.
  template <class F>
  void for_each_sorted(F&& f) const {
    auto order = sorted_offsets();
    for (auto offset : order) {
      auto r = record_at(offset);
      f(r.key, r.value);
    }
  }

  /// Heap bytes held (arena capacity and table).
  size_t memory_bytes() const { return arena_capacity_ + slots_.capacity() * sizeof(slot); }
  /// Arena bytes held by overwritten or erased records, reclaimed by the next compaction.
  size_t garbage_bytes() const { return garbage_; }

 private:
  static constexpr uint32_t empty_offset = UINT32_MAX;

  struct slot {
    uint32_t offset = empty_offset;
    uint32_t hash = 0;
  };

  struct record {
    std::string_view key;
    std::string_view value;
    /// Bytes of the whole record (headers included).
    size_t bytes = 0;
    /// Offset of the value's first byte in the arena.
    size_t value_offset = 0;
  };

  static uint32_t hash_of(std::string_view key);
  /// The slot where a key with this hash would be if nothing were in the way.
  size_t home(uint32_t hash) const {
    return static_cast<size_t>((static_cast<uint64_t>(hash) * slots_.size()) >> 32);
  }
  size_t next(size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  record record_at(uint32_t offset) const;
  /// Index of the slot holding `key`, or of the empty slot where it would go.
  size_t probe(std::string_view key, uint32_t hash) const;
  uint32_t append_record(std::string_view key, std::string_view value);
  void reserve_arena(size_t bytes);
  void grow_table();
  void compact();
  std::vector<uint32_t> sorted_offsets() const;

  std::unique_ptr<char[]> arena_;
  size_t arena_size_ = 0;
  size_t arena_capacity_ = 0;
  size_t garbage_ = 0;
  std::vector<slot> slots_;
  size_t size_ = 0;
};

} // namespace infinity
