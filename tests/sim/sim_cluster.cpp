#include "tests/sim/sim_cluster.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "actors/kv/command_codec.hpp"
#include "actors/kv/kv_actor.hpp"
#include "actors/messages.hpp"
#include "actors/storage/snapshot_actor.hpp"
#include "actors/storage/storage_actor.hpp"

namespace infinity::sim {
namespace {

using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using client_tick_atom = caf::atom_constant<caf::atom("ctick")>;
using client_stop_atom = caf::atom_constant<caf::atom("cstop")>;

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

bool chance(std::mt19937_64& rng, double probability) {
  return probability > 0 && uniform01(rng) < probability;
}

uint64_t mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  return h * 0xFF51AFD7ED558CCDULL;
}

uint64_t hash_bytes(const std::string& bytes) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : bytes)
    h = (h ^ c) * 0x100000001B3ULL;
  return h;
}

uint64_t entry_hash(uint64_t term, uint64_t index, entry_kind kind, const std::string& data) {
  return mix(mix(mix(term, index), static_cast<uint64_t>(kind)), hash_bytes(data));
}

/// How long a node takes to reconnect to a peer that restarted (the peer connector's backoff).
constexpr caf::timespan reconnect_delay_min = std::chrono::milliseconds(1);
constexpr caf::timespan reconnect_delay_max = std::chrono::milliseconds(100);

std::string ms(caf::timespan t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t).count() / 1000.0) +
         "ms";
}

/// Where each node keeps its data on its simulated disk.
constexpr const char* data_directory = "/data";

/// One life's access to a node's disk: once that life ended (its epoch passed), a storage actor
/// that is still winding down can no longer write or sync (the simulated file system also
/// refuses the files it opened before the power cut).
class fenced_storage final : public storage_backend {
 public:
  fenced_storage(std::shared_ptr<storage_backend> backend, const uint64_t* epoch)
      : backend_(std::move(backend)), epoch_(epoch), own_epoch_(*epoch) {}
  recovered_state recover() override { return backend_->recover(); }
  void write(const persist_request& request) override {
    if (*epoch_ == own_epoch_)
      backend_->write(request);
  }
  void sync() override {
    if (*epoch_ == own_epoch_)
      backend_->sync();
  }
  maintenance_need maintenance_needed() const override {
    return *epoch_ == own_epoch_ ? backend_->maintenance_needed() : maintenance_need::none;
  }
  void maintain(bool idle) override {
    if (*epoch_ == own_epoch_)
      backend_->maintain(idle);
  }

 private:
  std::shared_ptr<storage_backend> backend_;
  const uint64_t* epoch_;
  uint64_t own_epoch_;
};

/// Reads back what a disk holds, as a restart would, without touching it.
recovered_state read_back(const sim_file_system& fs, const file_storage_options& options) {
  auto copy = std::make_shared<sim_file_system>(fs);
  file_storage storage(data_directory, options, copy);
  return storage.recover();
}

// -- link actor: carries one direction of one node pair ---------------------------------------

struct link_state {
  uint64_t next_id = 0;
  /// A message on the wire, with the incarnations of both ends when it left the sender.
  struct wire_message {
    caf::message content;
    uint64_t sender_incarnation;
    uint64_t receiver_incarnation;
  };
  std::map<uint64_t, wire_message> in_flight;
  static inline const char* name = "sim_link";
};

using sim_link_actor = raft_peer_actor::extend<caf::reacts_to<deliver_atom, uint64_t>>;

/// A link implements the node's whole peer interface, so an RPC added to `raft_peer_actor` does
/// not compile until the simulator carries it too.
sim_link_actor::behavior_type link_impl(sim_link_actor::stateful_pointer<link_state> self,
                                        cluster* net, size_t from, size_t to) {
  auto carry = [=](caf::message message) {
    net->observe_sent(from, message);
    if (!net->link_up(from, to))
      return;
    auto& rng = net->rng();
    const auto& faults = net->faults();
    if (chance(rng, faults.drop_probability))
      return;
    int copies = chance(rng, faults.duplicate_probability) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      auto id = ++self->state.next_id;
      self->state.in_flight.emplace(
          id, link_state::wire_message{message, net->incarnation(from), net->incarnation(to)});
      auto span = (faults.max_delay - faults.min_delay).count();
      auto delay =
          faults.min_delay + caf::timespan{span > 0 ? static_cast<int64_t>(rng() % span) : 0};
      self->delayed_send(self, delay, deliver_atom::value, id);
    }
  };
  return {
      [=](request_vote& m) { carry(caf::make_message(std::move(m))); },
      [=](vote_reply& m) { carry(caf::make_message(std::move(m))); },
      [=](append_entries& m) { carry(caf::make_message(std::move(m))); },
      [=](append_reply& m) { carry(caf::make_message(std::move(m))); },
      [=](forward_request& m) { carry(caf::make_message(std::move(m))); },
      [=](forward_reply& m) { carry(caf::make_message(std::move(m))); },
      [=](join_probe& m) { carry(caf::make_message(std::move(m))); },
      [=](join_probe_reply& m) { carry(caf::make_message(std::move(m))); },
      [=](timeout_now& m) { carry(caf::make_message(std::move(m))); },
      [=](install_snapshot& m) { carry(caf::make_message(std::move(m))); },
      [=](install_snapshot_reply& m) { carry(caf::make_message(std::move(m))); },
      [=](deliver_atom, uint64_t id) {
        auto i = self->state.in_flight.find(id);
        if (i == self->state.in_flight.end())
          return;
        auto wire = std::move(i->second);
        self->state.in_flight.erase(i);
        // A partition that started while the message was in flight loses it too.
        if (!net->link_up(from, to))
          return;
        // It travelled on a connection to a process that has died since: that connection is gone.
        if (wire.receiver_incarnation != net->incarnation(to))
          return;
        if ((wire.sender_incarnation != net->incarnation(from) || !net->alive(from)) &&
            chance(net->rng(), net->faults().lose_in_flight_on_crash))
          return;
        auto message = std::move(wire.content);
        auto target = net->current_handle(to);
        if (!target)
          return;
        caf::actor_cast<caf::abstract_actor*>(target)->enqueue(nullptr, caf::make_message_id(),
                                                               std::move(message), self->context());
      },
  };
}

// -- client actor: proposes commands and records what it was told ------------------------------

struct client_state {
  bool running = false;
  size_t target = 0;
  size_t keys = 1;
  caf::timespan min_interval{};
  caf::timespan max_interval{};
  static inline const char* name = "sim_client";
};

} // namespace

