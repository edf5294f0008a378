// The replicated key-value map: what every node builds by applying committed log entries.
//
// Contract: `apply` must be called with every committed entry exactly once, in log order
// (index = last_applied() + 1); it is deterministic, so replicas that applied the same prefix hold
// the same map. It never fails: an entry it cannot decode is counted and skipped on every replica
// alike. Not thread-safe; the KV actor owns one.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "actors/types.hpp"

namespace infinity {

class kv_state_machine {
 public:
  /// Commands whose (client_id, sequence) was applied within this many log entries are ignored
  /// when they appear again (a duplicated or retried proposal). Older ids are forgotten.
  static constexpr uint64_t default_dedup_window_entries = 100000;

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

  std::optional<std::string> get(const std::string& key) const;

  uint64_t last_applied() const { return last_applied_; }
  size_t size() const { return data_.size(); }
  uint64_t duplicates_skipped() const { return duplicates_skipped_; }
  uint64_t malformed_skipped() const { return malformed_skipped_; }

 private:
  struct command_id_hash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& id) const {
      return std::hash<uint64_t>{}(id.first * 0x9E3779B97F4A7C15ULL ^ id.second);
    }
  };

  void forget_old_command_ids(uint64_t index);

  uint64_t dedup_window_entries_;
  uint64_t last_applied_ = 0;
  uint64_t duplicates_skipped_ = 0;
  uint64_t malformed_skipped_ = 0;
  std::unordered_map<std::string, std::string> data_;
  std::unordered_set<std::pair<uint64_t, uint64_t>, command_id_hash> recent_command_ids_;
  /// (index, id) in apply order, so expiry is deterministic across replicas.
  std::deque<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> command_id_expiry_;
};

} // namespace infinity
