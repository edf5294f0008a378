// Plain data types shared by the Raft node, the KV state machine, storage and the HTTP layer.
//
// No CAF here, so storage and codecs compile without it; `messages.hpp` adds the CAF `inspect`
// overloads and registers these types for the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
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

// -- client protocol
// -------------------------------------------------------------------------------

/// How a client request (write, linearizable read barrier, membership change) ended.
enum class reply_status : uint8_t {
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
  /// changed. `reason` says why.
  rejected = 7,
  /// The node to be added did not answer; nothing changed. `reason` says why.
  unreachable = 8,
  /// This node was removed from the cluster and no longer serves; nothing changed. Send the
  /// request to a member (`reason` says at which configuration index it was removed).
  removed = 9,
};

const char* to_string(reply_status status);

/// The one answer to every client request of the Raft node.
struct client_reply {
  reply_status status = reply_status::ok;
  /// Writes: the entry's index. Reads: the read index. Joins: the membership entry's index.
  uint64_t index = 0;
  uint64_t term = 0;
  /// Best known leader (may be empty) and its client (HTTP) address, for redirects.
  std::string leader_id;
  std::string leader_http;
  /// Human-readable detail for refusals and failures; empty on success.
  std::string reason;
  /// Writes: what the state machine answered for this entry (opaque to Raft).
  std::string payload;
};

// -- Raft RPCs (one-way messages; replies go back to the node named in `from`) --------------------
//
// Every RPC names its sender and the cluster it belongs to; a node drops RPCs of another
// cluster. (The transport, not the message, is what proves who sent it: see net/.)

/// RequestVote (Raft §5.2). With `pre_vote` set it is the pre-vote of the thesis (§9.6): `term` is
/// the term the sender would campaign in, and granting it changes nothing on the receiver.
struct request_vote {
  std::string from;
  std::string cluster_id;
  uint64_t term = 0;
  uint64_t last_log_index = 0;
  uint64_t last_log_term = 0;
  bool pre_vote = false;
  /// The leader handed its leadership to the sender (TimeoutNow, thesis §3.10): voters that
  /// still hear from that leader vote anyway.
  bool transfer = false;
};

struct vote_reply {
  std::string from;
  std::string cluster_id;
  /// The voter's term; for a granted pre-vote, the term of the request.
  uint64_t term = 0;
  bool granted = false;
  bool pre_vote = false;
};

/// AppendEntries (Raft §5.3); one without entries is a heartbeat.
struct append_entries {
  std::string from;
  std::string cluster_id;
  uint64_t term = 0;
  uint64_t prev_log_index = 0;
  uint64_t prev_log_term = 0;
  std::vector<log_entry> entries;
  uint64_t leader_commit = 0;
  /// Heartbeat round of the leader, echoed back so reads can confirm leadership (ReadIndex).
  uint64_t round = 0;
  /// The leader's client (HTTP) address, so followers can redirect clients to it.
  std::string leader_http;
  /// The leader's own commit index, unclamped: only reported (how far a follower lags, for
  /// readiness), never used to commit (`leader_commit` is what is safe to commit).
  uint64_t commit_hint = 0;
};

struct append_reply {
  std::string from;
  std::string cluster_id;
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
  /// The follower lost entries it may have acknowledged and is catching up (protocol-aware
  /// recovery): its acknowledgements do not count toward a commit yet.
  bool repairing = false;
};

/// A client request a follower passes to the leader (one hop, never forwarded again).
enum class forwarded_op : uint8_t { write = 0, read = 1, join = 2, remove = 3, transfer = 4 };

struct forward_request {
  std::string from;
  std::string cluster_id;
  /// Chosen by the forwarding node; echoed in the reply.
  uint64_t request_id = 0;
  forwarded_op op = forwarded_op::write;
  /// write: the encoded command.
  std::string command;
  /// join: the node to add and its Raft address; remove: the node to remove; transfer: the
  /// node to hand leadership to (empty: the most up to date voter).
  std::string member_id;
  std::string member_address;
  /// remove: even if the remaining voters reachable now could not form a quorum.
  bool force = false;
};