// Proposals go through this actor so that replies arrive as ordinary messages in the simulation.
struct client_access {
  static caf::behavior make(caf::stateful_actor<client_state>* self, cluster* net,
                            std::vector<proposal_record>* records, uint64_t* next_sequence,
                            std::vector<proposal_record>* joins) {
    auto send_proposal = [=](size_t node, std::string key, std::string value,
                             caf::timespan timeout) {
      proposal_record record;
      record.client_id = 1;
      record.sequence = (*next_sequence)++;
      record.key = key;
      record.value = value;
      auto position = records->size();
      records->push_back(record);
      auto target = net->current_handle(node);
      if (!target) {
        (*records)[position].status = reply_status::no_leader;
        (*records)[position].completed = true;
        self->state.target = (node + 1) % net->size();
        return;
      }
      kv_command command{kv_op::set, key, value, record.client_id, record.sequence};
      self->request(target, timeout, propose_atom::value, encode_command(command))
          .then(
              [=](const client_reply& result) {
                auto& r = (*records)[position];
                r.status = result.status;
                r.index = result.index;
                r.completed = true;
                if (result.status != reply_status::ok) {
                  bool hinted = false;
                  for (size_t i = 0; i < net->size(); ++i)
                    if (net->id(i) == result.leader_id) {
                      self->state.target = i;
                      hinted = true;
                    }
                  if (!hinted)
                    self->state.target = (node + 1) % net->size();
                }
              },
              [=](caf::error&) {
                auto& r = (*records)[position];
                r.status = reply_status::timeout;
                r.completed = true;
                self->state.target = (node + 1) % net->size();
              });
    };
    // Joins, removals and transfers: recorded in `joins` (key: what was asked, value: reason).
    auto membership_request = [=](size_t node, std::string what, auto... request) {
      auto position = joins->size();
      joins->push_back(proposal_record{});
      (*joins)[position].key = std::move(what);
      auto target = net->current_handle(node);
      if (!target) {
        (*joins)[position].status = reply_status::no_leader;
        (*joins)[position].completed = true;
        return;
      }
      self->request(target, std::chrono::seconds(20), request...)
          .then(
              [=](const client_reply& result) {
                auto& r = (*joins)[position];
                r.status = result.status;
                r.index = result.index;
                r.value = result.reason;
                r.completed = true;
              },
              [=](caf::error&) {
                (*joins)[position].status = reply_status::timeout;
                (*joins)[position].completed = true;
              });
    };
    return {
        [=](propose_atom, size_t node, std::string& key, std::string& value,
            caf::timespan timeout) {
          send_proposal(node, std::move(key), std::move(value), timeout);
        },
        [=](client_tick_atom) {
          auto& st = self->state;
          if (!st.running)
            return;
          auto& rng = net->rng();
          auto key = "k" + std::to_string(rng() % st.keys);
          auto value = "v" + std::to_string(*next_sequence);
          // Half the proposals go to any node, so followers forward them to the leader.
          auto node = rng() % 2 == 0 ? st.target : static_cast<size_t>(rng() % net->size());
          send_proposal(net->skip_lone(node), key, value, std::chrono::seconds(1));
          auto span = (st.max_interval - st.min_interval).count();
          auto delay =
              st.min_interval + caf::timespan{span > 0 ? static_cast<int64_t>(rng() % span) : 0};
          self->delayed_send(self, delay, client_tick_atom::value);
        },
        [=](client_stop_atom) { self->state.running = false; },
        [=](join_atom, size_t node, std::string& id, std::string& address) {
          membership_request(node, "join " + id, join_atom::value, id, address);
        },
        [=](remove_atom, size_t node, std::string& id, bool force) {
          membership_request(node, "remove " + id, remove_atom::value, id, force);
        },
        [=](transfer_atom, size_t node, std::string& id) {
          membership_request(node, "transfer to " + id, transfer_atom::value, id);
        },
        [=](caf::timespan min_interval, caf::timespan max_interval, size_t keys) {
          auto& st = self->state;
          st.min_interval = min_interval;
          st.max_interval = max_interval;
          st.keys = keys;
          if (!st.running) {
            st.running = true;
            self->send(self, client_tick_atom::value);
          }
        },
    };
  }
};

// -- history clients: one operation at a time, recorded for the linearizability checker --------

using history_tick_atom = caf::atom_constant<caf::atom("htick")>;
using history_get_atom = caf::atom_constant<caf::atom("hget")>;

struct history_client_state {
  bool running = true;
  uint64_t client_id = 0;
  uint64_t sequence = 0;
  size_t keys = 1;
  static inline const char* name = "sim_history_client";
};

lin::outcome write_outcome(reply_status status) {
  switch (status) {
  case reply_status::ok:
    return lin::outcome::ok;
  case reply_status::not_leader:
  case reply_status::no_leader:
  case reply_status::busy:
  case reply_status::rejected:
  case reply_status::removed:
    return lin::outcome::failed;
  default:
    return lin::outcome::unknown;
  }
}

caf::behavior history_client_impl(caf::stateful_actor<history_client_state>* self, cluster* net,
                                  uint64_t client_id, size_t keys) {
  self->state.client_id = client_id;
  self->state.keys = keys;
  auto next = [=] {
    if (self->state.running)
      self->delayed_send(self, caf::timespan{std::chrono::microseconds(net->rng()() % 10000)},
                         history_tick_atom::value);
  };
  auto do_get = [=](size_t node, const std::string& key, bool continue_after) {
    auto done = [=](size_t position, lin::outcome outcome) {
      net->end_operation(position, outcome, net->now_ns());
      if (continue_after)
        next();
    };
    lin::operation op;
    op.key = key;
    op.client = self->state.client_id;
    op.invoke = net->now_ns();
    op.kind = lin::op_kind::get;
    auto position = net->begin_operation(op);
    auto target = net->current_handle(node);
    auto view = net->read_view(node);
    if (!target || !view) {
      done(position, lin::outcome::failed);
      return;
    }
    // ReadIndex through this node (forwarded to the leader), then its own applied state.
    self->request(target, std::chrono::seconds(1), read_atom::value)
        .then(
            [=](const client_reply& result) {
              if (result.status != reply_status::ok) {
                done(position, lin::outcome::failed);
                return;
              }
              // As an HTTP session reads: the view, on this thread, right after the barrier.
              auto value = view->get(key);
              auto& recorded = net->operation_at(position);
              recorded.found = value.has_value();
              recorded.value = value.value_or("");
              done(position, lin::outcome::ok);
            },
            [=](caf::error&) { done(position, lin::outcome::failed); });
  };
  return {
      [=](history_tick_atom) {
        auto& st = self->state;
        if (!st.running)
          return;
        auto& rng = net->rng();
        auto node = net->skip_lone(static_cast<size_t>(rng() % net->size()));
        auto key = "k" + std::to_string(rng() % st.keys);
        auto dice = rng() % 100;
        lin::operation op;
        op.key = key;
        op.client = st.client_id;
        op.invoke = net->now_ns();
        auto target = net->current_handle(node);
        if (dice < 55) {
          // A write: a set of a unique value, or a delete.
          kv_command command;
          command.key = key;
          command.client_id = st.client_id;
          command.sequence = ++st.sequence;
          if (dice < 45) {
            command.op = kv_op::set;
            command.value = "c" + std::to_string(st.client_id) + "-" + std::to_string(st.sequence);
            op.kind = lin::op_kind::set;
            op.value = command.value;
          } else {
            command.op = kv_op::del;
            op.kind = lin::op_kind::del;
          }
          auto position = net->begin_operation(op);
          if (!target) {
            net->end_operation(position, lin::outcome::failed, net->now_ns());
            next();
            return;
          }
          self->request(target, std::chrono::seconds(1), propose_atom::value,
                        encode_command(command))
              .then(
                  [=](const client_reply& result) {
                    net->end_operation(position, write_outcome(result.status), net->now_ns());
                    next();
                  },
                  [=](caf::error&) {
                    net->end_operation(position, lin::outcome::unknown, net->now_ns());
                    next();
                  });
          return;
        }
        do_get(node, key, true);
      },
      // One linearizable read outside the random loop (the final reads after healing).
      [=](history_get_atom, size_t node, std::string& key) { do_get(node, key, false); },
      [=](client_stop_atom) { self->state.running = false; },
  };
}

// -- cluster -------------------------------------------------------------------------------------

cluster::cluster(options opts) : opts_(std::move(opts)), rng_(mix(opts_.seed, 0x5EED)) {
  dump_trace_ = std::getenv("SIM_DUMP") != nullptr;
  config_.set("scheduler.policy", caf::atom("testing"));
  config_.set("logger.inline-output", true);
  register_message_types(config_);
  system_ = std::make_unique<caf::actor_system>(config_);
  sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(system_->scheduler());
  nodes_.resize(opts_.nodes);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].id = "n" + std::to_string(i + 1);
    nodes_[i].fs = std::make_shared<sim_file_system>();
  }
  links_.resize(nodes_.size(), std::vector<caf::actor>(nodes_.size()));
  for (size_t from = 0; from < nodes_.size(); ++from)
    for (size_t to = 0; to < nodes_.size(); ++to)
      if (from != to) {
        links_[from][to] = caf::actor_cast<caf::actor>(system_->spawn(link_impl, this, from, to));
        actor_names_[links_[from][to].id()] = nodes_[from].id + "->" + nodes_[to].id;
      }
  client_ = system_->spawn(client_access::make, this, &proposals_, &next_sequence_, &joins_);
  actor_names_[client_.id()] = "client";
  for (size_t i = 0; i < nodes_.size(); ++i)
    spawn_node(i);
}

cluster::~cluster() {
  stop_all();
}

void cluster::stop_all() {
  for (auto& slot : nodes_) {
    for (const auto& a : slot.actors())
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    slot.alive = false;
  }
  for (auto& row : links_)
    for (auto& link : row)
      if (link)
        caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  if (client_)
    caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
  for (auto& client : history_clients_)
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  sched_->run();
  for (auto& slot : nodes_) {
    slot.raft = nullptr;
    slot.kv = nullptr;
    slot.storage = nullptr;
  }
  links_.clear();
  client_ = caf::actor{};
  history_clients_.clear();
  sched_->run();
}

