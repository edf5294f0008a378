// The Raft node actor: one per process, owner of term, vote, the in-memory log and commit index.
//
//                 election timeout            pre-vote quorum           vote quorum
//   ┌──────────┐ ───────────────▶ ┌───────────────┐ ──────────▶ ┌───────────┐ ──────────▶
//   ┌────────┐ │ follower │                  │ pre-candidate │             │ candidate │ │ leader │
//   └──────────┘ ◀─────────────── └───────────────┘             └───────────┘ └────────┘
//        ▲        higher term, a leader's append, or a quorum of rejections    │                │
//        └─────────────────────────────────────────────────────────────────────┴────────────────┘
//                                   (leader: also when check-quorum finds no quorum)
//
// Each role is a CAF behavior; `become_follower`, `become_pre_candidate`, `become_candidate` and
// `become_leader` are the only places that switch it. Everything the node depends on arrives as
// messages, which is what lets the simulator run it deterministically:
//   clock     -> `tick_atom` every `tick_interval` (delayed_send; simulated time under test)
//   random    -> a PRNG seeded from the spawn argument (election timeouts only)
//   network   -> peer handles given by `(peer_up_atom, id, actor)`; Raft RPCs are one-way messages
//                naming their sender, so a handle can be a remote proxy or a simulated link
//   disk      -> the storage actor (`persist_request` -> `persisted_atom`); the node grants a vote,
//                acknowledges an append, or counts its own copy only once storage says durable
//   state     -> the KV actor receives committed entries (`apply_batch`) and reports `applied_atom`
//
// Client protocol (any sender, any node: followers forward to the leader, one hop at most):
//   (propose_atom, kv_command) -> propose_result   ok once committed *and* applied at `index`
//   (read_atom)                -> propose_result   ok: reading this node's KV actor now is
//                                                  linearizable (ReadIndex, thesis §6.4)
//   (status_atom)              -> raft_status
// Between nodes, forwarded requests add a `true` flag: (propose_atom, kv_command, bool) and
// (read_atom, bool); a node that is not leader refuses them instead of forwarding again.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/raft/membership.hpp"
#include "actors/raft/raft_log.hpp"
#include "actors/types.hpp"

namespace infinity {

/// Tunables of one Raft node. Times are in ticks of `tick_interval`.
struct raft_config {
  std::string id;
  /// This node's client (HTTP) address, advertised to followers while leading.
  std::string http_address;
  /// Bootstrap voters, used only while the log holds no membership entry (the simulator); real
  /// nodes start from a membership entry at index 1 instead. Empty: wait to be added.
  std::vector<std::string> members;
  /// Membership in effect changed (the app connects to the new members).
  std::function<void(const membership&)> on_membership;
  /// The leader needs a connection to a node it is about to add (the app dials it).
  std::function<void(const std::string& id, const std::string& address)> connect_peer;
  /// A node the leader dialled for a join that did not happen: the app may hang up.
  std::function<void(const std::string& id)> disconnect_peer;
  /// How long a join may wait for the new node to answer.
  caf::timespan join_timeout = std::chrono::seconds(5);
  caf::timespan tick_interval = std::chrono::milliseconds(20);
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
  caf::timespan forward_timeout = std::chrono::seconds(3);
  /// Raft thesis §9.6: campaign only after a pre-vote round shows a quorum would vote.
  bool pre_vote = true;
  /// Raft thesis §6.2: a leader that hears from no quorum for an election timeout steps down,
  /// and a node that hears from a leader ignores vote requests for that long.
  bool check_quorum = true;
  /// One line per event that matters (role change, term, leader); may be empty.
  std::function<void(const std::string&)> log_event;
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
    /// Send messages of a term (appends, heartbeats, votes) before that term and the vote are
    /// durable: a leader that crashes before its sync can win the same term again and write
    /// different entries under (index, term) pairs a follower already holds.
    send_before_term_durable,
  };
  mutation broken = mutation::none;
#endif
};

/// Thrown (after being recorded in `first_invariant_violation()`) when a Raft invariant breaks.
struct invariant_violation : std::logic_error {
  using std::logic_error::logic_error;
};

/// The first invariant violation seen in this process, empty if none; the simulator checks it
/// after every step because CAF turns the exception into the actor's exit reason.
const std::string& first_invariant_violation();
void reset_invariant_violations();

/// State and logic of a Raft node actor. Owned by the actor; never touched from other threads.
/// Tests read it through `raft_node_of` while the actor is alive.
class raft_node {
 public:
  using actor_pointer = caf::stateful_actor<raft_node>*;

  explicit raft_node(actor_pointer self);

  static inline const char* name = "raft_node";

