// In-memory storage backend with crash semantics, for the simulator.
//
// `write` only buffers; `sync` makes the buffer durable; `crash` throws the buffer away, as a
// power loss would. The object outlives the node's actors (the simulator keeps it), so a
// restarted node recovers exactly what was synced.
#pragma once

#include <vector>

#include "actors/storage/storage_backend.hpp"

namespace infinity {

class memory_storage final : public storage_backend {
 public:
  recovered_state recover() override { return durable_; }
  void write(const persist_request& request) override { unsynced_.push_back(request); }
  void sync() override;

  /// Loses every write not yet synced.
  void crash() { unsynced_.clear(); }

  const recovered_state& durable() const { return durable_; }
  uint64_t sync_count() const { return sync_count_; }

 private:
  recovered_state durable_;
  std::vector<persist_request> unsynced_;
  uint64_t sync_count_ = 0;
};

/// Applies `request` to `state` in the order the seam defines: hard state, truncation, append.
/// Throws std::logic_error if the result would not be a contiguous log.
void apply_persist_request(recovered_state& state, const persist_request& request);

} // namespace infinity