caf::timespan cluster::random_between(caf::timespan low, caf::timespan high) {
  auto span = (high - low).count();
  return low + caf::timespan{span > 0 ? static_cast<int64_t>(rng_() % span) : 0};
}

void cluster::spawn_node(size_t index) {
  auto& slot = nodes_[index];
  ++slot.incarnation;
  slot.applied.clear();
  slot.started_from_snapshot = 0;
  slot.died.clear();
  slot.chain.clear();
  slot.chain_base = 0;
  slot.last_commit = 0;
  slot.rotten = false;
  std::shared_ptr<file_storage> backend;
  std::shared_ptr<snapshot_store> snapshot_files;
  startup_snapshot startup;
  recovered_state recovered;
  try {
    backend = std::make_shared<file_storage>(data_directory, storage_options(), slot.fs);
    recovered = backend->recover();
    if (recovered.damage) {
      // Protocol-aware recovery: a member repairs what its disk lost from the leader.
      record("storage damage on " + slot.id + ": " + recovered.damage->description);
      // Its acknowledgements before the damage are void; the node says so and neither votes
      // nor counts toward a commit until it has caught up (the checkers judge the outcome).
      slot.acked_match = 0;
      slot.acked_term = 0;
      ++disk_faults_.repairs_started;
      backend->accept_repair();
      recovered.state = backend->durable_hard_state();
      recovered.damage.reset();
    }
    snapshot_files = std::make_shared<snapshot_store>(data_directory, slot.fs);
    startup = load_startup_snapshot(*snapshot_files, *backend, recovered);
    for (const auto& line : startup.report)
      record(slot.id + ": " + line);
  } catch (const sim_file_system::crashed&) {
    // Died again while recovering: the node stays down until the next restart.
    backend.reset();
    snapshot_files.reset();
    auto outcome = slot.fs->crash(rng_, sim_crash_options{opts_.faults.tear_probability, 0.0});
    ++slot.disk_epoch;
    record(slot.id + " died while recovering; disk: " + outcome.describe());
    slot.durable = read_back(*slot.fs, storage_options());
    return;
  } catch (const std::exception& e) {
    // Recovery must succeed from any state a crash leaves.
    fail("recovery: " + slot.id + " cannot start: " + e.what());
  }
  auto max_sync = opts_.faults.max_sync_delay;
  slot.storage = spawn_storage_actor(
      *system_, std::make_shared<fenced_storage>(backend, &slot.disk_epoch),
      [this, index, max_sync](const persist_request& request) {
        auto delay = random_between(caf::timespan{0}, max_sync);
        // Replacing the hard state costs a rename and directory syncs besides the data sync,
        // so term and vote changes are the writes most exposed to a slow disk.
        auto slow = request.has_hard_state ? opts_.faults.slow_hard_state_sync_probability
                                           : opts_.faults.slow_sync_probability;
        if (chance(rng_, slow))
          delay = random_between(max_sync, opts_.faults.max_slow_sync_delay);
        auto stalled_until = nodes_[index].disk_stalled_until;
        return stalled_until > now() ? delay + (stalled_until - now()) : delay;
      },
      false);
  auto incarnation = slot.incarnation;
  snapshot_actor_options snapshot_opts;
  snapshot_opts.retain = opts_.snapshot_retain;
  snapshot_opts.log = [this, index](const std::string& line) {
    record(nodes_[index].id + ": " + line);
  };
  slot.snapshots = spawn_snapshot_actor(*system_, std::move(snapshot_files),
                                        std::move(snapshot_opts), /*detached=*/false);
  kv_snapshot_policy policy;
  if (opts_.snapshot_entries > 0) {
    policy.snapshots = slot.snapshots;
    policy.every_entries = opts_.snapshot_entries;
  }
  std::optional<restored_state_machine> initial;
  if (startup.machine) {
    slot.started_from_snapshot = recovered.snapshot.index;
    initial = restored_state_machine{
        recovered.snapshot, std::make_shared<kv_state_machine>(std::move(*startup.machine))};
  }
  slot.read_view = std::make_shared<local_read_view>();
  slot.kv = spawn_kv_actor(
      *system_,
      [this, index, incarnation](const log_entry& entry, kv_state_machine::apply_effect effect) {
        auto& s = nodes_[index];
        if (s.incarnation != incarnation)
          return;
        s.applied.push_back(
            applied_record{entry.index, entry.term, entry.kind, entry.data, effect});
        if (is_lone(index))
          return; // a separate one-node cluster until it joins
        auto h = entry_hash(entry.term, entry.index, entry.kind, entry.data);
        auto [it, inserted] = applied_hash_.emplace(entry.index, h);
        if (!inserted && it->second != h && observed_violation_.empty())
          observed_violation_ = "state machine safety: " + s.id +
                                " applied a different entry at index " +
                                std::to_string(entry.index);
      },
      std::move(policy), std::move(initial), slot.read_view);
  raft_config config = opts_.base_config;
  config.id = slot.id;
  config.members.clear();
  if (index + opts_.lone_nodes >= nodes_.size()) {
    if (!slot.left_lone)
      config.members.push_back(slot.id);
  } else {
    for (size_t j = 0; j + opts_.lone_nodes < nodes_.size(); ++j)
      config.members.push_back(nodes_[j].id);
  }
  slot.raft = spawn_raft_node(
      *system_, config, std::move(recovered), slot.storage, slot.kv, slot.snapshots,
      mix(mix(opts_.seed, index), slot.incarnation),
      [this](const std::string& line) { record(line); }, nullptr, slot.read_view);
  slot.alive = true;
  actor_names_[slot.raft.id()] = slot.id;
  // A Raft actor that stops by itself (an exception, a failed invariant) leaves a dead node the
  // checkers must not read: record why, and fail at the next check.
  caf::actor_cast<caf::abstract_actor*>(slot.raft)->attach_functor(
      [this, index, incarnation](const caf::error& reason) {
        auto& s = nodes_[index];
        if (s.incarnation == incarnation && s.alive && s.died.empty())
          s.died = reason ? caf::to_string(reason) : "stopped";
      });
  actor_names_[slot.kv.id()] = slot.id + ".kv";
  actor_names_[slot.storage.id()] = slot.id + ".disk";
  actor_names_[slot.snapshots.id()] = slot.id + ".snapshots";
  // The Raft core is built when the actor first runs: do that now, so the checkers can read
  // it from the moment the node exists.
  if (sched_->prioritize(slot.raft))
    sched_->run_once();
  for (size_t j = 0; j < nodes_.size(); ++j) {
    if (j == index)
      continue;
    caf::anon_send(slot.raft, peer_up_atom::value, nodes_[j].id, links_[index][j]);
    // The others learn of the new process when their connectors reconnect to it (after the
    // dial backoff); until then they have no connection to it.
    if (slot.incarnation > 1 && nodes_[j].alive)
      caf::delayed_anon_send(nodes_[j].raft,
                             random_between(reconnect_delay_min, reconnect_delay_max),
                             peer_up_atom::value, slot.id, links_[j][index]);
  }
}

caf::timespan cluster::now() const {
  return sched_->clock().now().time_since_epoch();
}

void cluster::cancel_scheduled_faults() {
  scheduled_reboots_.clear();
}

void cluster::run_scheduled_reboots() {
  for (size_t i = 0; i < scheduled_reboots_.size();) {
    auto [when, node] = scheduled_reboots_[i];
    if (when > now()) {
      ++i;
      continue;
    }
    scheduled_reboots_.erase(scheduled_reboots_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!nodes_[node].alive)
      continue;
    crash(node);
    restart(node);
  }
}