  caf::behavior start(raft_config config, recovered_state recovered, caf::actor storage,
                      caf::actor kv, uint64_t seed);

  // -- read-only view (status, simulator checks) -------------------------------------------------

  const std::string& id() const { return config_.id; }
  raft_role role() const { return role_; }
  uint64_t term() const { return term_; }
  const std::string& voted_for() const { return voted_for_; }
  const std::string& leader_id() const { return leader_id_; }
  uint64_t commit_index() const { return commit_index_; }
  uint64_t applied_index() const { return applied_index_; }
  uint64_t durable_last_index() const { return durable_last_index_; }
  const raft_log& log() const { return log_; }
  const membership& members() const { return members_; }
  raft_log& mutable_log_for_checks() { return log_; }
  raft_status status() const;

 private:
  /// Per-follower replication state. Leader only.
  struct follower_progress {
    enum class mode {
      /// Match unknown: one append at a time until the follower accepts.
      probe,
      /// Pipelined: up to `max_inflight_appends` appends in flight.
      replicate,
    };
    mode state = mode::probe;
    uint64_t next_index = 1;
    uint64_t match_index = 0;
    /// Last index of each append in flight (replicate mode), oldest first.
    std::deque<uint64_t> inflight;
    bool probe_outstanding = false;
    uint32_t ticks_since_ack = 0;
    /// Highest heartbeat round this follower answered in the current term.
    uint64_t acked_round = 0;
    /// Heard from in the current check-quorum period.
    bool recently_active = false;
  };

  struct pending_proposal {
    uint64_t term;
    caf::response_promise promise;
  };

  struct pending_read {
    uint64_t read_index;
    uint64_t round;
    bool confirmed;
    caf::response_promise promise;
  };

  /// A reply that may leave only once storage has made everything written before it durable.
  struct deferred_send {
    uint64_t required_seq;
    std::string to;
    caf::message message;
  };

  enum class message_kind {
    append,
    append_reply,
    vote_request,
    pre_vote_request,
    vote_reply,
    pre_vote_reply_granted,
  };

  // -- behaviors and role transitions (the only places that call become) -------------------------

  caf::message_handler common_handlers();
  caf::behavior follower_behavior();
  caf::behavior candidate_behavior();
  caf::behavior leader_behavior();

