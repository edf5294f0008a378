// The Raft core: Raft's rules as a deterministic state machine with no I/O and no CAF
// (etcd-io/raft's Step/Tick/Ready, LogCabin's Consensus/RaftConsensus split).
//
//                 election timeout            pre-vote quorum           vote quorum
//   ┌──────────┐ ───────────────▶ ┌───────────────┐ ──────────▶ ┌───────────┐ ──────────▶
//   ┌────────┐ │ follower │                  │ pre-candidate │             │ candidate │ │ leader │
//   └──────────┘ ◀─────────────── └───────────────┘             └───────────┘ └────────┘
//        ▲        higher term, a leader's append, or a quorum of rejections    │                │
//        └─────────────────────────────────────────────────────────────────────┴────────────────┘
//                                   (leader: also when check-quorum finds no quorum)
//
// Inputs are the methods below: messages from peers, ticks, client requests (opaque command
// bytes), and the answers of storage ("persisted up to seq") and of the state machine ("applied
// up to index, with these results"). Every input may produce output, collected in a `ready`
// (ready.hpp) that the node actor takes after each input and carries out. Time is counted in
// ticks and randomness comes from a PRNG seeded at construction, so a core is a pure function of
// its inputs: the simulator replays a seed event for event.
//
// Where things live: election.cpp (terms, votes, role changes), replication.cpp (appends on
// both sides, commit, apply), client_requests.cpp (proposals, ReadIndex reads, forwarding to the
// leader), membership_change.cpp (joins, removals, leadership transfer), snapshot.cpp (log
// compaction and InstallSnapshot), durability.* (what waits for the disk), progress.*
// (per-follower replication state), invariants.cpp (checks after every step).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/raft/durability.hpp"
#include "actors/raft/membership.hpp"
#include "actors/raft/raft_config.hpp"
#include "actors/raft/raft_log.hpp"
#include "actors/raft/ready.hpp"
#include "actors/raft/roles.hpp"
#include "actors/types.hpp"

namespace infinity {

/// Thrown (after being recorded in `first_invariant_violation()`) when an invariant about the
/// node's own state breaks: a bug, so the node stops. Remote input never throws: a message that
/// breaks the protocol is dropped and reported (`protocol_violations`).
struct invariant_violation : std::logic_error {
  using std::logic_error::logic_error;
};

/// The first invariant violation seen in this process, empty if none; the simulator checks it
/// after every step.
const std::string& first_invariant_violation();
void reset_invariant_violations();

class raft_core {
 public:
  /// `recovered` is what storage found; `seed` drives the election timeouts.
  raft_core(raft_config config, recovered_state recovered, uint64_t seed);

  // -- inputs ------------------------------------------------------------------------------------

  void handle(const request_vote& request);
  void handle(const vote_reply& reply);
  void handle(append_entries& request);
  void handle(const append_reply& reply);
  void handle(const forward_request& request);
  void handle(const forward_reply& reply);
  void handle(const join_probe& probe);
  void handle(const join_probe_reply& reply);
  void handle(const timeout_now& request);
  void handle(const install_snapshot& request);
  void handle(const install_snapshot_reply& reply);
  void handle(peer_rpc rpc);

  /// One tick of the logical clock.
  void tick();
  /// Sends the appends that proposals since the last flush made necessary (one batch).
  void flush();

  /// A client write: `command` is appended as an opaque entry and answered once applied.
  void propose(uint64_t request_id, std::string command);
  /// A linearizable read barrier: answered ok with an index once reading this node's state
  /// machine at that index is linearizable.
  void read(uint64_t request_id);
  /// Adds a voter (one change at a time): as a learner first, promoted once caught up.
  void join(uint64_t request_id, std::string id, std::string address);
  /// Removes a voter or learner (one change at a time). Refused when the remaining voters
  /// reachable now could not form a quorum, unless `force`. A leader removing itself hands its
  /// leadership over first.
  void remove(uint64_t request_id, std::string id, bool force);
  /// Hands leadership to `target` (empty: the most up to date voter).
  void transfer(uint64_t request_id, std::string target);

  /// Storage made persist request `seq` (and every earlier one) durable.
  void persisted(uint64_t seq);
  /// The state machine applied everything up to `batch.last_applied`.
  void applied(uint64_t epoch, const applied_batch& batch);

  /// A connection to a peer came up or went down (messages to it are lost meanwhile).
  void peer_up(const std::string& id);
  void peer_down(const std::string& id);

