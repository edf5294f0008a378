// Deterministic simulation of a whole InfinityStore cluster on CAF's test coordinator.
//
// The real Raft node, KV and storage actors run in one actor system whose scheduler is driven by
// the test, one message or one timer at a time, on simulated time. Between nodes sit link actors
// (one per direction) that drop, delay, duplicate and reorder messages and honour partitions;
// each node's disk is the real `file_storage` on a simulated file system (sim_file_system) that
// loses power like a real disk: a crash keeps a prefix of the operations issued since the last
// sync, in issue order, and may tear the last one kept. Every random
// choice (faults, delays, election jitter) derives from one seed, so a failing run replays
// exactly from its seed number.
//
// After every step the checkers verify Raft's safety properties: election safety, log matching,
// leader completeness, state machine safety, monotonic commit, and the nodes' own invariants.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/kv/state_machine.hpp"
#include "actors/protocols.hpp"
#include "actors/raft/node_actor.hpp"
#include "actors/storage/file_storage.hpp"
#include "tests/support/linearizability.hpp"
#include "tests/support/sim_file_system.hpp"

namespace infinity::sim {

/// Every fault knob, in the spirit of TigerBeetle's packet simulator options.
struct fault_options {
  double drop_probability = 0.0;
  double duplicate_probability = 0.0;
  caf::timespan min_delay = std::chrono::milliseconds(1);
  caf::timespan max_delay = std::chrono::milliseconds(5);
  /// Upper bound of the simulated fsync latency.
  caf::timespan max_sync_delay = std::chrono::milliseconds(2);
  /// Real fsync latency has a long tail: this fraction of syncs takes up to `max_slow_sync_delay`.
  double slow_sync_probability = 0.0;
  /// The same for syncs that carry a new term or vote.
  double slow_hard_state_sync_probability = 0.0;
  /// A node that loses power takes with it what it had sent but the network had not delivered
  /// yet: each such message is lost with this probability (a crash in the middle of a
  /// broadcast reaches some peers and not others).
  double lose_in_flight_on_crash = 0.0;
  /// A new leader is killed and restarted at once, within `max_new_leader_reboot_delay` of its
  /// election, with this probability: a crash right after an election, the moment when what a
  /// node has made durable matters most.
  double reboot_new_leader_probability = 0.0;
  caf::timespan max_new_leader_reboot_delay = std::chrono::milliseconds(60);
  /// Chance that the last write a crash keeps is torn.
  double tear_probability = 0.25;
  /// The storage's write buffer and segment size: small ones make a crash land between a
  /// write and its sync, and segments roll over.
  std::size_t write_buffer_bytes = 0;
  uint64_t max_segment_bytes = 16 * 1024;
  /// A node is killed and restarted right after it sent a message while part of its state
  /// (term, vote, log) was not durable yet, with this probability per such message.
  double reboot_while_unsynced_probability = 0.0;
  caf::timespan max_slow_sync_delay = std::chrono::milliseconds(500);
};

/// A client operation's outcome as the client saw it.
struct proposal_record {
  uint64_t client_id = 0;
  uint64_t sequence = 0;
  std::string key;
  std::string value;
  reply_status status = reply_status::timeout;
  uint64_t index = 0;
  bool completed = false;
};

struct applied_record {
  uint64_t index;
  uint64_t term;
  entry_kind kind;
  std::string data;
  kv_state_machine::apply_effect effect;
};

/// How often the disk faults struck (summed over a sweep, printed by the tests).
struct disk_fault_counts {
  uint64_t torn_writes = 0;
  uint64_t unsynced_operations_lost = 0;
  uint64_t crashes_at_disk_calls = 0;
  uint64_t bit_rots = 0;
  uint64_t repairs_started = 0;
  uint64_t repairs_finished = 0;
  uint64_t snapshots_written = 0;
  uint64_t snapshots_installed = 0;
  void add(const disk_fault_counts& other);
  std::string describe() const;
};

class cluster {
 public:
  struct options {
    size_t nodes = 3;
    uint64_t seed = 1;
    fault_options faults;
    raft_config base_config; // id and members are filled in per node
    size_t trace_capacity = 200;
    /// The last `lone_nodes` nodes start as one-node clusters of their own (to be joined).
    size_t lone_nodes = 0;
    /// Each node's state machine snapshots itself every this many applied entries (0: never);
    /// the log is then compacted down to `base_config.snapshot_keep_tail` entries.
    uint64_t snapshot_entries = 0;
    size_t snapshot_retain = 2;
  };