bool cluster::step() {
  if (!scheduled_reboots_.empty())
    run_scheduled_reboots();
  if (sched_->has_job()) {
    auto& job = sched_->next_job<caf::scheduled_actor>();
    if (auto* element = job.mailbox().peek()) {
      auto name = actor_names_.find(job.id());
      trace_.push_back(
          trace_event{now(),
                      name != actor_names_.end() ? name->second : "a" + std::to_string(job.id()),
                      element->copy_content_to_message(),
                      {}});
    }
    sched_->run_once();
    // A node whose disk call killed it (crash_at_disk_call) is down from this step on.
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].alive && nodes_[i].fs->is_down())
        crash(i);
  } else if (sched_->has_pending_timeout()) {
    sched_->trigger_timeout();
  } else {
    return false;
  }
  while (trace_.size() > opts_.trace_capacity)
    trace_.pop_front();
  if (dump_trace_ && !trace_.empty())
    std::cerr << ms(trace_.back().time) << " " << trace_.back().who << " <- "
              << caf::to_string(trace_.back().content) << trace_.back().note << "\n";
  ++steps_;
  check();
  return true;
}

void cluster::run_for(caf::timespan duration) {
  auto deadline = now() + duration;
  while (now() < deadline && step()) {
    // keep going
  }
}

void disk_fault_counts::add(const disk_fault_counts& other) {
  torn_writes += other.torn_writes;
  unsynced_operations_lost += other.unsynced_operations_lost;
  crashes_at_disk_calls += other.crashes_at_disk_calls;
  bit_rots += other.bit_rots;
  repairs_started += other.repairs_started;
  repairs_finished += other.repairs_finished;
  snapshots_written += other.snapshots_written;
  snapshots_installed += other.snapshots_installed;
}

std::string disk_fault_counts::describe() const {
  return std::to_string(crashes_at_disk_calls) + " crashes at a disk call, " +
         std::to_string(unsynced_operations_lost) + " unsynced disk operations lost, " +
         std::to_string(torn_writes) + " torn writes, " + std::to_string(bit_rots) + " bit rots, " +
         std::to_string(repairs_started) + " repairs started, " + std::to_string(repairs_finished) +
         " finished, " + std::to_string(snapshots_written) + " snapshots written, " +
         std::to_string(snapshots_installed) + " installed from a leader";
}

void cluster::record(std::string line) {
  if (line.find(": repaired: caught up") != std::string::npos)
    ++disk_faults_.repairs_finished;
  if (line.find(": snapshot: wrote ") != std::string::npos)
    ++disk_faults_.snapshots_written;
  if (line.find(": installed snapshot ") != std::string::npos)
    ++disk_faults_.snapshots_installed;
  if (dump_trace_)
    std::cerr << ms(now()) << " # " << line << "\n";
  trace_.push_back(trace_event{now(), "event", caf::message{}, std::move(line)});
  while (trace_.size() > opts_.trace_capacity)
    trace_.pop_front();
}

std::string cluster::trace_tail(size_t lines) const {
  std::ostringstream out;
  auto start = trace_.size() > lines ? trace_.size() - lines : 0;
  for (auto i = start; i < trace_.size(); ++i) {
    const auto& e = trace_[i];
    out << "  " << ms(e.time) << " ";
    if (!e.note.empty())
      out << "# " << e.note;
    else
      out << e.who << " <- " << caf::to_string(e.content);
    out << "\n";
  }
  return out.str();
}

void cluster::fail(const std::string& what) {
  throw check_failure(what);
}

// -- faults --------------------------------------------------------------------------------------

bool cluster::is_lone(size_t index) {
  return index + opts_.lone_nodes >= nodes_.size() && nodes_[index].alive &&
         node(index).members().size() <= 1;
}

bool cluster::link_up(size_t from, size_t to) const {
  return cut_links_.count({from, to}) == 0;
}

caf::actor cluster::current_handle(size_t node) const {
  return nodes_[node].alive ? caf::actor_cast<caf::actor>(nodes_[node].raft) : caf::actor{};
}

void cluster::cut(size_t from, size_t to) {
  cut_links_.emplace(from, to);
  record("fault: cut " + nodes_[from].id + "->" + nodes_[to].id);
}

void cluster::isolate(size_t node) {
  for (size_t other = 0; other < nodes_.size(); ++other)
    if (other != node) {
      cut_links_.emplace(node, other);
      cut_links_.emplace(other, node);
    }
  record("fault: isolate " + nodes_[node].id);
}

void cluster::partition(const std::set<size_t>& side) {
  std::string names;
  for (size_t a = 0; a < nodes_.size(); ++a) {
    if (side.count(a))
      names += nodes_[a].id + " ";
    for (size_t b = 0; b < nodes_.size(); ++b)
      if (side.count(a) != side.count(b)) {
        cut_links_.emplace(a, b);
      }
  }
  record("fault: partition {" + names + "} from the rest");
}

void cluster::heal() {
  cut_links_.clear();
  record("fault: heal all links");
}

bool cluster::has_unsynced_state(size_t index) {
  return !node(index).everything_durable();
}

void cluster::observe_sent(size_t from, const caf::message& message) {
  auto& slot = nodes_[from];
  // A crash point where it hurts most: the node is telling others something while part of what
  // it knows is not on its disk yet.
  if (slot.alive && chance(rng_, opts_.faults.reboot_while_unsynced_probability) &&
      has_unsynced_state(from))
    scheduled_reboots_.emplace_back(now(), from);
  if (message.match_elements<append_reply>()) {
    const auto& reply = message.get_as<append_reply>(0);
    if (reply.success && (reply.term > slot.acked_term || reply.match_index >= slot.acked_match))
      slot.acked_match = reply.match_index, slot.acked_term = reply.term;
  } else if (message.match_elements<vote_reply>()) {
    const auto& reply = message.get_as<vote_reply>(0);
    if (reply.granted && !reply.pre_vote && reply.term >= slot.granted_term)
      slot.granted_term = reply.term;
  }
  // Every message but a vote request, and a granted pre-vote (whose term is hypothetical),
  // carries the sender's current term, which it must never come back below.
  uint64_t carried_term = 0;
  if (message.match_elements<append_entries>())
    carried_term = message.get_as<append_entries>(0).term;
  else if (message.match_elements<append_reply>())
    carried_term = message.get_as<append_reply>(0).term;
  else if (message.match_elements<vote_reply>() && !message.get_as<vote_reply>(0).pre_vote)
    carried_term = message.get_as<vote_reply>(0).term;
  slot.sent_term = std::max(slot.sent_term, carried_term);
}

void cluster::check_durable_promises(size_t node) {
  // Whatever a node acknowledged or voted must survive its crash: a later term may have
  // replaced acknowledged entries, but nothing else may lose them.
  auto& slot = nodes_[node];
  const auto& durable = slot.durable;
  const uint64_t durable_last = durable.base.index + durable.entries.size();
  if (slot.acked_match > 0 && durable.state.term <= slot.acked_term &&
      durable_last < slot.acked_match)
    fail("durability: " + slot.id + " acknowledged entries up to " +
         std::to_string(slot.acked_match) + " in term " + std::to_string(slot.acked_term) +
         " but its log ends at " + std::to_string(durable_last) + " after its crash");
  if (durable.state.term < slot.sent_term)
    fail("durability: " + slot.id + " sent messages of term " + std::to_string(slot.sent_term) +
         " but its disk only remembers term " + std::to_string(durable.state.term) +
         ": it could act in that term again, differently");
  if (slot.granted_term > 0 && durable.state.term < slot.granted_term)
    fail("durability: " + slot.id + " granted a vote in term " + std::to_string(slot.granted_term) +
         " but its disk only remembers term " + std::to_string(durable.state.term));
}

