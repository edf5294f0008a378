#include "actors/storage/memory_storage.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace infinity {

void apply_persist_request(recovered_state& state, const persist_request& request) {
  if (request.has_hard_state) {
    if (request.state.term < state.state.term)
      throw std::logic_error("storage: term would go back from " +
                             std::to_string(state.state.term) + " to " +
                             std::to_string(request.state.term));
    state.state = request.state;
  }
  if (request.truncate_from != 0 && request.truncate_from <= state.entries.size())
    state.entries.resize(request.truncate_from - 1);
  for (const auto& entry : request.entries) {
    if (entry.index != state.entries.size() + 1)
      throw std::logic_error("storage: non-contiguous append of index " +
                             std::to_string(entry.index) + " after " +
                             std::to_string(state.entries.size()));
    state.entries.push_back(entry);
  }
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
    if (request.truncate_from != 0 && request.truncate_from <= commit_hint_)
      commit_hint_ = request.truncate_from - 1; // a deliberate reset
    apply_persist_request(durable_, request);
    commit_hint_ = std::max<uint64_t>(
        commit_hint_, std::min<uint64_t>(request.commit_index, durable_.entries.size()));
    if (!request.cluster_id.empty())
      cluster_id_ = request.cluster_id;
  }
  unsynced_.clear();
  ++sync_count_;
}

} // namespace infinity