  explicit cluster(options opts);
  ~cluster();

  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  // -- driving ---------------------------------------------------------------------------------

  /// Runs one message or fires one timer, then checks every safety property.
  /// Returns false when nothing is left to do. Throws `check_failure` on a violation.
  bool step();
  /// Steps until simulated time has advanced by `duration`.
  void run_for(caf::timespan duration);
  /// Steps until `done()` holds or `limit` of simulated time has passed; returns done().
  template <class Predicate>
  bool run_until(Predicate done, caf::timespan limit) {
    auto deadline = now() + limit;
    while (!done()) {
      if (now() >= deadline || !step())
        return done();
    }
    return true;
  }
  caf::timespan now() const;

  // -- faults ----------------------------------------------------------------------------------

  fault_options& faults() { return opts_.faults; }
  /// Cuts the link from -> to (one way).
  void cut(size_t from, size_t to);
  /// Undoes `cut(from, to)` and nothing else.
  void restore_link(size_t from, size_t to);
  void isolate(size_t node);
  /// Splits the nodes into two sides that cannot talk to each other.
  void partition(const std::set<size_t>& side);
  void heal();
  /// Drops reboots that reactive faults scheduled but did not run yet.
  void cancel_scheduled_faults();
  void crash(size_t node);
  void restart(size_t node);
  bool alive(size_t node) const { return nodes_[node].alive; }
  uint64_t incarnation(size_t node) const { return nodes_[node].incarnation; }
  /// Stalls one node's disk for `duration` from now: no sync completes before it ends, while
  /// the node's network keeps working (a slow or hung fsync). A crash meanwhile loses everything
  /// written since the last completed sync.
  void stall_disk(size_t node, caf::timespan duration);

  // -- clients ---------------------------------------------------------------------------------

  /// Sends a proposal to `node` and records its outcome; returns the record's position.
  size_t propose(size_t node, const std::string& key, const std::string& value,
                 caf::timespan timeout = std::chrono::seconds(2));
  /// Starts a client actor that proposes to the believed leader every [min, max] interval.
  void start_client(caf::timespan min_interval, caf::timespan max_interval, size_t keys);
  void stop_client();
  /// Starts `clients` actors that each run one operation at a time (set, delete, linearizable
  /// get) on `keys` keys against random nodes, recording every invocation and outcome.
  void start_history_clients(size_t clients, size_t keys);
  void stop_history_clients();
  /// Linearizable reads of keys k0..k(keys-1) on every node, recorded in the history.
  void final_reads(size_t keys);
  const std::vector<lin::operation>& history() const { return history_; }
  /// True when no recorded operation is still waiting for its outcome.
  bool history_settled() const;
  /// Appends one operation (history clients only).
  size_t begin_operation(lin::operation op);
  void end_operation(size_t position, lin::outcome outcome, uint64_t complete);
  lin::operation& operation_at(size_t position) { return history_[position]; }
  /// What the node's HTTP sessions read from (null while the node is down).
  std::shared_ptr<const local_read_view> read_view(size_t node) const {
    return nodes_[node].alive ? nodes_[node].read_view : nullptr;
  }
  uint64_t now_ns() const { return static_cast<uint64_t>(now().count()); }
  const std::vector<proposal_record>& proposals() const { return proposals_; }
  /// Asks `node` to add `joining` to the cluster; returns the position in `joins()`.
  size_t join(size_t node, size_t joining);
  const std::vector<proposal_record>& joins() const { return joins_; }
  /// Asks `node` to remove `target` (force: even if no quorum would be left reachable), or to
  /// hand leadership to `target` (none: the most up to date voter); recorded in `joins()` too.
  size_t remove(size_t node, size_t target, bool force);
  size_t transfer(size_t node, std::optional<size_t> target);
  /// Whether `node` is a voter or learner of the live leader's configuration (every node if no
  /// leader is known): removed and never-joined nodes need not converge.
  bool member_of_leader_configuration(size_t node);
  /// A node started alone that has not joined the main cluster yet (clients leave it alone: it
  /// would acknowledge writes of its own cluster).
  bool is_lone(size_t index);
  /// `node`, or the next node after it that is not lone.
  size_t skip_lone(size_t node);