void cluster::crash(size_t node) {
  auto& slot = nodes_[node];
  if (!slot.alive)
    return;
  // What was handed to the links from and to this node is on the wire now, stamped with this
  // life of the node: a later life does not receive what was sent to this one.
  for (size_t other = 0; other < nodes_.size(); ++other)
    if (other != node)
      for (auto& link : {links_[node][other], links_[other][node]})
        while (sched_->has_job() && sched_->prioritize(link))
          sched_->run_once();
  record("fault: crash " + slot.id);
  // The kernel closes the dead process's connections: the peers notice at once.
  for (size_t other = 0; other < nodes_.size(); ++other)
    if (other != node && nodes_[other].alive)
      caf::anon_send(nodes_[other].raft, peer_down_atom::value, slot.id);
  // The node's volatile log, to tell afterwards which entries died with it.
  std::vector<std::pair<uint64_t, uint64_t>> volatile_log;
  const auto& log = raft_core_of(slot.raft).log();
  for (auto index = log.first_index(); index <= log.last_index(); ++index)
    volatile_log.emplace_back(index, log.term_at(index));
  slot.alive = false;
  for (const auto& a : slot.actors()) {
    caf::anon_send_exit(a, caf::exit_reason::kill);
    // Run the exit at once so the dead node takes no further step.
    if (sched_->has_job() && sched_->prioritize(a))
      sched_->run_once();
  }
  slot.raft = nullptr;
  slot.kv = nullptr;
  slot.storage = nullptr;
  slot.snapshots = nullptr;
  // The power cut: of what the dead process issued since its last sync, a prefix survives (the
  // last write kept perhaps torn), and nothing of that life can write again.
  const bool at_disk_call = slot.fs->is_down();
  auto outcome = slot.fs->crash(rng_, sim_crash_options{opts_.faults.tear_probability, 0.0});
  ++slot.disk_epoch;
  record("disk of " + slot.id + " after the crash: " + outcome.describe());
  disk_faults_.crashes_at_disk_calls += at_disk_call ? 1 : 0;
  disk_faults_.torn_writes += outcome.tear.kind != sim_tear_kind::none ? 1 : 0;
  disk_faults_.unsynced_operations_lost += outcome.unsynced - outcome.prefix;
  slot.durable = read_back(*slot.fs, storage_options());
  if (slot.durable.damage)
    fail("storage: a power cut alone left " + slot.id +
         " with damage: " + slot.durable.damage->description);
  forget_entries_lost_with(node, volatile_log);
  check_durable_promises(node);
}

recovered_state cluster::durable_state(size_t node) const {
  if (!nodes_[node].alive)
    return nodes_[node].durable;
  sim_file_system synced_only(*nodes_[node].fs);
  synced_only.crash_keeping(0);
  return read_back(synced_only, storage_options());
}

bool cluster::rot(size_t node) {
  auto& slot = nodes_[node];
  if (slot.alive)
    return false;
  std::string newest;
  for (const auto& name : slot.fs->file_names(data_directory))
    if (name.rfind("log-", 0) == 0)
      newest = name;
  if (newest.empty())
    return false;
  auto path = std::string(data_directory) + "/" + newest;
  auto size = slot.fs->contents(path).size();
  if (size < 64)
    return false;
  auto offset = size - 1 - rng_() % 48;
  slot.fs->flip_byte(path, offset);
  slot.rotten = true;
  ++disk_faults_.bit_rots;
  record("fault: bit rot in " + slot.id + ":" + path + " at offset " + std::to_string(offset));
  return true;
}

void cluster::crash_at_disk_call(size_t node, uint64_t calls) {
  nodes_[node].fs->fail_after(calls);
  if (calls > 0)
    record("fault: " + nodes_[node].id + " dies at its disk call " + std::to_string(calls) +
           " from now");
}

file_storage_options cluster::storage_options() const {
  file_storage_options options;
  options.write_buffer_bytes = opts_.faults.write_buffer_bytes;
  options.max_segment_bytes = opts_.faults.max_segment_bytes;
  return options;
}

void cluster::forget_entries_lost_with(
    size_t crashed, const std::vector<std::pair<uint64_t, uint64_t>>& volatile_log) {
  // An entry that existed only in the memory of a node that crashed before syncing it never
  // existed as far as Raft is concerned: the node may create another entry with the same index
  // and term after it restarts (its term was not durable either, so nothing of that term left
  // it). Only entries some other node or disk still holds keep their identity for the log
  // matching check. Entries still travelling on a link come back when they are delivered.
  // Entries a snapshot covers (at or below a log's base) were committed: they keep their identity.
  auto holds = [](const recovered_state& durable, uint64_t index, uint64_t term) {
    const auto& base = durable.base;
    if (index <= base.index)
      return true;
    return durable.entries.size() >= index - base.index &&
           durable.entries[index - base.index - 1].term == term;
  };
  for (const auto& [index, term] : volatile_log) {
    if (holds(nodes_[crashed].durable, index, term))
      continue;
    bool held_elsewhere = false;
    for (size_t other = 0; other < nodes_.size() && !held_elsewhere; ++other) {
      if (other == crashed)
        continue;
      held_elsewhere = nodes_[other].alive ? (index < node(other).log().first_index() ||
                                              node(other).log().matches(index, term))
                                           : holds(nodes_[other].durable, index, term);
    }
    if (!held_elsewhere)
      chain_of_entry_.erase(std::make_pair(index, term));
  }
}

void cluster::restore_link(size_t from, size_t to) {
  cut_links_.erase({from, to});
  record("fault: restore " + nodes_[from].id + "->" + nodes_[to].id);
}

void cluster::stall_disk(size_t node, caf::timespan duration) {
  nodes_[node].disk_stalled_until = now() + duration;
  record("fault: stall disk of " + nodes_[node].id + " for " + ms(duration));
}

void cluster::restart(size_t node) {
  if (nodes_[node].alive)
    return;
  record("fault: restart " + nodes_[node].id);
  spawn_node(node);
}

// -- clients -------------------------------------------------------------------------------------

size_t cluster::propose(size_t node, const std::string& key, const std::string& value,
                        caf::timespan timeout) {
  auto position = proposals_.size();
  caf::anon_send(client_, propose_atom::value, node, key, value, timeout);
  return position;
}

void cluster::start_client(caf::timespan min_interval, caf::timespan max_interval, size_t keys) {
  caf::anon_send(client_, min_interval, max_interval, keys);
}

size_t cluster::join(size_t node, size_t joining) {
  auto position = joins_.size();
  caf::anon_send(client_, join_atom::value, node, nodes_[joining].id, "sim:" + nodes_[joining].id);
  return position;
}

size_t cluster::remove(size_t node, size_t target, bool force) {
  auto position = joins_.size();
  caf::anon_send(client_, remove_atom::value, node, nodes_[target].id, force);
  return position;
}

size_t cluster::transfer(size_t node, std::optional<size_t> target) {
  auto position = joins_.size();
  caf::anon_send(client_, transfer_atom::value, node, target ? nodes_[*target].id : std::string{});
  return position;
}

size_t cluster::skip_lone(size_t node) {
  for (size_t i = 0; i < nodes_.size() && is_lone(node); ++i)
    node = (node + 1) % nodes_.size();
  return node;
}

bool cluster::member_of_leader_configuration(size_t index) {
  auto l = leader();
  if (!l)
    return true;
  auto& leader_node = node(*l);
  return leader_node.members().count(nodes_[index].id) > 0 ||
         leader_node.learners().count(nodes_[index].id) > 0;
}

void cluster::start_history_clients(size_t clients, size_t keys) {
  for (size_t i = 0; i < clients; ++i) {
    auto client = system_->spawn(history_client_impl, this, uint64_t{100 + i}, keys);
    actor_names_[client.id()] = "hclient" + std::to_string(i);
    caf::anon_send(client, history_tick_atom::value);
    history_clients_.push_back(client);
  }
}

void cluster::final_reads(size_t keys) {
  if (history_clients_.empty())
    return;
  for (size_t node = 0; node < nodes_.size(); ++node)
    if (member_of_leader_configuration(node))
      for (size_t k = 0; k < keys; ++k)
        caf::anon_send(history_clients_[0], history_get_atom::value, node, "k" + std::to_string(k));
}

void cluster::stop_history_clients() {
  for (auto& client : history_clients_)
    caf::anon_send(client, client_stop_atom::value);
}

size_t cluster::begin_operation(lin::operation op) {
  op.id = history_.size();
  op.outcome = lin::outcome::unknown;
  history_.push_back(std::move(op));
  history_done_.push_back(false);
  return history_.size() - 1;
}

void cluster::end_operation(size_t position, lin::outcome outcome, uint64_t complete) {
  history_[position].outcome = outcome;
  history_[position].complete = complete;
  history_done_[position] = true;
}

bool cluster::history_settled() const {
  return std::all_of(history_done_.begin(), history_done_.end(), [](bool done) { return done; });
}

void cluster::stop_client() {
  caf::anon_send(client_, client_stop_atom::value);
}

// -- inspection ----------------------------------------------------------------------------------

raft_core& cluster::node(size_t index) {
  return raft_core_of(nodes_[index].raft);
}

