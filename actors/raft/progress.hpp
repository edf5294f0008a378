// Replication progress of one follower, as its leader tracks it (etcd-io/raft's `Progress`).
//
// Owned by the leader's role state: it exists only while its node leads, so nothing of it can
// outlive a leadership. Two modes:
//   probe      the follower's match is unknown: one append at a time until it accepts;
//   replicate  the match is known: up to `max_inflight` appends in flight (pipelining).
// A rejection or a lost connection drops back to probe; any success switches to replicate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace infinity {

class follower_progress {
 public:
  enum class mode {
    probe,
    replicate,
    /// The entries the follower needs were compacted away: it receives a snapshot in chunks,
    /// one chunk in flight, resuming from what it acknowledged.
    snapshot,
  };

  explicit follower_progress(uint64_t next_index = 1) : next_index_(next_index) {}

  mode state() const { return state_; }
  uint64_t next_index() const { return next_index_; }
  uint64_t match_index() const { return match_index_; }
  /// Appends in flight (replicate mode).
  size_t inflight() const { return inflight_.size(); }
  bool probe_outstanding() const { return probe_outstanding_; }

  /// May another append be sent now?
  bool can_send(uint32_t max_inflight) const {
    if (state_ == mode::snapshot)
      return false;
    return state_ == mode::probe ? !probe_outstanding_ : inflight_.size() < max_inflight;
  }

  /// An append ending at `last_index` went out (next_index was where it started).
  void sent(uint64_t last_index);
  /// The follower accepted everything up to `match`; returns whether match advanced.
  bool accepted(uint64_t match);
  /// The follower rejected; retry from `next` (never below match + 1).
  void rejected(uint64_t next);
  /// The follower is known to hold less than it acknowledged (its disk lost synced entries).
  void lost_entries_after(uint64_t match);
  /// Whatever was in flight is lost (connection down, or retransmit): probe again from the
  /// last known match (replicate) or the current next index (probe).
  void restart_probe();
  /// Clamps next_index into the leader's log.
  void clamp_next(uint64_t leader_last_index);
  /// Starts sending a snapshot whose last entry is `index`.
  void start_snapshot(uint64_t index);
  uint64_t snapshot_index() const { return snapshot_index_; }
  /// Snapshot bytes the follower has acknowledged, and whether a chunk is on its way.
  uint64_t snapshot_offset() const { return snapshot_offset_; }
  bool chunk_in_flight() const { return chunk_in_flight_; }
  void chunk_requested() { chunk_in_flight_ = true; }
  /// The follower holds `offset` bytes of the snapshot.
  void snapshot_acknowledged(uint64_t offset) {
    snapshot_offset_ = offset;
    chunk_in_flight_ = false;
  }
  /// The chunk or its acknowledgement was lost: ask again from the acknowledged offset.
  void chunk_lost() { chunk_in_flight_ = false; }

  // Leader bookkeeping beside replication.
  uint32_t ticks_since_ack = 0;
  /// Highest heartbeat round this follower answered in the current term (ReadIndex).
  uint64_t acked_round = 0;
  /// Heard from in the current check-quorum period.
  bool recently_active = true;
  /// The follower said it is repairing lost entries: its match does not count toward commit.
  bool repairing = false;
  /// Ticks since the follower last answered anything.
  uint32_t silent_ticks = 0;

 private:
  mode state_ = mode::probe;
  uint64_t next_index_ = 1;
  uint64_t match_index_ = 0;
  /// Last index of each append in flight (replicate mode), oldest first.
  std::deque<uint64_t> inflight_;
  bool probe_outstanding_ = false;
  uint64_t snapshot_index_ = 0;
  uint64_t snapshot_offset_ = 0;
  bool chunk_in_flight_ = false;
};

} // namespace infinity
