#include "actors/storage/memory_storage.hpp"

#include <algorithm>
#include <cassert>
#include <stdexcept>
#include <string>

namespace infinity {

namespace {

uint64_t last_index_of(const recovered_state& state) {
  return state.base.index + state.entries.size();
}

} // namespace

void apply_persist_request(recovered_state& state, const persist_request& request) {
  if (request.has_hard_state && request.state.term < state.state.term)
    throw std::logic_error("storage: term would go back from " + std::to_string(state.state.term) +
                           " to " + std::to_string(request.state.term));
  // Validated on a copy, so a refused request changes nothing (as in file_storage).
  recovered_state next = state;
  if (request.has_reset) {
    next.entries.clear();
    next.base = request.reset_to;
  }
  if (request.has_hard_state)
    next.state = request.state;
  if (request.truncate_from != 0) {
    if (request.truncate_from <= next.base.index)
      throw std::logic_error("storage: truncation from index " +
                             std::to_string(request.truncate_from) + " reaches below the base " +
                             std::to_string(next.base.index) + " (entries in a snapshot)");
    if (request.truncate_from <= last_index_of(next))
      next.entries.resize(request.truncate_from - 1 - next.base.index);
  }
  for (const auto& entry : request.entries) {
    if (entry.index != last_index_of(next) + 1)
      throw std::logic_error("storage: non-contiguous append of index " +
                             std::to_string(entry.index) + " after " +
                             std::to_string(last_index_of(next)));
    next.entries.push_back(entry);
  }
  if (request.compact_through > last_index_of(next))
    throw std::logic_error("storage: compaction through index " +
                           std::to_string(request.compact_through) + " beyond the last index " +
                           std::to_string(last_index_of(next)));
  if (request.compact_through > next.base.index) {
    // Exactly through the index (no segments here): the strictest case for the Raft core, whose
    // log must cope with any base at or below `compact_through`.
    const auto dropped = request.compact_through - next.base.index;
    next.base = log_base{request.compact_through, next.entries[dropped - 1].term};
    next.entries.erase(next.entries.begin(), next.entries.begin() + static_cast<long>(dropped));
  }
  assert(last_index_of(next) >= next.base.index);
  state = std::move(next);
}

void memory_storage::write(const persist_request& request) {
  if (!request.cluster_id.empty()) {
    std::string known = cluster_id_;
    for (const auto& earlier : unsynced_)
      if (!earlier.cluster_id.empty())
        known = earlier.cluster_id;
    if (!known.empty() && known != request.cluster_id && request.truncate_from != 1)
      throw std::logic_error("storage: cluster id would change from '" + known + "' to '" +
                             request.cluster_id + "'");
  }
  unsynced_.push_back(request);
}

void memory_storage::sync() {
  for (const auto& request : unsynced_) {
    // A deliberate reset (an install below the hint, or a truncation at or below it) lowers the
    // hint: the log is then shorter than the hint said, on purpose.
    if (request.has_reset && request.reset_to.index < commit_hint_)
      commit_hint_ = request.reset_to.index;
    if (request.truncate_from != 0 && request.truncate_from <= commit_hint_)
      commit_hint_ = request.truncate_from - 1;
    apply_persist_request(durable_, request);
    commit_hint_ = std::max<uint64_t>(
        commit_hint_, std::min<uint64_t>(request.commit_index, last_index_of(durable_)));
    if (!request.cluster_id.empty())
      cluster_id_ = request.cluster_id;
  }
  unsynced_.clear();
  ++sync_count_;
}

} // namespace infinity