std::optional<size_t> cluster::leader() {
  std::optional<size_t> best;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].alive || is_lone(i)) // a lone node leads a cluster of its own
      continue;
    auto& n = node(i);
    if (n.role() == raft_role::leader && (!best || n.term() > node(*best).term()))
      best = i;
  }
  return best;
}

bool cluster::converged() {
  auto l = leader();
  if (!l)
    return false;
  auto& leader_node = node(*l);
  auto last = leader_node.log().last_index();
  if (leader_node.commit_index() != last)
    return false;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].alive)
      return false;
    if (!member_of_leader_configuration(i))
      continue; // removed (it stopped at its removal) or never added
    auto& n = node(i);
    // Followers may keep an uncommitted suffix the leader never overwrote: that is legal.
    if (n.term() != leader_node.term() || n.applied_index() != last)
      return false;
  }
  return true;
}

std::string cluster::describe_nodes() {
  std::ostringstream out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out << "    " << nodes_[i].id << ": ";
    if (!nodes_[i].alive) {
      out << "down\n";
      continue;
    }
    auto& n = node(i);
    out << to_string(n.role()) << " term " << n.term() << " leader '" << n.leader_id()
        << "' commit " << n.commit_index() << " applied " << n.applied_index() << " last "
        << n.log().last_index() << " (term " << n.log().last_term() << ") durable "
        << n.durable_last_index() << "\n";
  }
  return out.str();
}

void cluster::check_acknowledged_applied() {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].alive)
      continue;
    // A removed node stopped applying at its removal: it need not hold later writes.
    bool member = member_of_leader_configuration(i);
    // (client, sequence) -> indexes where it took effect on this node.
    std::map<std::pair<uint64_t, uint64_t>, std::vector<uint64_t>> effective;
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> id_at_index;
    // Entries up to `from_snapshot` reached this life of the node in a snapshot (at its start,
    // or installed from the leader: a gap in what it applied), not one by one.
    uint64_t from_snapshot = nodes_[i].started_from_snapshot;
    uint64_t expected = from_snapshot + 1;
    for (const auto& a : nodes_[i].applied) {
      if (a.index > expected)
        from_snapshot = a.index - 1;
      expected = a.index + 1;
    }
    if (node(i).applied_index() >= expected)
      from_snapshot = node(i).applied_index();
    for (const auto& a : nodes_[i].applied) {
      if (a.kind != entry_kind::command)
        continue;
      kv_command command;
      if (!decode_command(a.data, command))
        fail("node " + nodes_[i].id + " applied an undecodable command at " +
             std::to_string(a.index));
      auto id = std::make_pair(command.client_id, command.sequence);
      id_at_index[a.index] = id;
      if (a.effect == kv_state_machine::apply_effect::applied)
        effective[id].push_back(a.index);
    }
    for (const auto& p : proposals_) {
      auto id = std::make_pair(p.client_id, p.sequence);
      auto found = effective.find(id);
      auto times = found == effective.end() ? 0 : found->second.size();
      auto name = "proposal " + p.key + "=" + p.value + " (seq " + std::to_string(p.sequence) + ")";
      if (times > 1)
        fail(name + " took effect " + std::to_string(times) + " times on " + nodes_[i].id);
      if (!p.completed)
        continue;
      if (p.status == reply_status::ok && member) {
        if (times == 0 && p.index <= from_snapshot)
          continue;
        if (times != 1)
          fail(name + " was acknowledged at index " + std::to_string(p.index) +
               " but is not applied on " + nodes_[i].id);
        if (id_at_index[p.index] != id)
          fail(name + " was acknowledged at index " + std::to_string(p.index) + " but " +
               nodes_[i].id + " applied something else there");
      } else if (p.status == reply_status::not_leader || p.status == reply_status::no_leader ||
                 p.status == reply_status::removed) {
        if (times != 0)
          fail(name + " was refused (" + to_string(p.status) + ") but took effect on " +
               nodes_[i].id);
      }
    }
  }
}

// -- checkers ------------------------------------------------------------------------------------

void cluster::check_node_log(size_t index) {
  auto& slot = nodes_[index];
  auto& log = node(index).mutable_log_for_checks();
  auto lowest = log.take_lowest_changed_index();
  const uint64_t base = log.first_index() - 1;
  if (base != slot.chain_base) {
    // Compacted or reset to a snapshot: rebuild the chain from the new base. Entries at or below
    // the base are committed; the chain continues from the base entry's, if any node recorded it.
    slot.chain.clear();
    slot.chain_base = base;
    lowest = base + 1;
  }
  if (lowest == std::numeric_limits<uint64_t>::max() &&
      slot.chain_base + slot.chain.size() == log.last_index())
    return;
  lowest = std::min<uint64_t>(lowest, slot.chain_base + slot.chain.size() + 1);
  lowest = std::max<uint64_t>(lowest, slot.chain_base + 1);
  slot.chain.resize(lowest - 1 - slot.chain_base);
  for (auto i = lowest; i <= log.last_index(); ++i) {
    const auto& e = log.at(i);
    uint64_t previous = 0;
    if (i > slot.chain_base + 1) {
      previous = slot.chain[i - 2 - slot.chain_base];
    } else if (i > 1) {
      auto known = chain_of_entry_.find(std::make_pair(i - 1, log.term_at(i - 1)));
      if (known == chain_of_entry_.end()) {
        // Nobody's log holds the base entry any more: this node's chain cannot be anchored, so
        // its entries are checked against the others' only from the next compaction on.
        slot.chain.clear();
        slot.chain_base = log.last_index();
        return;
      }
      previous = known->second;
    }
    auto chain = mix(previous, entry_hash(e.term, e.index, e.kind, e.data));
    slot.chain.push_back(chain);
    auto [it, inserted] = chain_of_entry_.emplace(std::make_pair(e.index, e.term), chain);
    if (!inserted && it->second != chain)
      fail("log matching: " + slot.id + " has an entry at index " + std::to_string(i) + " term " +
           std::to_string(e.term) +
           " whose log prefix differs from another node's entry with the same index and term");
  }
}

void cluster::check() {
  if (!first_invariant_violation().empty())
    fail(first_invariant_violation());
  if (!observed_violation_.empty())
    fail(observed_violation_);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto& slot = nodes_[i];
    if (!slot.alive)
      continue;
    if (!slot.died.empty())
      fail(slot.id + "'s Raft actor stopped: " + slot.died);
    auto& n = node(i);
    // The simulated peers are honest: a message a node had to drop as a protocol violation
    // means a sender broke Raft.
    if (!n.protocol_violations().empty())
      fail(slot.id + ": " + n.protocol_violations().front());
    if (i + opts_.lone_nodes >= nodes_.size() &&
        (n.members().size() != 1 || n.members().count(slot.id) == 0))
      slot.left_lone = true;
    if (is_lone(i)) {
      // Its own one-node cluster: not subject to the main cluster's checks until it joins.
      slot.last_commit = 0;
      continue;
    }
    if (n.role() == raft_role::leader && slot.led_term != n.term()) {
      slot.led_term = n.term();
      if (chance(rng_, opts_.faults.reboot_new_leader_probability))
        scheduled_reboots_.emplace_back(
            now() + random_between(caf::timespan{0}, opts_.faults.max_new_leader_reboot_delay), i);
    }
    if (n.role() == raft_role::leader) {
      auto [it, inserted] = leader_of_term_.emplace(n.term(), slot.id);
      if (!inserted && it->second != slot.id)
        fail("election safety: " + it->second + " and " + slot.id + " both led term " +
             std::to_string(n.term()));
    }
    check_node_log(i);
    auto commit = n.commit_index();
    if (commit < slot.last_commit)
      fail("commit index of " + slot.id + " went back from " + std::to_string(slot.last_commit) +
           " to " + std::to_string(commit));
    // The node's chain hash of its log prefix up to `index`, unless compaction took that entry.
    auto chain_at = [&slot](uint64_t index) -> std::optional<uint64_t> {
      if (index <= slot.chain_base || index > slot.chain_base + slot.chain.size())
        return std::nullopt;
      return slot.chain[index - 1 - slot.chain_base];
    };
    if (commit > slot.last_commit) {
      // Everything up to `commit` is committed: it must agree with what was committed before.
      // (Entries a snapshot took from this node's log were committed when it was taken.)
      auto known = committed_chain_.size();
      auto overlap = std::min<uint64_t>(commit, known);
      auto mine = overlap > 0 ? chain_at(overlap) : std::nullopt;
      if (mine && *mine != committed_chain_[overlap - 1])
        fail("committed entries differ: " + slot.id + " committed up to " + std::to_string(commit) +
             " but its log disagrees with what was committed at " + std::to_string(overlap));
      for (auto k = known + 1; k <= commit; ++k) {
        auto next = chain_at(k);
        if (!next)
          break; // the others record it, or it stays unknown (committed_chain_ is contiguous)
        committed_chain_.push_back(*next);
      }
      slot.last_commit = commit;
    }
    if (n.role() == raft_role::leader) {
      auto& highest = committed_by_leader_in_term_[n.term()];
      highest = std::max(highest, commit);
      // Leader completeness: entries committed in earlier terms are in every later leader's log
      // (or in its snapshot, which covers only committed entries).
      for (const auto& [term, committed] : committed_by_leader_in_term_) {
        if (term >= n.term())
          break;
        if (committed == 0)
          continue;
        auto mine = chain_at(committed);
        if (n.log().last_index() < committed || (mine && committed <= committed_chain_.size() &&
                                                 *mine != committed_chain_[committed - 1]))
          fail("leader completeness: " + slot.id + " leads term " + std::to_string(n.term()) +
               " without the entries committed up to " + std::to_string(committed) + " in term " +
               std::to_string(term));
      }
    }
  }
}

