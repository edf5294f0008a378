// Tunables of one Raft node. Plain data, no CAF: the core counts time in ticks of
// `tick_interval`, which only the node actor (the shell) turns into timers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace infinity {

struct raft_config {
  std::string id;
  /// This node's client (HTTP) address, advertised to followers while leading.
  std::string http_address;
  /// Bootstrap voters, used only while the log holds no membership entry (the simulator); real
  /// nodes start from a membership entry at index 1 instead. Empty: wait to be added.
  std::vector<std::string> members;
  std::chrono::milliseconds tick_interval{20};
  uint32_t heartbeat_ticks = 2;
  /// Election timeouts are drawn from [election_ticks, 2 * election_ticks).
  uint32_t election_ticks = 10;
  /// A follower that acknowledged nothing for this long while behind gets re-probed.
  uint32_t retransmit_ticks = 4;
  /// Pipelining window per follower.
  uint32_t max_inflight_appends = 64;
  size_t max_entries_per_append = 512;
  size_t max_bytes_per_append = size_t{1} << 20;
  size_t max_entries_per_apply = 1024;
  /// How long a follower waits for the leader's answer to a forwarded proposal or read.
  std::chrono::milliseconds forward_timeout{3000};
  /// How long a join may wait for the new node to answer.
  std::chrono::milliseconds join_timeout{5000};
  /// A joining node is promoted from learner to voter once it is at most this many entries
  /// behind the leader's commit index...
  uint64_t promote_max_lag = 128;
  /// ...and is removed again (the join fails) if it has not caught up within this time.
  std::chrono::milliseconds catch_up_timeout{60000};
  /// Entries kept before a snapshot's index when the log is compacted, so a follower that is
  /// only a little behind still catches up from the log rather than a whole snapshot.
  uint64_t snapshot_keep_tail = 1024;
  /// Bytes per InstallSnapshot chunk.
  uint64_t snapshot_chunk_bytes = uint64_t{1} << 20;
  /// Raft thesis §9.6: campaign only after a pre-vote round shows a quorum would vote.
  bool pre_vote = true;
  /// Raft thesis §6.2: a leader that hears from no quorum for an election timeout steps down,
  /// and a node that hears from a leader ignores vote requests for that long.
  bool check_quorum = true;
#ifdef INFINITYSTORE_TESTING
  /// Deliberately broken variants (test builds only); the simulator must catch each of them.
  enum class mutation {
    none,
    /// Commit entries of earlier terms by counting replicas (the bug of Raft paper Figure 8),
    /// and, like the leaders in that figure, start a term without a no-op entry.
    commit_by_count,
    /// Grant votes without the election restriction (candidate's log at least as up to date).
    vote_ignores_log,
    /// Acknowledge appends and grant votes before storage made them durable.
    ack_before_durable,
    /// Followers answer reads from their own state without asking the leader.
    stale_follower_reads,
    /// A removed voter keeps counting toward the leader's commit quorum (and is never let go).
    removed_voter_counts,
    /// Send messages of a term (appends, heartbeats, votes) before that term and the vote are
    /// durable: a leader that crashes before its sync can win the same term again and write
    /// different entries under (index, term) pairs a follower already holds.
    send_before_term_durable,
    /// Compact the log through its last entry when a snapshot is taken, not through the
    /// snapshot's index: entries no snapshot holds yet are gone.
    compact_past_snapshot,
    /// Install a snapshot and keep the log entries after it even where the log disagrees with
    /// the snapshot at its index (Raft §7 says discard the whole log then).
    install_keeps_conflicting_log,
  };
  mutation broken = mutation::none;
#endif

  /// Ticks that make up at least `duration` (at least one).
  uint32_t ticks_for(std::chrono::milliseconds duration) const {
    auto tick = tick_interval.count() > 0 ? tick_interval.count() : 1;
    auto ticks = (duration.count() + tick - 1) / tick;
    return static_cast<uint32_t>(ticks > 0 ? ticks : 1);
  }
};

} // namespace infinity