struct forward_reply {
  std::string from;
  std::string cluster_id;
  uint64_t request_id = 0;
  client_reply reply;
};

/// Leader -> a node it is about to add: drop your lone bootstrap state (unless it holds writes of
/// its own) and follow me; the answer comes once that is durable.
struct join_probe {
  std::string from;
  /// The leader's cluster, which the new node adopts.
  std::string cluster_id;
  uint64_t term = 0;
  /// The leader's Raft address, so the new node can connect back.
  std::string leader_address;
  uint64_t probe_id = 0;
};

/// A durable snapshot of the state machine as Raft knows it.
struct snapshot_info {
  /// The last entry it covers, and that entry's term.
  uint64_t index = 0;
  uint64_t term = 0;
  /// The configuration in effect at `index` (encoded) and the index of its entry.
  std::string config;
  uint64_t config_index = 0;
  /// Size of the snapshot file in bytes.
  uint64_t size = 0;
};

/// InstallSnapshot (Raft §7), in chunks: leader -> a follower whose next entry was compacted away.
struct install_snapshot {
  std::string from;
  std::string cluster_id;
  uint64_t term = 0;
  std::string leader_http;
  uint64_t snapshot_index = 0;
  uint64_t snapshot_term = 0;
  /// Size of the whole snapshot file.
  uint64_t total_size = 0;
  /// Where `data` goes in the file; the follower accepts only its current size.
  uint64_t offset = 0;
  std::string data;
  bool last = false;
};

struct install_snapshot_reply {
  std::string from;
  std::string cluster_id;
  uint64_t term = 0;
  uint64_t snapshot_index = 0;
  /// How much of the snapshot the follower holds: the next chunk starts here.
  uint64_t next_offset = 0;
  /// The follower installed the snapshot (its log now continues after snapshot_index).
  bool installed = false;
};

/// Leader -> the voter it hands leadership to: campaign now, skipping pre-vote (thesis §3.10).
struct timeout_now {
  std::string from;
  std::string cluster_id;
  uint64_t term = 0;
};

struct join_probe_reply {
  std::string from;
  std::string cluster_id;
  uint64_t probe_id = 0;
  bool accepted = false;
  std::string reason;
};

// -- KV commands
// ---------------------------------------------------------------------------------------

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
  /// While repairing: the term when the entries were lost, so no lost entry has a later term.
  /// The node votes only for candidates whose log is at least (repair_term,
  /// repair_until_index), which is at least as up to date as the log it lost.
  uint64_t repair_term = 0;
};

inline bool operator==(const hard_state& a, const hard_state& b) {
  return a.term == b.term && a.voted_for == b.voted_for &&
         a.repair_until_index == b.repair_until_index && a.repair_term == b.repair_term;
}

/// The entry just before a log's first entry: what a snapshot replaced. {0, 0} for a log that
/// starts at index 1.
struct log_base {
  uint64_t index = 0;
  uint64_t term = 0;
};

inline bool operator==(const log_base& a, const log_base& b) {
  return a.index == b.index && a.term == b.term;
}
inline bool operator!=(const log_base& a, const log_base& b) {
  return !(a == b);
}

/// One write to durable storage, applied in this order: reset, hard state, truncation, append,
/// compaction. Storage answers `(persisted_atom, seq)` once it and every earlier request are
/// durable.
struct persist_request {
  uint64_t seq = 0;
  bool has_hard_state = false;
  hard_state state;
  /// A snapshot install: discard the entire log and restart it, empty, after `reset_to` (the
  /// snapshot's index and term). Applied before everything else in the request, so `entries`
  /// then start at `reset_to.index + 1`. Below the commit index storage has recorded, it lowers
  /// that record, like a deliberate reset by truncation.
  bool has_reset = false;
  log_base reset_to;
  /// Remove every entry with index >= this before appending; 0 = truncate nothing. At or below
  /// the commit index storage has recorded, this is a deliberate reset of the node's state.
  /// At or below the log's base it is a logic error (those entries are in a snapshot).
  uint64_t truncate_from = 0;
  /// Contiguous; the first one follows the last entry left after truncation (or the base).
  std::vector<log_entry> entries;
  /// Entries up to this index are covered by a durable snapshot, so storage may drop them; 0 =
  /// none. Storage drops what it can cheaply (`file_storage`: whole segments, never one holding
  /// an entry after this index), so the new base is at most this index. At most the last index
  /// after the request.
  uint64_t compact_through = 0;
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
  /// The entry before the first of `entries` (its index and term), which a snapshot covers;
  /// {0, 0} if the log was never compacted or reset.
  log_base base;
  /// Contiguous, starting at index `base.index + 1`.
  std::vector<log_entry> entries;
  /// Set when storage found repairable damage; then `entries` is what would be left after the
  /// repair, and nothing has been changed on disk yet.
  std::optional<storage_damage> damage;
  /// The cluster the data directory belongs to (from its identity); empty until known.
  std::string cluster_id;
  /// The snapshot the state machine starts from (index 0: none, it starts empty).
  snapshot_info snapshot;
};