  // -- inspection ------------------------------------------------------------------------------

  size_t size() const { return nodes_.size(); }
  const std::string& id(size_t node) const { return nodes_[node].id; }
  raft_core& node(size_t index);
  /// The live leader with the highest term, if any.
  std::optional<size_t> leader();
  const std::vector<applied_record>& applied(size_t node) const { return nodes_[node].applied; }
  /// What the node's disk holds durably: everything synced (or what survived its last crash).
  recovered_state durable_state(size_t node) const;
  /// Media corruption of a node that is down: a byte of the newest synced log record flips.
  /// The node then finds damage when it starts and repairs it from the leader.
  bool rot(size_t node);
  const disk_fault_counts& disk_faults() const { return disk_faults_; }
  /// Whether bit rot was injected since the node last started.
  bool rotten(size_t node) const { return nodes_[node].rotten; }
  /// The node's next `calls`-th disk operation kills it (a crash in the middle of a write or
  /// sync, at a system call boundary).
  void crash_at_disk_call(size_t node, uint64_t calls);
  /// The last events, oldest first, for failure reports.
  std::string trace_tail(size_t lines = 60) const;
  uint64_t steps() const { return steps_; }

  /// True when a leader exists, every live node applied everything the leader has committed and
  /// the leader committed its whole log.
  bool converged();
  /// One line per node: role, term, leader, commit, applied, log.
  std::string describe_nodes();

  /// Final checks after a heal phase: every acknowledged proposal is applied exactly once, at
  /// its index, on every live node. Throws `check_failure` otherwise.
  void check_acknowledged_applied();

  void record(std::string line);

  // Link plumbing (used by link actors).
  bool link_up(size_t from, size_t to) const;
  caf::actor current_handle(size_t node) const;
  std::mt19937_64& rng() { return rng_; }
  /// Records promises a node makes on the wire (acknowledged appends, granted votes).
  void observe_sent(size_t from, const caf::message& message);

 private:
  struct node_slot {
    std::string id;
    std::shared_ptr<sim_file_system> fs;
    /// The node's durable state as its last crash left it (read back by a recovery).
    recovered_state durable;
    /// Media corruption was injected since the node last started.
    bool rotten = false;
    /// A node started alone that accepted a join (dropped its lone state): a restart must not
    /// bootstrap it as a one-node cluster again (a real node keeps its bootstrap membership in
    /// its log, which the join discards).
    bool left_lone = false;
    /// Bumped at every crash; fences off the storage actors of earlier lives.
    uint64_t disk_epoch = 0;
    raft_node_actor raft;
    kv_actor kv;
    std::shared_ptr<local_read_view> read_view;
    storage_actor storage;
    snapshot_actor snapshots;
    std::vector<caf::actor> actors() const {
      return {caf::actor_cast<caf::actor>(raft), caf::actor_cast<caf::actor>(kv),
              caf::actor_cast<caf::actor>(storage), caf::actor_cast<caf::actor>(snapshots)};
    }
    bool alive = false;
    /// Why this life's Raft actor stopped by itself (empty while it runs or was crashed).
    std::string died;
    /// Simulated time until which no sync of this node's disk completes.
    caf::timespan disk_stalled_until{0};
    uint64_t incarnation = 0;
    std::vector<applied_record> applied;
    /// The snapshot this life of the node started from (its state machine never applied the
    /// entries up to it here).
    uint64_t started_from_snapshot = 0;
    /// The last term this node was seen leading (for reactive faults).
    uint64_t led_term = 0;
    // Checker mirrors.
    /// chain[i] = hash of the log prefix up to index chain_base + i + 1.
    std::vector<uint64_t> chain;
    uint64_t chain_base = 0;
    uint64_t last_commit = 0;
    // Promises made on the wire that must survive a crash.
    uint64_t acked_match = 0;
    uint64_t acked_term = 0;
    uint64_t granted_term = 0;
    /// The highest term carried by a message this node sent (vote requests aside).
    uint64_t sent_term = 0;
  };