  /// The state machine made a durable snapshot: the log before it may be compacted.
  void snapshot_taken(const snapshot_info& snapshot);
  /// Leader: the chunk of `snapshot` at `offset` a follower needs (`failed`: it cannot be read,
  /// e.g. a newer snapshot replaced it; the transfer starts over).
  void snapshot_chunk_read(const std::string& peer, const snapshot_info& snapshot, uint64_t offset,
                           std::string data, bool failed);
  /// Follower: the received chunk was stored; the snapshot now holds `next_offset` bytes and is
  /// `complete` once durable and verified. `failed`: the receiver refused it (start over).
  void snapshot_chunk_stored(const snapshot_info& snapshot, uint64_t next_offset, bool complete,
                             bool failed);
  /// Follower: the state machine now holds the received snapshot (`snapshot` carries its
  /// configuration, read from the file).
  void state_machine_restored(const snapshot_info& snapshot);
  /// Follower: the received snapshot could not be loaded; the leader starts the transfer over.
  void state_machine_restore_failed(const snapshot_info& snapshot);

  /// Fails every pending client request with `stopping`: the node is shutting down.
  void stop();

  /// The output accumulated since the last call.
  ready take_ready();

  // -- read-only view (status, tests, simulator checks) ------------------------------------------

  const std::string& id() const { return config_.id; }
  raft_role role() const;
  uint64_t term() const { return term_; }
  const std::string& voted_for() const { return voted_for_; }
  const std::string& leader_id() const { return leader_id_; }
  uint64_t commit_index() const { return commit_index_; }
  uint64_t applied_index() const { return applied_index_; }
  uint64_t durable_last_index() const { return pipeline_.durable_last_index(); }
  /// Whether everything this node holds (term, vote, log) is durable.
  bool everything_durable() const {
    return pipeline_.idle() && pipeline_.durable_last_index() == log_.last_index();
  }
  const raft_log& log() const { return log_; }
  raft_log& mutable_log_for_checks() { return log_; }
  /// The voters in effect.
  const membership& members() const { return members_; }
  const membership& learners() const { return learners_; }
  bool removed() const { return removed_at_ > 0; }
  /// The configuration index that removed this node (0 while it is a member).
  uint64_t removed_at_index() const { return removed_at_; }
  const std::string& cluster_id() const { return cluster_id_; }
  uint64_t repair_until_index() const { return repair_until_; }
  /// The latest durable snapshot this node knows of (index 0: none).
  const snapshot_info& snapshot() const { return snapshot_; }
  raft_status status() const;
  /// Messages from peers that broke the protocol (dropped); the simulator's honest peers never
  /// send one, so it treats any as a failure.
  const std::vector<std::string>& protocol_violations() const { return protocol_violations_; }
  const raft_config& config() const { return config_; }

 private:
  enum class message_kind {
    append,
    append_reply,
    vote_request,
    pre_vote_request,
    vote_reply,
    pre_vote_reply_granted,
    other,
  };

  // -- election.cpp
  // --------------------------------------------------------------------------------

  /// Raft's rules for a message's term; false when the message must be dropped.
  bool accept_term(uint64_t message_term, message_kind kind, const std::string& from);
  void become_follower(uint64_t term, const std::string& leader);
  void become_pre_candidate();
  void become_candidate(bool transfer = false);
  void become_leader();
  void record_vote(const std::string& voter, bool granted);
  void tally_votes();
  bool in_lease() const;
  void reset_election_timer();
  void tick_election();
  /// May this node campaign? Not while it repairs entries its disk lost.
  bool may_campaign() const { return repair_until_ == 0; }
  /// May it vote for a candidate whose log ends at (term, index)? While repairing, only if that
  /// log is at least as up to date as the one it lost (protocol-aware recovery).
  bool may_vote_for(uint64_t last_log_term, uint64_t last_log_index) const {
    return repair_until_ == 0 || last_log_term > repair_term_ ||
           (last_log_term == repair_term_ && last_log_index >= repair_until_);
  }

  // -- replication.cpp
  // -----------------------------------------------------------------------------

  void send_append(leader_role& leader, const std::string& peer, bool heartbeat);
  void fill_pipeline(leader_role& leader, const std::string& peer);
  void broadcast_appends(leader_role& leader, bool heartbeat);
  void send_heartbeats(leader_role& leader);
  void tick_leader(leader_role& leader);
  void maybe_commit();
  void advance_commit(uint64_t index);
  void maybe_apply();
  void maybe_finish_repair();

  // -- snapshot.cpp
  // --------------------------------------------------------------------------------------------