// -- seeds and the random fault mix
// ----------------------------------------------------------------

std::vector<uint64_t> seeds_from_environment(uint64_t default_count) {
  std::vector<uint64_t> seeds;
  if (const char* one = std::getenv("SIM_SEED"); one && *one) {
    seeds.push_back(std::strtoull(one, nullptr, 10));
    return seeds;
  }
  auto count = default_count;
  if (const char* many = std::getenv("SIM_SEEDS"); many && *many)
    count = std::strtoull(many, nullptr, 10);
  for (uint64_t s = 1; s <= count; ++s)
    seeds.push_back(s);
  return seeds;
}

namespace {

/// One random membership change, asked of a random node (followers forward it): add a node
/// that started alone, remove a member (the leader included; now and then with force, but
/// never below three voters), or hand leadership over.
void change_membership(cluster& c, std::mt19937_64& meta, random_run_result& result) {
  auto n = c.size();
  auto via = c.skip_lone(meta() % n); // a lone node would change its own cluster
  auto l = c.leader();
  switch (meta() % 3) {
  case 0: {
    std::vector<size_t> lone;
    for (size_t i = 0; i < n; ++i)
      if (c.alive(i) && !c.member_of_leader_configuration(i) && c.node(i).members().size() <= 1 &&
          !c.node(i).removed())
        lone.push_back(i);
    if (!lone.empty())
      c.join(via, lone[meta() % lone.size()]);
    break;
  }
  case 1: {
    if (!l)
      break;
    auto& leader = c.node(*l);
    std::vector<size_t> members;
    for (size_t i = 0; i < n; ++i)
      if (leader.members().count(c.id(i)) > 0 || leader.learners().count(c.id(i)) > 0)
        members.push_back(i);
    auto target = members[meta() % members.size()];
    // At least three voters stay: with two, bit rot on one of them (repairable only from a
    // leader, which needs its vote) would rightly leave the cluster without a leader for good.
    if (leader.members().count(c.id(target)) > 0 && leader.members().size() <= 3)
      break;
    c.remove(meta() % 2 == 0 ? *l : via, target, meta() % 8 == 0);
    ++result.removals;
    break;
  }
  default:
    c.transfer(via, meta() % 2 == 0 ? std::optional<size_t>{} : std::optional<size_t>{meta() % n});
    break;
  }
}

} // namespace

