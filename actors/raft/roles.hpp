// Per-role state of a Raft core, held in a std::variant: state that belongs to one role exists
// only while the node has that role, so a leader's progress, pending proposals and reads cannot
// outlive its leadership (the role switch hands them to the code that fails them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "actors/raft/progress.hpp"

namespace infinity {

/// Who waits for the outcome of a client request: a local client (the request id the node actor
/// chose) or the node that forwarded it (its id and its request id).
struct request_origin {
  std::string peer;
  uint64_t request_id = 0;
  bool local() const { return peer.empty(); }
};

struct follower_role {};

/// Pre-candidate (thesis §9.6) and candidate (Raft §5.2).
struct candidate_role {
  bool pre_vote = false;
  /// Voter -> granted. Our own vote is in here only once it is durable.
  std::map<std::string, bool> votes;
  /// The persist request that makes our vote for ourselves durable (candidate only).
  uint64_t self_vote_seq = 0;
};

struct leader_role {
  /// One per other voter, ordered so broadcasts go out in the same order in every run.
  std::map<std::string, follower_progress> progress;

  struct pending_write {
    uint64_t term = 0;
    request_origin origin;
  };
  /// Proposals (and membership changes) by log index, answered once applied.
  std::map<uint64_t, pending_write> writes;

  /// ReadIndex (thesis §6.4): a read is answered once a heartbeat round that started after it
  /// was acknowledged by a quorum, and the state machine applied its read index.
  struct pending_read {
    uint64_t read_index = 0;
    uint64_t round = 0;
    bool confirmed = false;
    request_origin origin;
  };
  std::vector<pending_read> reads;
  /// Reads that arrived before this term's first entry committed; they wait for it.
  std::vector<request_origin> reads_awaiting_term_commit;
  /// Joins and removals that arrived before this term's first entry committed (e.g. the removal
  /// of the leader that just handed over to us): they wait for it instead of being refused.
  struct pending_change {
    bool join = false;
    request_origin origin;
    std::string id;
    std::string address;
    bool force = false;
  };
  std::vector<pending_change> changes_awaiting_term_commit;
  uint64_t round = 0;
  bool read_round_requested = false;

  /// A join in progress (one membership change at a time): first the probe of the new node,
  /// then the new node catching up as a learner until it is promoted to voter.
  struct pending_join {
    enum class phase { probing, catching_up };
    phase step = phase::probing;
    std::string id;
    std::string address;
    request_origin origin;
    uint32_t ticks = 0;
    uint64_t probe_id = 0;
    bool probe_sent = false;
    /// Index of the configuration entry that added the node as a learner.
    uint64_t learner_index = 0;
  };
  std::optional<pending_join> join;

  /// A leadership transfer in progress (thesis §3.10): proposals wait meanwhile.
  struct pending_transfer {
    std::string target;
    request_origin origin;
    uint32_t ticks = 0;
    bool timeout_now_sent = false;
    /// The leader removes itself: once the new leader is known, the removal goes to it.
    bool then_remove_self = false;
    bool force = false;
  };
  std::optional<pending_transfer> transfer;
  /// Proposals that arrived during a transfer, in arrival order.
  std::vector<std::pair<request_origin, std::string>> paused;
  uint32_t heartbeat_elapsed = 0;
};

using role_state = std::variant<follower_role, candidate_role, leader_role>;

} // namespace infinity