  void check_durable_promises(size_t node);
  void forget_entries_lost_with(size_t crashed,
                                const std::vector<std::pair<uint64_t, uint64_t>>& volatile_log);
  bool has_unsynced_state(size_t index);
  file_storage_options storage_options() const;
  void spawn_node(size_t index);
  void stop_all();
  void check();
  void check_node_log(size_t index);
  [[noreturn]] void fail(const std::string& what);
  caf::timespan random_between(caf::timespan low, caf::timespan high);

  options opts_;
  std::mt19937_64 rng_;
  caf::actor_system_config config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::vector<node_slot> nodes_;
  /// links_[from][to]: the actor that carries from's messages to `to`.
  std::vector<std::vector<caf::actor>> links_;
  std::set<std::pair<size_t, size_t>> cut_links_;
  disk_fault_counts disk_faults_;
  /// Reboots decided by reactive faults: (when, node).
  std::vector<std::pair<caf::timespan, size_t>> scheduled_reboots_;
  void run_scheduled_reboots();
  caf::actor client_;
  std::vector<proposal_record> proposals_;
  std::vector<proposal_record> joins_;
  std::vector<caf::actor> history_clients_;
  std::vector<lin::operation> history_;
  std::vector<bool> history_done_;
  uint64_t next_sequence_ = 1;
  uint64_t steps_ = 0;
  /// SIM_DUMP set: print every event as it happens (for diffing two runs of one seed).
  bool dump_trace_ = false;

  // Checker state.
  /// Found inside an actor callback, where throwing would only kill that actor; check() throws.
  std::string observed_violation_;
  std::map<uint64_t, std::string> leader_of_term_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> chain_of_entry_; // (index, term) -> chain
  std::vector<uint64_t> committed_chain_;                    // committed_chain_[i] for index i+1
  std::map<uint64_t, uint64_t> committed_by_leader_in_term_; // term -> highest commit index
  std::map<uint64_t, uint64_t> applied_hash_;                // index -> entry hash

  struct trace_event {
    caf::timespan time;
    std::string who;
    caf::message content;
    std::string note;
  };
  std::deque<trace_event> trace_;
  std::map<caf::actor_id, std::string> actor_names_;
};

struct check_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Seeds for a run: SIM_SEED=S replays one; SIM_SEEDS=N runs 1..N; else 1..default_count.
std::vector<uint64_t> seeds_from_environment(uint64_t default_count);

/// The full random fault mix used by the randomized simulation: returns an empty string when
/// the seed passes, else a report (seed, violation, trace tail).
struct random_run_result {
  bool passed = true;
  disk_fault_counts disk;
  std::string report;
  uint64_t steps = 0;
  uint64_t acknowledged = 0;
  uint64_t crashes = 0;
  uint64_t operations = 0;
  uint64_t unknown_outcomes = 0;
  uint64_t removals = 0;
  /// Membership changes that took effect (ok), and the configuration in effect at the end.
  uint64_t changes_ok = 0;
  std::string final_configuration;
};

struct random_run_options {
  /// Run clients that record a history and check it for linearizability.
  bool check_linearizability = false;
  /// Interleave joins (two extra nodes start alone), removals (the leader included; sometimes
  /// forced) and leadership transfers with the faults.
  bool membership_changes = false;
#ifdef INFINITYSTORE_TESTING
  raft_config::mutation broken = raft_config::mutation::none;
#endif
};

random_run_result run_random_seed(uint64_t seed, const random_run_options& options = {});

/// Totals of a run over many seeds; failure reports are printed as they happen.
struct seed_sweep {
  size_t failures = 0;
  disk_fault_counts disk;
  uint64_t steps = 0;
  uint64_t acknowledged = 0;
  uint64_t crashes = 0;
  uint64_t operations = 0;
  uint64_t unknown_outcomes = 0;
  uint64_t removals = 0;
  uint64_t changes_ok = 0;
  double seconds = 0;
};

/// Runs every seed (stopping after `max_failures` failures), printing each failure's report.
seed_sweep sweep_seeds(const std::vector<uint64_t>& seeds, const random_run_options& options,
                       size_t max_failures = 3);

/// Runs seeds 1..limit (or SIM_SEED) until one fails with a report `counts` accepts; returns
/// that seed and the report without its event trace, or nullopt if none did.
std::optional<std::pair<uint64_t, std::string>>
first_seed_failing_with(const random_run_options& options, uint64_t limit,
                        const std::function<bool(const std::string& report)>& counts);

} // namespace infinity::sim
