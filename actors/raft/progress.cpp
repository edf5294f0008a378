#include "actors/raft/progress.hpp"

#include <algorithm>

namespace infinity {

void follower_progress::sent(uint64_t last_index) {
  if (state_ == mode::replicate) {
    inflight_.push_back(last_index);
    next_index_ = last_index + 1;
  } else {
    probe_outstanding_ = true;
  }
}

bool follower_progress::accepted(uint64_t match) {
  bool advanced = match > match_index_;
  if (advanced) {
    match_index_ = match;
    ticks_since_ack = 0;
  }
  next_index_ = std::max(next_index_, match_index_ + 1);
  while (!inflight_.empty() && inflight_.front() <= match)
    inflight_.pop_front();
  if (state_ != mode::replicate) {
    // Any success (an append, or an installed snapshot) tells us where the logs match: start
    // pipelining after it.
    state_ = mode::replicate;
    probe_outstanding_ = false;
    inflight_.clear();
    next_index_ = match_index_ + 1;
  }
  return advanced;
}

void follower_progress::rejected(uint64_t next) {
  next_index_ = std::max(next, match_index_ + 1);
  state_ = mode::probe;
  probe_outstanding_ = false;
  inflight_.clear();
}

void follower_progress::lost_entries_after(uint64_t match) {
  match_index_ = std::min(match_index_, match);
}

void follower_progress::restart_probe() {
  if (state_ == mode::replicate)
    next_index_ = match_index_ + 1;
  state_ = mode::probe;
  probe_outstanding_ = false;
  inflight_.clear();
}

void follower_progress::start_snapshot(uint64_t index) {
  state_ = mode::snapshot;
  snapshot_index_ = index;
  snapshot_offset_ = 0;
  chunk_in_flight_ = false;
  probe_outstanding_ = false;
  inflight_.clear();
}

void follower_progress::clamp_next(uint64_t leader_last_index) {
  next_index_ = std::min(next_index_, leader_last_index + 1);
}

} // namespace infinity
