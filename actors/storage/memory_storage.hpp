// In-memory storage backend with crash semantics, for the simulator.
//
// `write` only buffers; `sync` makes the buffer durable; `crash` throws the buffer away, as a
// power loss would. The object outlives the node's actors (the simulator keeps it), so a
// restarted node recovers exactly what was synced. It follows file_storage's rules for the
// commit hint, the cluster id, the base, compaction and resets, and never finds damage. Unlike
// file_storage it compacts exactly through `compact_through` (file_storage drops whole segments
// only), so its base is always the highest a correct storage may report.
#pragma once

#include <string>
#include <vector>

#include "actors/storage/storage_backend.hpp"

namespace infinity {

class memory_storage final : public storage_backend {
 public:
  recovered_state recover() override { return durable_; }
  /// Throws std::logic_error for a cluster id other than the recorded one.
  void write(const persist_request& request) override;
  void sync() override;

  /// Loses every write not yet synced.
  void crash() { unsynced_.clear(); }

  const recovered_state& durable() const { return durable_; }
  /// The highest commit index of a synced request, capped by the log it left; lowered only by a
  /// deliberate reset (a truncation at or below it).
  uint64_t commit_hint() const { return commit_hint_; }
  /// Empty until a synced request carried one.
  const std::string& cluster_id() const { return cluster_id_; }
  uint64_t sync_count() const { return sync_count_; }

 private:
  recovered_state durable_;
  uint64_t commit_hint_ = 0;
  std::string cluster_id_;
  std::vector<persist_request> unsynced_;
  uint64_t sync_count_ = 0;
};

/// Applies `request` to `state` in the order the seam defines: reset, hard state, truncation,
/// append, compaction (exactly through `compact_through`). Throws std::logic_error, leaving
/// `state` as it was, if the term would go back, a truncation reaches below the base,
/// compaction goes beyond the log, or the result would not be a contiguous log.
void apply_persist_request(recovered_state& state, const persist_request& request);

} // namespace infinity