  /// Leader: the follower needs entries before our log's first index.
  void send_snapshot(leader_role& leader, const std::string& peer);
  /// A newer durable snapshot: remember it and compact the log before it (keeping a tail).
  void note_snapshot(const snapshot_info& snapshot);

  // -- client_requests.cpp
  // -------------------------------------------------------------------------

  void propose_as_leader(leader_role& leader, request_origin origin, std::string command);
  void read_as_leader(leader_role& leader, request_origin origin);
  void request_read_round(leader_role& leader);
  void confirm_reads(leader_role& leader);
  /// A read round was sent and a quorum has not acknowledged it yet. Reads arriving meanwhile
  /// wait for the next round, sent once this one is confirmed (or with the next heartbeat, if it
  /// was lost): one round in flight at a time, however many reads arrive.
  bool read_round_in_flight(const leader_role& leader) const;
  void answer(const request_origin& origin, client_reply reply);
  client_reply refusal() const;
  /// Not leader: pass a local client's request to the leader (one hop), or refuse (0).
  uint64_t forward(uint64_t request_id, forwarded_op op, std::string command, std::string member_id,
                   std::string member_address, bool force = false);
  void tick_forwarded();
  void fail_forwarded_to(const std::string& peer);
  void serve_follower_reads();
  /// Leadership ended: answer everything the leader role was waiting for.
  void fail_leader_requests(leader_role& leader, reply_status status);

  // -- membership_change.cpp
  // -----------------------------------------------------------------------

  void join_as_leader(leader_role& leader, request_origin origin, std::string id,
                      std::string address);
  void send_join_probe(leader_role& leader);
  void tick_join(leader_role& leader);
  /// A learner of a pending join caught up: promote it.
  void maybe_promote(leader_role& leader);
  void remove_as_leader(leader_role& leader, request_origin origin, const std::string& id,
                        bool force);
  void transfer_as_leader(leader_role& leader, request_origin origin, std::string target,
                          bool then_remove_self = false, bool force = false);
  void tick_transfer(leader_role& leader);
  void maybe_send_timeout_now(leader_role& leader);
  /// Appends a configuration entry and adopts it (leader only).
  uint64_t append_configuration(leader_role& leader, configuration next);
  /// Is a membership change allowed now? Empty if so, else why not (status busy).
  std::string change_blocked(const leader_role& leader) const;
  void refresh_membership();
  void adopt_membership(const log_entry& entry);
  void set_configuration(configuration next, uint64_t index);
  /// At start: was this node removed by the configuration in effect? (see core.cpp)
  void note_removed_before_restart();
  size_t quorum() const { return members_.size() / 2 + 1; }
  /// Lets go of members that left the configuration once they learned it (see `departed_`).
  void hang_up_departed();
  /// A join or removal that arrived before this term's first commit: run it once that commits.
  void run_changes_awaiting_term_commit(leader_role& leader);

  // -- core.cpp
  // ------------------------------------------------------------------------------------

  /// Sends once the current term and vote are durable (at once if they are).
  void send(const std::string& to, peer_rpc rpc);
  /// Sends once everything queued so far is durable (a promise: vote granted, entries held).
  void send_after_durable(const std::string& to, peer_rpc rpc);
  /// The one message that may leave before the term is durable (see election.cpp).
  void send_vote_request(const std::string& to, const request_vote& request);
  bool hard_state_durable() const;
  void queue_hard_state();
  void queue_truncate(uint64_t from);
  void queue_append(const log_entry& entry);
  void maybe_persist();
  /// After every input: start persisting, release what became durable, check invariants.
  void finish_step();
  void event(std::string what);
  void violation(const std::string& from, std::string what);
  /// Drops messages of another cluster (and counts them as violations).
  bool same_cluster(const std::string& from, const std::string& cluster_id);
  leader_role* leader_state() { return std::get_if<leader_role>(&role_); }
  candidate_role* candidate_state() { return std::get_if<candidate_role>(&role_); }

  // -- invariants.cpp
  // ------------------------------------------------------------------------------

  void check_invariants();

  raft_config config_;
  std::mt19937_64 rng_;

  // Durable (mirrored in storage).
  uint64_t term_ = 0;
  std::string voted_for_;
  /// Protocol-aware recovery: nonzero while the node repairs entries its storage lost.
  uint64_t repair_until_ = 0;
  uint64_t repair_term_ = 0;
  std::string cluster_id_;
  raft_log log_;

