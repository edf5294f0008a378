// Plain data types shared by the Raft node, the KV state machine, storage and the HTTP layer.
//
// No CAF here, so storage and codecs compile without it; `messages.hpp` adds the CAF `inspect`
// overloads and registers these types for the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace infinity {

// -- Raft log
// --------------------------------------------------------------------------------------

/// What a log entry carries.
enum class entry_kind : uint8_t {
  /// Appended by every new leader so it can commit entries of earlier terms (Raft §5.4.2).
  noop = 0,
  /// A serialized `kv_command` for the state machine.
  command = 1,
  /// A serialized cluster membership (reserved for membership changes).
  config = 2,
};

struct log_entry {
  uint64_t term = 0;
  uint64_t index = 0;
  entry_kind kind = entry_kind::noop;
  std::string data;
};

inline bool operator==(const log_entry& a, const log_entry& b) {
  return a.term == b.term && a.index == b.index && a.kind == b.kind && a.data == b.data;
}
inline bool operator!=(const log_entry& a, const log_entry& b) {
  return !(a == b);
}

// -- Raft RPCs (one-way messages; replies go back to the node named in `from`) --------------------

/// RequestVote (Raft §5.2). With `pre_vote` set it is the pre-vote of the thesis (§9.6): `term` is
/// the term the sender would campaign in, and granting it changes nothing on the receiver.
struct request_vote {
  std::string from;
  uint64_t term = 0;
  uint64_t last_log_index = 0;
  uint64_t last_log_term = 0;
  bool pre_vote = false;
};

struct vote_reply {
  std::string from;
  /// The voter's term; for a granted pre-vote, the term of the request.
  uint64_t term = 0;
  bool granted = false;
  bool pre_vote = false;
};

/// AppendEntries (Raft §5.3); one without entries is a heartbeat.
struct append_entries {
  std::string from;
  uint64_t term = 0;
  uint64_t prev_log_index = 0;
  uint64_t prev_log_term = 0;
  std::vector<log_entry> entries;
  uint64_t leader_commit = 0;
  /// Heartbeat round of the leader, echoed back so reads can confirm leadership (ReadIndex).
  uint64_t round = 0;
  /// The leader's client (HTTP) address, so followers can redirect clients to it.
  std::string leader_http;
};

struct append_reply {
  std::string from;
  uint64_t term = 0;
  bool success = false;
  /// Echo of the request's `prev_log_index`, so the leader can recognise stale rejections.
  uint64_t prev_log_index = 0;
  /// On success: the follower's log matches the leader's up to here, durably.
  uint64_t match_index = 0;
  /// On rejection: where the leader should retry (fast back-off, thesis §5.3).
  uint64_t conflict_index = 0;
  /// On rejection: the term of the follower's entry at `prev_log_index`, 0 if it has none.
  uint64_t conflict_term = 0;
  uint64_t round = 0;
};

// -- KV commands and client proposals
// --------------------------------------------------------------

enum class kv_op : uint8_t { set = 0, del = 1 };

/// A state machine command. `client_id` and `sequence` identify it, so a command delivered twice
/// (a retried or duplicated proposal) is applied once. `client_id` 0 opts out of deduplication.
struct kv_command {
  kv_op op = kv_op::set;
  std::string key;
  std::string value;
  uint64_t client_id = 0;
  uint64_t sequence = 0;
};

/// Outcome of a proposal or of a read barrier, as seen by whoever asked.
enum class propose_status : uint8_t {
  /// Committed and applied at `index` (read barrier: safe to read once `index` is applied).
  ok = 0,
  /// This node is not the leader and did not forward; nothing was appended. Try `leader_id`.
  not_leader = 1,
  /// Appended, but leadership changed before the outcome was known: it may still commit.
  leadership_lost = 2,
  /// No answer in time; the command may or may not take effect.
  timeout = 3,
  /// No leader is known right now; nothing was appended. Retry later.
  no_leader = 4,
  /// The node is shutting down; the command may or may not take effect.
  stopping = 5,
  /// Membership change refused for now (another one is in progress, or the leader has not yet
  /// committed an entry of its term); nothing changed. Retry shortly.
  busy = 6,
  /// Membership change refused for good (e.g. the joining node holds data of its own); nothing
  /// changed. `leader_id` carries the reason.
  rejected = 7,
  /// The node to be added did not answer; nothing changed. `leader_id` carries the reason.
  unreachable = 8,
};

