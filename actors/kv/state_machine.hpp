// The replicated key-value map: what every node builds by applying committed log entries.
//
// Contract: `apply` must be called with every committed entry exactly once, in log order
// (index = last_applied() + 1); it is deterministic, so replicas that applied the same prefix hold
// the same map. It never fails: an entry it cannot decode is counted and skipped on every replica
// alike. One writer (the KV actor); `get` may run on any thread at the same time: each shard has
// a reader/writer lock that `apply` holds only while it changes that shard.
//
// Snapshots without stopping the world: the map is split into `shard_count` shards, each held by
// a shared pointer. `freeze()` copies the shard pointers (and the bounded deduplication table),
// not the data; a write to a shard that a frozen image still shares first copies that one shard
// (copy on write). So the longest write stall a snapshot causes is one shard's copy, and a frozen
// image can be serialized on another thread while writes go on. An image serializes to the same
// bytes on every replica that applied the same prefix (shards in order, keys sorted within a
// shard, shard chosen by a fixed hash).
//
// Memory (issue 13): a shard is a `kv_shard` (keys and values in one arena, an open-addressing
// table of 8-byte slots) and the deduplication window a `command_id_window` (a ring buffer and a
// flat table), so neither allocates per key or per command id.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/kv/command_id_window.hpp"
#include "actors/kv/kv_shard.hpp"
#include "actors/types.hpp"

namespace infinity {

class kv_state_machine {
 public:
  /// Commands whose (client_id, sequence) was applied within this many log entries are ignored
  /// when they appear again (a duplicated or retried proposal). Older ids are forgotten.
  static constexpr uint64_t default_dedup_window_entries = 100000;
  static constexpr size_t shard_count = 256;

  explicit kv_state_machine(uint64_t dedup_window_entries = default_dedup_window_entries);

  enum class apply_effect {
    /// A no-op or membership entry: nothing changed in the map.
    none,
    applied,
    /// Same (client_id, sequence) as a command applied before: skipped.
    duplicate,
    /// Undecodable payload: skipped (identically on every replica).
    malformed,
  };

  apply_effect apply(const log_entry& entry);

  /// Thread-safe against `apply` (a shared lock on the key's shard).
  std::optional<std::string> get(const std::string& key) const;

  uint64_t last_applied() const { return last_applied_; }
  uint64_t last_applied_term() const { return last_applied_term_; }
  /// The latest configuration entry applied (its encoded data and index; empty/0 if none).
  const std::string& config() const { return config_; }
  uint64_t config_index() const { return config_index_; }
  size_t size() const { return size_; }
  uint64_t duplicates_skipped() const { return duplicates_skipped_; }
  uint64_t malformed_skipped() const { return malformed_skipped_; }
  /// Bytes of keys and values held (what a snapshot's body is made of, roughly).
  uint64_t data_bytes() const { return data_bytes_; }

  // -- snapshots
  // -----------------------------------------------------------------------------------

  /// Keys and values of one shard, in a flat table over one arena (no allocation per key).
  using shard = kv_shard;
  using command_id = std::pair<uint64_t, uint64_t>;

  /// The state as of one applied index, immutable and safe to read from another thread.
  struct image {
    uint64_t last_applied = 0;
    uint64_t last_applied_term = 0;
    std::string config;
    uint64_t config_index = 0;
    uint64_t dedup_window_entries = 0;
    std::array<std::shared_ptr<const shard>, shard_count> shards;
    /// (index, id) in apply order.
    std::vector<std::pair<uint64_t, command_id>> recent_command_ids;
    size_t size = 0;
  };

  /// Costs O(shard_count + dedup window), never O(map size).
  image freeze() const;

  /// Writes the image in its snapshot body format, in pieces of about `piece_bytes` (so a large
  /// map never needs one big buffer).
  static void serialize(const image& snapshot, const std::function<void(std::string_view)>& out,
                        size_t piece_bytes = size_t{1} << 20);

  /// Rebuilds a state machine from a body produced by `serialize`, fed in pieces of any size.
  /// Throws std::runtime_error naming the problem if the body is malformed.
  class restorer {
   public:
    restorer();
    ~restorer();
    void feed(std::string_view bytes);
    /// The restored machine; throws if the body was incomplete.
    kv_state_machine finish();

   private:
    struct impl;
    std::unique_ptr<impl> impl_;
  };

 private:
  static size_t shard_of(const std::string& key);
  shard& writable(size_t index);
  void forget_old_command_ids(uint64_t index);

  uint64_t dedup_window_entries_;
  uint64_t last_applied_ = 0;
  uint64_t last_applied_term_ = 0;
  std::string config_;
  uint64_t config_index_ = 0;
  uint64_t duplicates_skipped_ = 0;
  uint64_t malformed_skipped_ = 0;
  size_t size_ = 0;
  uint64_t data_bytes_ = 0;
  std::array<std::shared_ptr<shard>, shard_count> shards_;
  /// Behind a pointer so the machine stays movable (it is moved only before anyone reads it).
  std::unique_ptr<std::array<std::shared_mutex, shard_count>> shard_locks_ =
      std::make_unique<std::array<std::shared_mutex, shard_count>>();
  /// (index, id) in apply order, so expiry is deterministic across replicas.
  command_id_window recent_command_ids_;
};

} // namespace infinity
