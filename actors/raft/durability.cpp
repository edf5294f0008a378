#include "actors/raft/durability.hpp"

#include <algorithm>

namespace infinity {

void persist_pipeline::queue_hard_state(const hard_state& state) {
  queued_.has_hard_state = true;
  queued_.state = state;
  dirty_ = true;
  hard_state_seq_ = required_seq();
}

void persist_pipeline::queue_truncate(uint64_t from) {
  // Entries queued but not yet sent at or after `from` are simply dropped; storage truncates
  // whatever it already has.
  auto& entries = queued_.entries;
  if (!entries.empty() && entries.front().index < from) {
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [from](const log_entry& e) { return e.index >= from; }),
                  entries.end());
  } else {
    entries.clear();
    queued_.truncate_from =
        queued_.truncate_from == 0 ? from : std::min(queued_.truncate_from, from);
  }
  dirty_ = true;
  durable_last_index_ = std::min(durable_last_index_, from - 1);
  in_flight_last_index_ = std::min(in_flight_last_index_, from - 1);
}

void persist_pipeline::queue_append(const log_entry& entry) {
  queued_.entries.push_back(entry);
  dirty_ = true;
}

void persist_pipeline::queue_compact(uint64_t through) {
  queued_.compact_through = std::max(queued_.compact_through, through);
  dirty_ = true;
}

void persist_pipeline::queue_reset(log_base base) {
  // What was queued for the old log goes with it; the reset comes first in the request.
  queued_.entries.clear();
  queued_.truncate_from = 0;
  queued_.compact_through = 0;
  queued_.has_reset = true;
  queued_.reset_to = base;
  dirty_ = true;
  durable_last_index_ = std::min(durable_last_index_, base.index);
  in_flight_last_index_ = std::min(in_flight_last_index_, base.index);
}

void persist_pipeline::queue_cluster_id(const std::string& cluster_id) {
  queued_.cluster_id = cluster_id;
  dirty_ = true;
}

std::optional<persist_request> persist_pipeline::start(uint64_t last_index, uint64_t commit_index) {
  if (!dirty_ || in_flight_)
    return std::nullopt;
  persist_request request = std::move(queued_);
  request.seq = ++sent_seq_;
  request.commit_index = std::min(commit_index, last_index);
  in_flight_last_index_ = last_index;
  in_flight_ = true;
  queued_ = persist_request{};
  dirty_ = false;
  return request;
}

bool persist_pipeline::finish(uint64_t seq) {
  if (!in_flight_ || seq != sent_seq_)
    return false;
  in_flight_ = false;
  durable_seq_ = seq;
  durable_last_index_ = in_flight_last_index_;
  return true;
}

void persist_pipeline::defer(uint64_t seq, outbound_message message) {
  deferred_.push_back(deferred_message{seq, std::move(message)});
}

std::vector<outbound_message> persist_pipeline::release() {
  std::vector<outbound_message> ready;
  auto is_ready = [this](const deferred_message& d) { return d.seq <= durable_seq_; };
  for (auto& d : deferred_)
    if (is_ready(d))
      ready.push_back(std::move(d.message));
  deferred_.erase(std::remove_if(deferred_.begin(), deferred_.end(), is_ready), deferred_.end());
  return ready;
}

} // namespace infinity