  // Volatile, every role.
  role_state role_;
  std::string leader_id_;
  /// The leader's HTTP address as it advertised it (followers) or ours (leader).
  std::string leader_http_;
  /// The highest commit index a leader reported (append_entries::commit_hint); status only.
  uint64_t leader_commit_hint_ = 0;
  /// Work counters for status and metrics; they never influence a decision.
  struct work_counters {
    uint64_t appends_sent = 0;
    uint64_t entries_sent = 0;
    uint64_t read_rounds = 0;
    uint64_t reads_served = 0;
  } counters_;
  uint64_t commit_index_ = 0;
  /// Entries handed to the state machine, and entries it reported applied.
  uint64_t apply_sent_index_ = 0;
  uint64_t applied_index_ = 0;
  /// Bumped when the state machine is reset, so answers to older batches are ignored.
  uint64_t apply_epoch_ = 0;
  uint32_t election_elapsed_ = 0;
  uint32_t randomized_election_ticks_ = 0;
  persist_pipeline pipeline_;
  /// Peers with a live connection (messages to others are lost).
  std::set<std::string> connected_;

  // Configuration in effect: the latest config entry in the log (or the bootstrap members).
  membership members_;
  membership learners_;
  uint64_t membership_index_ = 0;
  /// Members dropped by the configuration in effect. The leader keeps replicating to one until
  /// it holds the entry that removed it (else it never learns it left, and campaigns or serves
  /// as a member), or, once that entry committed, for a grace of a few election timeouts.
  struct departure {
    uint64_t index = 0;
    uint32_t ticks_since_commit = 0;
  };
  std::map<std::string, departure> departed_;
  uint32_t departed_grace_ticks() const { return 3 * config_.election_ticks; }
  void tick_departed();
  /// The latest durable snapshot (its index is at most the applied index).
  snapshot_info snapshot_;
  /// Follower: the snapshot being received, and whether it is being loaded.
  std::optional<snapshot_info> receiving_;
  bool restoring_ = false;
  /// Nonzero once a configuration without this node (which was a member) is in effect.
  uint64_t removed_at_ = 0;
  /// Local requests that arrived while leadership was handed over: passed to the new leader as
  /// soon as it is known (or failed as "no leader" when none shows up in time).
  struct handed_over {
    uint64_t request_id = 0;
    forwarded_op op = forwarded_op::write;
    std::string command;
    std::string member_id;
    bool force = false;
    uint32_t ticks_left = 0;
    /// The leader that refused it (nothing appended): wait for another one.
    std::string not_to;
  };
  std::vector<handed_over> handover_;
  /// Nonzero for an election timeout after a leadership transfer's campaign was seen: local
  /// writes and reads that find no leader wait in `handover_` for the new one instead of being
  /// refused at once.
  uint32_t handover_ticks_ = 0;
  void forward_handed_over();

  /// Local client requests passed to the leader and not answered yet, by forward id.
  struct forwarded_call {
    std::string peer;
    uint64_t request_id = 0;
    forwarded_op op = forwarded_op::write;
    uint32_t ticks_left = 0;
    /// Passed on once more already (see handle(forward_reply)): never again.
    bool retried = false;
    /// Writes: the command, to pass on to the next leader if this one refuses.
    std::string command;
    /// Reads: the other local reads that share this one's read index (sent as one batch).
    std::vector<uint64_t> also;
  };
  std::map<uint64_t, forwarded_call> forwarded_;
  /// Follower: reads that arrived since the last flush, forwarded together as one read.
  std::vector<uint64_t> follower_read_batch_;
  /// Answers a forwarded call's request and every read that shares it.
  void answer_call(const forwarded_call& call, const client_reply& reply);
  /// Follower: forwards the batched reads as one (at flush).
  void forward_read_batch();
  uint64_t next_forward_id_ = 0;
  /// Forwarded requests seen recently, per sender: a network that delivers one twice must not
  /// make the leader act on a request it already answered (perhaps with "nothing changed").
  struct seen_requests {
    std::set<uint64_t> ids;
    std::deque<uint64_t> order;
  };
  std::map<std::string, seen_requests> seen_forwards_;
  /// Remembers `id` from `peer`; false if it was seen before.
  bool first_time(const std::string& peer, uint64_t id);
  /// Reads the leader confirmed, waiting until this node has applied their read index.
  std::multimap<uint64_t, client_answer> follower_reads_;
  uint64_t next_probe_id_ = 0;

  ready out_;
  std::vector<std::string> protocol_violations_;
  bool flush_scheduled_ = false;

  // Previous values, for the monotonicity invariants.
  uint64_t checked_term_ = 0;
  uint64_t checked_commit_ = 0;
  std::string checked_vote_;
};

} // namespace infinity