const char* to_string(propose_status status);

struct propose_result {
  propose_status status = propose_status::ok;
  uint64_t index = 0;
  uint64_t term = 0;
  /// Best known leader (may be empty).
  std::string leader_id;
};

// -- storage seam
// ----------------------------------------------------------------------------------

/// The Raft state that must survive a crash besides the log.
struct hard_state {
  uint64_t term = 0;
  std::string voted_for;
  /// Protocol-aware recovery (Alagappan et al., FAST 2018): storage lost entries up to here that
  /// may have been acknowledged, so the node neither votes nor counts toward commit until it has
  /// caught up from a leader to this index. 0 = healthy.
  uint64_t repair_until_index = 0;
};

inline bool operator==(const hard_state& a, const hard_state& b) {
  return a.term == b.term && a.voted_for == b.voted_for &&
         a.repair_until_index == b.repair_until_index;
}

/// One write to durable storage, applied in this order: hard state, truncation, append.
/// Storage answers `(persisted_atom, seq)` once it and every earlier request are durable.
struct persist_request {
  uint64_t seq = 0;
  bool has_hard_state = false;
  hard_state state;
  /// Remove every entry with index >= this before appending; 0 = truncate nothing. At or below
  /// the commit index storage has recorded, this is a deliberate reset of the node's state.
  uint64_t truncate_from = 0;
  /// Contiguous; the first one follows the last entry left after truncation.
  std::vector<log_entry> entries;
  /// The node's commit index when it made the request (at most the last index after it).
  /// Storage records it as evidence of how long the log must be at least.
  uint64_t commit_index = 0;
  /// The cluster this node belongs to, once known; storage records it durably before
  /// acknowledging the request. Empty = no change; another than the recorded one is an error.
  std::string cluster_id;
};

/// Who a data directory belongs to.
struct node_identity {
  std::string node_id;
  /// Empty until known (a node started with --join learns it when it is added).
  std::string cluster_id;
};

inline bool operator==(const node_identity& a, const node_identity& b) {
  return a.node_id == b.node_id && a.cluster_id == b.cluster_id;
}

/// Damage storage found at recovery that cutting the log's tail would repair, at the price of
/// entries this node may have acknowledged.
struct storage_damage {
  /// One sentence naming the file and what is wrong with it.
  std::string description;
  /// The log is cut after this index.
  uint64_t keep_last_index = 0;
  /// Highest index that may have been synced (and acknowledged) and would be lost; at least
  /// `keep_last_index + 1`.
  uint64_t possibly_acknowledged_up_to = 0;
};

/// What a node finds in its storage when it starts.
struct recovered_state {
  hard_state state;
  /// Contiguous, starting at index 1.
  std::vector<log_entry> entries;
  /// Set when storage found repairable damage; then `entries` is what would be left after the
  /// repair, and nothing has been changed on disk yet.
  std::optional<storage_damage> damage;
};

// -- state machine
// ---------------------------------------------------------------------------------

/// Committed entries for the state machine, contiguous and in log order.
struct apply_batch {
  std::vector<log_entry> entries;
};

// -- status
// ----------------------------------------------------------------------------------------

enum class raft_role : uint8_t { follower = 0, pre_candidate = 1, candidate = 2, leader = 3 };

const char* to_string(raft_role role);

struct raft_status {
  std::string id;
  raft_role role = raft_role::follower;
  uint64_t term = 0;
  std::string leader_id;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_log_index = 0;
  std::vector<std::string> members;
  /// Addresses of the leader, if known: client (HTTP) and Raft.
  std::string leader_http;
  std::string leader_raft;
};

} // namespace infinity