// -- state machine
// ---------------------------------------------------------------------------------

/// Committed entries for the state machine, contiguous and in log order.
struct apply_batch {
  std::vector<log_entry> entries;
};

/// What the state machine answered for one applied command entry (opaque to Raft, which hands
/// it to the client that proposed the entry).
struct entry_result {
  uint64_t index = 0;
  std::string payload;
};

/// The state machine's answer to an `apply_batch`: everything up to `last_applied` is applied.
struct applied_batch {
  uint64_t last_applied = 0;
  /// One per command entry of the batch, in log order.
  std::vector<entry_result> results;
  /// The newest durable snapshot of the state machine (index 0: none), so Raft can compact.
  snapshot_info snapshot;
};

// -- status
// ----------------------------------------------------------------------------------------

enum class raft_role : uint8_t { follower = 0, pre_candidate = 1, candidate = 2, leader = 3 };

const char* to_string(raft_role role);

/// One follower's replication as its leader sees it.
struct member_progress {
  std::string id;
  bool voter = true;
  uint64_t match_index = 0;
  uint64_t next_index = 0;
  /// Entries the follower is behind the leader's last index.
  uint64_t lag = 0;
  /// Time since the follower last answered.
  uint64_t last_contact_ms = 0;
  /// "probe", "replicate" or "snapshot".
  std::string state;
  bool connected = false;
  bool repairing = false;
};

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
  std::string cluster_id;
  /// Nonzero while the node repairs entries its storage lost (protocol-aware recovery): it
  /// neither votes nor counts toward a commit until it has caught up to this index.
  uint64_t repair_until_index = 0;
  /// Non-voting members (joining nodes catching up).
  std::vector<std::string> learners;
  /// Every member's Raft address, voters and learners.
  std::vector<std::pair<std::string, std::string>> addresses;
  /// As the leader sees its followers (empty on other nodes).
  std::vector<member_progress> progress;
  /// This node was removed from the cluster (at `removed_at_index`) and no longer serves.
  bool removed = false;
  uint64_t removed_at_index = 0;
  /// The voter leadership is being handed to, while a transfer is in progress.
  std::string transfer_target;
  /// The highest commit index a leader told this node about (its own on the leader), so a
  /// follower can tell how far its applied index lags the cluster's (readiness).
  uint64_t leader_commit = 0;
  // Counters since the node process started (filled by the node actor, for metrics).
  /// Times this node saw the leader change to another known leader (or to itself).
  uint64_t leader_changes = 0;
  /// Local write proposals answered: committed and applied, or anything else.
  uint64_t proposals_committed = 0;
  uint64_t proposals_failed = 0;
  /// Entries in this node's log (after compaction).
  uint64_t log_entries = 0;
  /// The newest snapshot Raft knows of (0: none) and the log's first index after compaction.
  uint64_t snapshot_index = 0;
  uint64_t log_first_index = 1;
  // Counters of the Raft core since it started (leader work; 0 on a node that never led).
  /// Appends carrying entries sent to followers, and the entries they carried (batch size).
  uint64_t appends_sent = 0;
  uint64_t entries_sent = 0;
  /// ReadIndex heartbeat rounds, and the reads they confirmed (reads per round).
  uint64_t read_rounds = 0;
  uint64_t reads_served = 0;
};

} // namespace infinity