  void become_follower(uint64_t term, const std::string& leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();

  // -- message handling --------------------------------------------------------------------------

  /// Raft's rules for a message's term; false when the message must be dropped.
  bool accept_term(uint64_t message_term, message_kind kind, const std::string& from);
  void handle_request_vote(const request_vote& request);
  void handle_vote_reply(const vote_reply& reply);
  void handle_append_entries(append_entries& request);
  void handle_append_reply(const append_reply& reply);
  void handle_tick();
  caf::result<propose_result> handle_propose(kv_command& command);
  caf::result<propose_result> handle_read();
  /// Not leader: pass a client's proposal or read to the leader (one hop), or refuse.
  caf::result<propose_result> forward_proposal(kv_command& command, bool forwarded);
  caf::result<propose_result> forward_read(bool forwarded);
  propose_result refusal() const;
  caf::result<propose_result> handle_join(const std::string& id, const std::string& address);
  caf::result<propose_result> forward_join(const std::string& id, const std::string& address,
                                           bool forwarded);
  void send_join_probe();
  caf::result<bool, std::string> handle_join_reset(const std::string& leader);

  // -- membership --------------------------------------------------------------------------------

  size_t quorum() const { return members_.size() / 2 + 1; }
  /// Re-reads the latest membership from the log (after truncation or at start).
  void refresh_membership();
  void adopt_membership(const log_entry& entry);
  void set_membership(membership members, uint64_t index);

  // -- leader ------------------------------------------------------------------------------------

  void send_append(const std::string& peer, bool heartbeat);
  void broadcast_appends(bool heartbeat);
  /// Sends as many appends to `peer` as its mode and window allow.
  void fill_pipeline(const std::string& peer);
  /// Heartbeats to every follower; starts a new read-confirmation round if one was requested.
  void send_heartbeats();
  void request_read_round();
  void maybe_commit();
  void confirm_reads();
  void fail_leader_requests(propose_status status);

  // -- candidate ---------------------------------------------------------------------------------

  void record_vote(const std::string& voter, bool granted);
  void tally_votes();

  // -- persistence, applying, sending ------------------------------------------------------------

  void queue_hard_state();
  void queue_truncate(uint64_t from);
  void queue_append(const log_entry& entry);
  uint64_t required_seq() const;
  /// Whether the current term and vote are durable. Nothing that carries a term may leave the
  /// node before: after a crash it would come back in an older term and could act in this one
  /// again, differently.
  bool hard_state_durable() const;
  void maybe_persist();
  void on_persisted(uint64_t seq);
  void maybe_apply();
  void on_applied(uint64_t index);
  void advance_commit(uint64_t index);
  void send_after_durable(const std::string& to, caf::message message);
  /// Sends once the current term and vote are durable (at once if they are).
  template <class... Ts>
  void send_to(const std::string& to, Ts&&... xs);
  void send_vote_request(const std::string& to, const request_vote& request);

  void reset_election_timer();
  bool in_lease() const;
  void finish_step();
  void check_invariants();
  void log_event(const std::string& what);

  actor_pointer self_;
  raft_config config_;
  caf::actor storage_;
  caf::actor kv_;
  std::mt19937_64 rng_;
  /// Ordered so that broadcasts go out in the same order in every run.
  std::map<std::string, caf::actor> peers_;

  // Durable (mirrored in storage).
  uint64_t term_ = 0;
  std::string voted_for_;
  raft_log log_;

  // Volatile, every role.
  raft_role role_ = raft_role::follower;
  std::string leader_id_;
  /// The leader's HTTP address as it advertised it (followers) or ours (leader).
  std::string leader_http_;
  uint64_t commit_index_ = 0;
  /// Entries handed to the KV actor.
  uint64_t apply_sent_index_ = 0;
  /// Entries the KV actor reported applied.
  uint64_t applied_index_ = 0;
  uint32_t election_elapsed_ = 0;
  uint32_t randomized_election_ticks_ = 0;
  uint32_t heartbeat_elapsed_ = 0;

  // Persistence pipeline: at most one request in flight, the rest merged into `queued_`.
  persist_request queued_;
  bool queued_dirty_ = false;
  bool persist_in_flight_ = false;
  uint64_t sent_seq_ = 0;
  uint64_t durable_seq_ = 0;
  uint64_t inflight_last_index_ = 0;
  uint64_t durable_last_index_ = 0;
  /// The persist request that makes the current term and vote durable.
  uint64_t hard_state_seq_ = 0;
  std::vector<deferred_send> deferred_;
  /// Actions (such as answering a join reset) that wait for durability, like `deferred_`.
  std::vector<std::pair<uint64_t, std::function<void()>>> deferred_actions_;
  /// Bumped by a join reset so answers to older apply batches are ignored.
  uint64_t apply_epoch_ = 0;

  // Membership in effect: the latest config entry in the log (or the bootstrap members).
  membership members_;
  uint64_t membership_index_ = 0;

  /// Reads the leader confirmed, waiting until this node has applied their read index.
  struct follower_read {
    propose_result result;
    caf::response_promise promise;
  };
  std::multimap<uint64_t, follower_read> follower_reads_;
  /// A request forwarded to the leader and not answered yet. CAF does not fail requests to a
  /// remote peer whose connection dropped (they only time out), so peer_down answers them.
  struct forwarded_call {
    std::string peer;
    caf::response_promise promise;
    /// What the client gets if the connection to `peer` drops first.
    propose_result if_peer_down;
    bool done = false;
  };
  std::vector<std::shared_ptr<forwarded_call>> forwarded_calls_;
  std::shared_ptr<forwarded_call> track_forward(const std::string& peer,
                                                caf::response_promise promise,
                                                propose_result if_peer_down);

  // Candidate and pre-candidate only.
  std::map<std::string, bool> votes_;
  uint64_t self_vote_seq_ = 0;

  // Leader only.
  std::map<std::string, follower_progress> progress_;
  std::map<uint64_t, pending_proposal> pending_proposals_;
  std::vector<pending_read> pending_reads_;
  /// Reads that arrived before this term's first entry committed; they wait for it.
  std::vector<caf::response_promise> reads_awaiting_term_commit_;
  uint64_t round_ = 0;
  bool read_round_requested_ = false;
  /// A join waiting for the new node to answer the reset probe.
  struct pending_join_state {
    std::string id;
    std::string address;
    caf::response_promise promise;
    uint32_t ticks = 0;
    bool probe_sent = false;
  };
  std::optional<pending_join_state> pending_join_;
  bool flush_scheduled_ = false;

  // Previous values, for monotonicity invariants.
  uint64_t checked_term_ = 0;
  uint64_t checked_commit_ = 0;
  std::string checked_vote_;
};

using raft_actor_type = caf::stateful_actor<raft_node>;

caf::actor spawn_raft_node(caf::actor_system& system, raft_config config, recovered_state recovered,
                           caf::actor storage, caf::actor kv, uint64_t seed);

/// The state of a live node actor (tests only; the caller must run on the actor's thread or
/// under the test coordinator).
raft_node& raft_node_of(const caf::actor& node);

} // namespace infinity
