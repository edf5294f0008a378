// The Raft core's side of durability: what is written, in which order, and what waits for it.
//
// Everything that must survive a crash (term, vote, repair mark, log changes) is queued here and
// leaves as at most one `persist_request` in flight; what accumulates meanwhile is merged into
// the next one (group commit). Storage answers "persisted up to seq". Two kinds of things wait
// for that answer:
//   - messages that promise durability (a granted vote, an acknowledged append) wait until
//     everything queued before them is durable;
//   - every other message that carries a term waits until that term and the vote are durable:
//     a node that crashed first would come back in an older term and could act in this one
//     again, differently (the divergence of issue 8).
// Storage applies each request in the order hard state, truncation, append, and makes the hard
// state durable before anything after it reaches the disk, so a crash never leaves entries of a
// term newer than the recorded one.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "actors/raft/ready.hpp"
#include "actors/types.hpp"

namespace infinity {

class persist_pipeline {
 public:
  void queue_hard_state(const hard_state& state);
  /// Entries at or after `from` are gone (storage truncates what it already has).
  void queue_truncate(uint64_t from);
  void queue_append(const log_entry& entry);
  void queue_cluster_id(const std::string& cluster_id);
  /// Entries up to `through` are covered by a durable snapshot.
  void queue_compact(uint64_t through);
  /// The log is discarded and continues after `base` (a snapshot install).
  void queue_reset(log_base base);

  /// The request whose completion makes everything queued so far durable.
  uint64_t required_seq() const { return dirty_ ? sent_seq_ + 1 : sent_seq_; }
  uint64_t durable_seq() const { return durable_seq_; }
  bool durable(uint64_t seq) const { return seq <= durable_seq_; }
  /// The request that makes the current hard state durable.
  uint64_t hard_state_seq() const { return hard_state_seq_; }
  bool in_flight() const { return in_flight_; }
  /// Nothing queued and nothing on its way to disk.
  bool idle() const { return !dirty_ && !in_flight_; }

  /// Starts the next request if one is due and none is in flight. `last_index` is the log's last
  /// index once this request is durable; `commit_index` is recorded by storage as evidence.
  std::optional<persist_request> start(uint64_t last_index, uint64_t commit_index);

  /// Storage made request `seq` durable; returns false if it was not the one in flight.
  bool finish(uint64_t seq);

  /// The log is durable up to here (only entries written by completed requests).
  uint64_t durable_last_index() const { return durable_last_index_; }
  void set_durable_last_index(uint64_t index) { durable_last_index_ = index; }

  /// Holds `message` back until request `seq` is durable.
  void defer(uint64_t seq, outbound_message message);
  /// The held-back messages whose request is durable now, in the order they were deferred.
  std::vector<outbound_message> release();

 private:
  persist_request queued_;
  bool dirty_ = false;
  bool in_flight_ = false;
  uint64_t sent_seq_ = 0;
  uint64_t durable_seq_ = 0;
  uint64_t hard_state_seq_ = 0;
  /// Last index of the log once the request in flight is durable.
  uint64_t in_flight_last_index_ = 0;
  uint64_t durable_last_index_ = 0;
  struct deferred_message {
    uint64_t seq;
    outbound_message message;
  };
  std::vector<deferred_message> deferred_;
};

} // namespace infinity