random_run_result run_random_seed(uint64_t seed, const random_run_options& run_options) {
  reset_invariant_violations();
  random_run_result result;
  std::mt19937_64 meta(mix(seed, 0xFA17));
  auto pick = [&](double low, double high) { return low + (high - low) * uniform01(meta); };
  auto pick_ms = [&](int low, int high) {
    return caf::timespan{
        std::chrono::milliseconds(low + static_cast<int>(meta() % (high - low + 1)))};
  };

  cluster::options o;
  o.nodes = meta() % 2 == 0 ? 3 : 5;
  o.seed = seed;
  if (run_options.membership_changes) {
    o.lone_nodes = 2;
    o.nodes += o.lone_nodes;
  }
  o.faults.drop_probability = pick(0.0, 0.2);
  o.faults.duplicate_probability = pick(0.0, 0.1);
  o.faults.min_delay = std::chrono::microseconds(200);
  o.faults.max_delay = pick_ms(2, 40);
  // Real disks take up to tens of milliseconds to sync; a long window makes crashes that lose
  // unsynced writes likely enough to matter.
  o.faults.max_sync_delay = pick_ms(0, meta() % 2 ? 5 : 40);
  o.faults.slow_sync_probability = meta() % 2 ? pick(0.0, 0.05) : 0.0;
  o.faults.slow_hard_state_sync_probability = meta() % 4 ? pick(0.0, 0.6) : 0.0;
  o.faults.max_slow_sync_delay = pick_ms(50, 1000);
  o.faults.lose_in_flight_on_crash = pick(0.0, 1.0);
  o.faults.reboot_new_leader_probability = meta() % 4 ? pick(0.0, 0.5) : 0.0;
  o.faults.max_new_leader_reboot_delay = pick_ms(10, 300);
  o.faults.reboot_while_unsynced_probability = meta() % 2 ? pick(0.0, 0.01) : 0.0;
  o.faults.tear_probability = pick(0.0, 0.5);
  static constexpr std::size_t write_buffers[] = {0, 64, 256, std::size_t{1} << 20};
  o.faults.write_buffer_bytes = write_buffers[meta() % 4];
  o.faults.max_segment_bytes = 1024 + meta() % (64 * 1024);
  // Snapshots, compaction and InstallSnapshot in three quarters of the seeds, with thresholds small
  // enough that followers that were down or cut off catch up by snapshot. A separate stream,
  // so the other faults a seed picks stay what they were before snapshots existed.
  std::mt19937_64 snapshot_meta(mix(seed, 0x5AA9));
  static constexpr uint64_t snapshot_every[] = {0, 7, 25, 80};
  static constexpr uint64_t keep_tails[] = {0, 3, 40};
  static constexpr uint64_t chunk_bytes[] = {61, 700, uint64_t{1} << 20};
  o.snapshot_entries = snapshot_every[snapshot_meta() % 4];
  o.snapshot_retain = 1 + snapshot_meta() % 2;
  o.base_config.snapshot_keep_tail = keep_tails[snapshot_meta() % 3];
  o.base_config.snapshot_chunk_bytes = chunk_bytes[snapshot_meta() % 3];
  // Media corruption (bit rot) in a third of the seeds: the node must repair, not forget.
  bool rot = meta() % 3 == 0;
#ifdef INFINITYSTORE_TESTING
  o.base_config.broken = run_options.broken;
#else
  (void)run_options;
#endif
  std::ostringstream setup;
  setup << "seed " << seed << ": " << o.nodes << " nodes, drop " << o.faults.drop_probability
        << ", duplicate " << o.faults.duplicate_probability << ", delay up to "
        << ms(o.faults.max_delay) << ", sync up to " << ms(o.faults.max_sync_delay) << " ("
        << o.faults.slow_sync_probability << " of syncs, "
        << o.faults.slow_hard_state_sync_probability << " of hard state syncs up to "
        << ms(o.faults.max_slow_sync_delay) << "), in-flight loss on crash "
        << o.faults.lose_in_flight_on_crash << ", new leaders rebooted "
        << o.faults.reboot_new_leader_probability << ", reboots at unsynced sends "
        << o.faults.reboot_while_unsynced_probability << ", torn writes "
        << o.faults.tear_probability << ", write buffer " << o.faults.write_buffer_bytes
        << ", segments of " << o.faults.max_segment_bytes << " bytes" << (rot ? ", bit rot" : "")
        << ", snapshots every " << o.snapshot_entries << " entries (tail "
        << o.base_config.snapshot_keep_tail << ", chunks of " << o.base_config.snapshot_chunk_bytes
        << " bytes, keep " << o.snapshot_retain << ")"
        << (run_options.membership_changes ? ", membership changes" : "");

  std::unique_ptr<cluster> c;
  try {
    c = std::make_unique<cluster>(o);
    if (run_options.check_linearizability)
      c->start_history_clients(4, 3);
    else
      c->start_client(std::chrono::milliseconds(2), std::chrono::milliseconds(25), 3);
    auto fault_phase = pick_ms(3000, 7000);
    auto end = c->now() + fault_phase;
    while (c->now() < end) {
      c->run_for(pick_ms(20, 500));
      auto n = c->size();
      auto leader_or_any = [&] {
        return meta() % 2 == 0 && c->leader() ? *c->leader() : meta() % n;
      };
      if (run_options.membership_changes && meta() % 3 == 0) {
        change_membership(*c, meta, result);
        continue;
      }
      switch (meta() % 18) {
      case 0:
      case 1: {
        std::set<size_t> side;
        for (size_t i = 0; i < n; ++i)
          if (meta() % 2)
            side.insert(i);
        c->partition(side);
        break;
      }
      case 2:
        if (auto l = c->leader())
          c->isolate(*l);
        break;
      case 3: {
        auto from = meta() % n;
        c->cut(from, (from + 1 + meta() % (n - 1)) % n);
        break;
      }
      case 4:
      case 5:
      case 6:
        c->heal();
        break;
      case 7:
      case 8:
      case 9:
        c->crash(leader_or_any());
        ++result.crashes;
        break;
      case 10:
      case 11:
      case 12: {
        std::vector<size_t> dead;
        for (size_t i = 0; i < n; ++i)
          if (!c->alive(i))
            dead.push_back(i);
        if (!dead.empty())
          c->restart(dead[meta() % dead.size()]);
        break;
      }
      case 13:
      case 14:
        // A slow or hung fsync while the network works: the node keeps voting, leading and
        // taking writes, none of which may count before the disk catches up.
        c->stall_disk(leader_or_any(), pick_ms(20, 1500));
        break;
      case 16:
        // A crash at a system call boundary, possibly between a write and its sync.
        if (auto victim = leader_or_any(); c->alive(victim)) {
          c->crash_at_disk_call(victim, 1 + meta() % 12);
          ++result.crashes;
        }
        break;
      case 17: {
        // Bit rot on one node at a time, while it is down and nobody repairs: more would be
        // more than the majority the cluster needs to recover the lost entries from.
        if (!rot)
          break;
        bool repairing = false;
        // (A node that died while repairing is still repairing: its disk says so.)
        for (size_t i = 0; i < n; ++i)
          repairing = repairing || c->rotten(i) ||
                      (c->alive(i) ? c->node(i).repair_until_index() > 0
                                   : c->durable_state(i).state.repair_until_index > 0);
        std::vector<size_t> dead;
        for (size_t i = 0; i < n; ++i)
          if (!c->alive(i))
            dead.push_back(i);
        if (!repairing && !dead.empty())
          c->rot(dead[meta() % dead.size()]);
        break;
      }
      default: {
        // kill -9 and an immediate restart by a supervisor: the node comes back before anyone
        // else noticed, from whatever its disk had synced.
        auto victim = leader_or_any();
        c->crash(victim);
        c->restart(victim);
        ++result.crashes;
        break;
      }
      }
    }
    // Heal phase: no faults, everyone back; the cluster must converge in bounded time.
    c->stop_client();
    c->stop_history_clients();
    c->heal();
    c->faults().drop_probability = 0;
    c->faults().duplicate_probability = 0;
    c->faults().reboot_new_leader_probability = 0;
    c->faults().reboot_while_unsynced_probability = 0;
    c->cancel_scheduled_faults();
    for (size_t i = 0; i < c->size(); ++i)
      c->crash_at_disk_call(i, 0);
    for (size_t i = 0; i < c->size(); ++i)
      c->restart(i);
    if (!c->run_until([&] { return c->converged(); }, std::chrono::seconds(30)))
      throw check_failure("liveness: no convergence within 30 s of simulated time after healing\n" +
                          c->describe_nodes());
    auto all_done = [&] {
      for (const auto& p : c->proposals())
        if (!p.completed)
          return false;
      return true;
    };
    // A proposal still on its way to the leader may commit after the first convergence: wait
    // for every outcome and for every node to have applied it.
    c->run_until([&] { return all_done() && c->converged(); }, std::chrono::seconds(5));
    c->check_acknowledged_applied();
    if (run_options.check_linearizability) {
      if (!c->run_until([&] { return c->history_settled(); }, std::chrono::seconds(5)))
        throw check_failure("liveness: client operations still pending 5 s after convergence");
      // Every acknowledged write must still be visible: read every key on every node.
      auto first_final = c->history().size();
      c->final_reads(3);
      if (!c->run_until([&] { return c->history_settled(); }, std::chrono::seconds(5)))
        throw check_failure("liveness: final reads still pending after 5 s");
      for (auto i = first_final; i < c->history().size(); ++i)
        if (c->history()[i].outcome != lin::outcome::ok)
          throw check_failure("liveness: final read failed after healing: " +
                              lin::to_string(c->history()[i]));
      for (const auto& op : c->history())
        if (op.outcome == lin::outcome::unknown)
          ++result.unknown_outcomes;
      result.operations = c->history().size();
      auto verdict = lin::check(c->history());
      if (verdict.verdict == lin::verdict::violation)
        throw check_failure("linearizability: key " + verdict.key + "\n" + verdict.explanation);
      if (verdict.verdict == lin::verdict::unknown)
        throw check_failure("linearizability: checker budget exhausted on key " + verdict.key);
    }
    for (const auto& p : c->proposals())
      if (p.status == reply_status::ok)
        ++result.acknowledged;
    for (const auto& change : c->joins())
      if (change.completed && change.status == reply_status::ok)
        ++result.changes_ok;
    if (auto l = c->leader()) {
      for (const auto& [id, address] : c->node(*l).members())
        result.final_configuration += id + " ";
      for (const auto& [id, address] : c->node(*l).learners())
        result.final_configuration += id + "(learner) ";
    }
    result.steps = c->steps();
    result.disk = c->disk_faults();
  } catch (const std::exception& e) {
    result.passed = false;
    std::ostringstream report;
    report << "SIMULATION FAILURE (replay with SIM_SEED=" << seed << ")\n  " << setup.str()
           << "\n  violation: " << e.what() << "\n  last events:\n"
           << (c ? c->trace_tail() : std::string{});
    result.report = report.str();
  }
  return result;
}

seed_sweep sweep_seeds(const std::vector<uint64_t>& seeds, const random_run_options& options,
                       size_t max_failures) {
  seed_sweep sweep;
  auto started = std::chrono::steady_clock::now();
  for (auto seed : seeds) {
    auto result = run_random_seed(seed, options);
    sweep.steps += result.steps;
    sweep.acknowledged += result.acknowledged;
    sweep.crashes += result.crashes;
    sweep.operations += result.operations;
    sweep.unknown_outcomes += result.unknown_outcomes;
    sweep.removals += result.removals;
    sweep.changes_ok += result.changes_ok;
    sweep.disk.add(result.disk);
    if (!result.passed) {
      std::cout << result.report << std::endl;
      if (++sweep.failures >= max_failures)
        break;
    }
  }
  sweep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return sweep;
}

std::optional<std::pair<uint64_t, std::string>>
first_seed_failing_with(const random_run_options& options, uint64_t limit,
                        const std::function<bool(const std::string& report)>& counts) {
  std::vector<uint64_t> seeds;
  if (const char* one = std::getenv("SIM_SEED"); one && *one)
    seeds.push_back(std::strtoull(one, nullptr, 10));
  else
    for (uint64_t seed = 1; seed <= limit; ++seed)
      seeds.push_back(seed);
  bool verbose = std::getenv("SIM_VERBOSE") != nullptr;
  for (auto seed : seeds) {
    auto result = run_random_seed(seed, options);
    if (result.passed)
      continue;
    if (verbose)
      std::cout << result.report << std::endl;
    if (counts(result.report))
      return std::make_pair(seed, result.report.substr(0, result.report.find("  last events")));
  }
  return std::nullopt;
}

} // namespace infinity::sim
