#include "actors/raft/node_actor.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <variant>
#include <vector>

#if defined(__GLIBC__) && !defined(INFINITYSTORE_TESTING)
#include <malloc.h>
#define INFINITY_RELEASE_FREE_MEMORY 1
#endif

namespace infinity {
namespace {

/// Memory (issue 13, bench/README.md): once the log was compacted after a snapshot, the entries
/// dropped (and the image's copies of shards, freed before) leave free space scattered through
/// glibc's heaps that stays resident: 10-25 MB per node at 100,000 keys; so do the buffers of a
/// burst of requests. malloc_trim gives those pages back. Once per snapshot, and once when the
/// commits stop for a second; it takes milliseconds (logged), on a detached actor of its own. Not
/// in the simulator, where many nodes share one heap.
void release_free_memory(caf::actor_system& system, const raft_event_log& log, const char* when) {
#ifdef INFINITY_RELEASE_FREE_MEMORY
  // On a thread of its own: it takes 1-30 ms, which the Raft actor (and every write behind it)
  // must not wait for. glibc locks one arena at a time while it trims it.
  system.spawn<caf::detached>(
      [](caf::event_based_actor* self, raft_event_log log, std::string when) {
        auto started = std::chrono::steady_clock::now();
        malloc_trim(0);
        if (log) {
          auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
          log("released free heap memory " + when + " (" + std::to_string(us) + " us)");
        }
        self->quit();
      },
      log, std::string{when});
#else
  (void)system;
  (void)log;
  (void)when;
#endif
}

struct raft_node_state {
  std::unique_ptr<raft_core> core;
  storage_actor storage;
  kv_actor kv;
  /// Snapshot files; null where snapshots are off (e.g. unit tests of the shell).
  snapshot_actor snapshots;
  caf::actor observer;
  /// Effects that arrived before the observer was set.
  std::vector<raft_effect> unobserved;
  std::map<std::string, raft_peer_actor> peers;
  std::map<uint64_t, caf::typed_response_promise<client_reply>> clients;
  /// The ids in `clients` that are write proposals (counted by outcome for metrics).
  std::set<uint64_t> proposals;
  uint64_t next_request_id = 0;
  // Counters for raft_status (metrics); the core stays free of bookkeeping nobody replays.
  std::string last_leader;
  uint64_t leader_changes = 0;
  uint64_t proposals_committed = 0;
  uint64_t proposals_failed = 0;
  raft_event_log log;
  peer_authenticator authenticate;
  uint64_t forged_dropped = 0;
  std::chrono::milliseconds tick_interval{20};
  /// What sessions read without asking us (may be null).
  std::shared_ptr<local_read_view> view;
  /// Commit index at the last tick, ticks since it changed, and the commit index at which free
  /// memory was last released for quiet (see release_free_memory).
  uint64_t commit_at_tick = 0;
  uint64_t quiet_ticks = 0;
  uint64_t released_at_commit = 0;
  static inline const char* name = "raft_node";
};

using node_pointer = raft_node_actor::stateful_pointer<raft_node_state>;

bool from_this_process(node_pointer self) {
  auto sender = self->current_sender();
  return sender == nullptr || sender->node() == self->node();
}

void carry_out(node_pointer self);

void apply_effect(node_pointer self, const raft_effect& effect) {
  auto& st = self->state;
  switch (effect.what) {
  case raft_effect::kind::reset_state_machine:
    self->send(st.kv, kv_reset_atom::value);
    return;
  case raft_effect::kind::read_snapshot_chunk: {
    auto peer = effect.id;
    auto snapshot = effect.snapshot;
    auto offset = effect.offset;
    if (!st.snapshots) {
      st.core->snapshot_chunk_read(peer, snapshot, offset, {}, true);
      return;
    }
    self->request(st.snapshots, caf::infinite, snapshot_read_atom::value, snapshot, offset,
                  effect.length)
        .then(
            [self, peer, snapshot, offset](bool ok, std::string& data, snapshot_info& newest) {
              auto& core = *self->state.core;
              // Replaced by a snapshot the state machine has not reported yet: use that one.
              if (!ok && newest.index > core.snapshot().index &&
                  newest.index <= core.applied_index())
                core.snapshot_taken(newest);
              core.snapshot_chunk_read(peer, snapshot, offset, std::move(data), !ok);
              carry_out(self);
            },
            [self, peer, snapshot, offset](caf::error&) {
              self->state.core->snapshot_chunk_read(peer, snapshot, offset, {}, true);
              carry_out(self);
            });
    return;
  }
  case raft_effect::kind::store_snapshot_chunk: {
    auto snapshot = effect.snapshot;
    if (!st.snapshots) {
      st.core->snapshot_chunk_stored(snapshot, 0, false, true);
      return;
    }
    self->request(st.snapshots, caf::infinite, snapshot_store_atom::value, snapshot, effect.offset,
                  effect.data, effect.last)
        .then(
            [self, snapshot](uint64_t next_offset, bool complete, bool failed) {
              self->state.core->snapshot_chunk_stored(snapshot, next_offset, complete, failed);
              carry_out(self);
            },
            [self, snapshot](caf::error&) {
              self->state.core->snapshot_chunk_stored(snapshot, 0, false, true);
              carry_out(self);
            });
    return;
  }
  case raft_effect::kind::restore_state_machine: {
    auto snapshot = effect.snapshot;
    if (!st.snapshots) {
      st.core->state_machine_restore_failed(snapshot);
      return;
    }
    self->request(st.snapshots, caf::infinite, snapshot_load_atom::value, snapshot)
        .then(
            [self](restored_state_machine& restored) {
              // The KV actor gets the new state before any batch Raft applies after it.
              auto info = restored.info;
              // Published here, not when the KV actor gets it: the core answers waiting reads
              // once restored, and they must not find the old state in the view.
              if (self->state.view)
                self->state.view->publish(restored.machine);
              self->send(self->state.kv, kv_install_atom::value, std::move(restored));
              self->state.core->state_machine_restored(info);
              carry_out(self);
            },
            [self, snapshot](caf::error&) {
              self->state.core->state_machine_restore_failed(snapshot);
              carry_out(self);
            });
    return;
  }
  case raft_effect::kind::membership_changed:
  case raft_effect::kind::dial:
  case raft_effect::kind::hang_up:
    break;
  }
  if (!st.observer) {
    st.unobserved.push_back(effect);
    return;
  }
  if (effect.what == raft_effect::kind::membership_changed) {
    for (const auto& [id, address] : effect.members)
      if (id != st.core->id() && !address.empty())
        caf::anon_send(st.observer, peer_up_atom::value, id, address);
  } else if (effect.what == raft_effect::kind::dial) {
    caf::anon_send(st.observer, peer_up_atom::value, effect.id, effect.address);
  } else {
    caf::anon_send(st.observer, peer_down_atom::value, effect.id);
  }
}

/// Takes the core's output and carries it out (see ready.hpp for the order).
void carry_out(node_pointer self) {
  auto& st = self->state;
  auto out = st.core->take_ready();
  if (out.persist)
    self->request(st.storage, caf::infinite, std::move(*out.persist))
        .then([self](persisted_atom, uint64_t seq) {
          self->state.core->persisted(seq);
          carry_out(self);
        });
  for (auto& message : out.messages) {
    auto peer = st.peers.find(message.to);
    if (peer == st.peers.end())
      continue; // no connection: lost, as on the network
    std::visit([&](auto& rpc) { self->send(peer->second, std::move(rpc)); }, message.rpc);
  }
  for (auto& work : out.apply)
    self->request(st.kv, caf::infinite, std::move(work.batch))
        .then([self, epoch = work.epoch](const applied_batch& batch) {
          auto& core = *self->state.core;
          auto first = core.log().first_index();
          core.applied(epoch, batch);
          if (core.log().first_index() > first)
            release_free_memory(self->system(), self->state.log, "after the log compaction");
          carry_out(self);
        });
  for (auto& answer : out.answers) {
    if (st.proposals.erase(answer.request_id) > 0)
      ++(answer.reply.status == reply_status::ok ? st.proposals_committed : st.proposals_failed);
    auto client = st.clients.find(answer.request_id);
    if (client == st.clients.end())
      continue;
    client->second.deliver(std::move(answer.reply));
    st.clients.erase(client);
  }
  for (const auto& effect : out.effects)
    apply_effect(self, effect);
  if (st.log)
    for (const auto& line : out.events)
      st.log(line);
  if (out.flush_requested)
    self->send(self, flush_atom::value);
  if (st.view)
    st.view->set_removed_at_index(st.core->removed_at_index());
  if (const auto& leader = st.core->leader_id(); !leader.empty() && leader != st.last_leader) {
    st.last_leader = leader;
    ++st.leader_changes;
  }
}

caf::typed_response_promise<client_reply> new_client(node_pointer self, uint64_t& id) {
  auto promise = self->make_response_promise<client_reply>();
  id = ++self->state.next_request_id;
  self->state.clients.emplace(id, promise);
  return promise;
}

client_reply not_from_here() {
  client_reply reply;
  reply.status = reply_status::rejected;
  reply.reason = "client requests are accepted only from this node's own process";
  return reply;
}

/// Whether an RPC claiming to come from `from` may: always from this process, otherwise only
/// from a node whose connection authenticated as `from` (when there is an authenticator).
bool authentic(node_pointer self, const std::string& from) {
  auto& st = self->state;
  if (!st.authenticate || from_this_process(self))
    return true;
  auto id = st.authenticate(self->current_sender()->node());
  if (id && *id == from)
    return true;
  if (st.forged_dropped++ % 1000 == 0 && st.log)
    st.log("dropped an RPC claiming to be from '" + from + "' on a connection authenticated as " +
           (id ? "'" + *id + "'" : std::string{"nobody"}) + " (" +
           std::to_string(st.forged_dropped) + " so far)");
  return false;
}

template <class Rpc>
void on_rpc(node_pointer self, Rpc& rpc) {
  if (!authentic(self, rpc.from))
    return;
  self->state.core->handle(rpc);
  carry_out(self);
}

raft_node_actor::behavior_type raft_node_impl(node_pointer self, raft_config config,
                                              recovered_state recovered, storage_actor storage,
                                              kv_actor kv, snapshot_actor snapshots, uint64_t seed,
                                              raft_event_log log, peer_authenticator authenticate,
                                              std::shared_ptr<local_read_view> view) {
  auto& st = self->state;
  st.view = std::move(view);
  st.tick_interval = config.tick_interval;
  st.storage = std::move(storage);
  st.kv = std::move(kv);
  st.snapshots = std::move(snapshots);
  st.log = std::move(log);
  st.authenticate = std::move(authenticate);
  st.core = std::make_unique<raft_core>(std::move(config), std::move(recovered), seed);
  // Monitoring the helpers would hide their failure; linking makes the node fail with them.
  self->link_to(st.storage);
  self->link_to(st.kv);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Answer every waiting client before going: their requests may or may not take effect.
    self->state.core->stop();
    carry_out(self);
    self->quit(msg.reason);
  });
  self->delayed_send(self, st.tick_interval, tick_atom::value);
  carry_out(self);
  return {
      [self](request_vote& rpc) { on_rpc(self, rpc); },
      [self](vote_reply& rpc) { on_rpc(self, rpc); },
      [self](append_entries& rpc) { on_rpc(self, rpc); },
      [self](append_reply& rpc) { on_rpc(self, rpc); },
      [self](forward_request& rpc) { on_rpc(self, rpc); },
      [self](forward_reply& rpc) { on_rpc(self, rpc); },
      [self](join_probe& rpc) { on_rpc(self, rpc); },
      [self](join_probe_reply& rpc) { on_rpc(self, rpc); },
      [self](timeout_now& rpc) { on_rpc(self, rpc); },
      [self](install_snapshot& rpc) { on_rpc(self, rpc); },
      [self](install_snapshot_reply& rpc) { on_rpc(self, rpc); },
      [self](propose_atom, std::string& command) -> caf::result<client_reply> {
        if (!from_this_process(self))
          return not_from_here();
        uint64_t id = 0;
        auto promise = new_client(self, id);
        self->state.proposals.insert(id);
        self->state.core->propose(id, std::move(command));
        carry_out(self);
        return promise;
      },
      [self](read_atom) -> caf::result<client_reply> {
        if (!from_this_process(self))
          return not_from_here();
        uint64_t id = 0;
        auto promise = new_client(self, id);
        self->state.core->read(id);
        carry_out(self);
        return promise;
      },
      [self](join_atom, std::string& node_id, std::string& address) -> caf::result<client_reply> {
        if (!from_this_process(self))
          return not_from_here();
        uint64_t id = 0;
        auto promise = new_client(self, id);
        self->state.core->join(id, std::move(node_id), std::move(address));
        carry_out(self);
        return promise;
      },
      [self](remove_atom, std::string& node_id, bool force) -> caf::result<client_reply> {
        if (!from_this_process(self))
          return not_from_here();
        uint64_t id = 0;
        auto promise = new_client(self, id);
        self->state.core->remove(id, std::move(node_id), force);
        carry_out(self);
        return promise;
      },
      [self](transfer_atom, std::string& target) -> caf::result<client_reply> {
        if (!from_this_process(self))
          return not_from_here();
        uint64_t id = 0;
        auto promise = new_client(self, id);
        self->state.core->transfer(id, std::move(target));
        carry_out(self);
        return promise;
      },
      [self](status_atom) {
        if (!from_this_process(self))
          return raft_status{};
        auto& st = self->state;
        auto status = st.core->status();
        status.leader_changes = st.leader_changes;
        status.proposals_committed = st.proposals_committed;
        status.proposals_failed = st.proposals_failed;
        return status;
      },
      [self](tick_atom) {
        if (!from_this_process(self))
          return;
        auto& st = self->state;
        self->delayed_send(self, st.tick_interval, tick_atom::value);
        st.core->tick();
        carry_out(self);
        if (auto commit = st.core->commit_index(); commit != st.commit_at_tick) {
          st.commit_at_tick = commit;
          st.quiet_ticks = 0;
        } else if (commit != st.released_at_commit &&
                   ++st.quiet_ticks * st.tick_interval >= std::chrono::seconds(1)) {
          st.released_at_commit = commit;
          release_free_memory(self->system(), st.log, "after a second without commits");
        }
      },
      [self](flush_atom) {
        if (!from_this_process(self))
          return;
        self->state.core->flush();
        carry_out(self);
      },
      [self](peer_up_atom, std::string& id, caf::actor& handle) {
        if (!from_this_process(self) || id == self->state.core->id())
          return;
        self->state.peers[id] = caf::actor_cast<raft_peer_actor>(std::move(handle));
        self->state.core->peer_up(id);
        carry_out(self);
      },
      [self](peer_down_atom, std::string& id) {
        if (!from_this_process(self))
          return;
        self->state.peers.erase(id);
        self->state.core->peer_down(id);
        carry_out(self);
      },
      [self](observer_atom, caf::actor& observer) {
        if (!from_this_process(self))
          return;
        auto& st = self->state;
        st.observer = std::move(observer);
        auto waiting = std::move(st.unobserved);
        st.unobserved.clear();
        for (const auto& effect : waiting)
          apply_effect(self, effect);
      },
  };
}

} // namespace

raft_node_actor spawn_raft_node(caf::actor_system& system, raft_config config,
                                recovered_state recovered, storage_actor storage, kv_actor kv,
                                snapshot_actor snapshots, uint64_t seed, raft_event_log log,
                                peer_authenticator authenticate,
                                std::shared_ptr<local_read_view> view) {
  return system.spawn(raft_node_impl, std::move(config), std::move(recovered), std::move(storage),
                      std::move(kv), std::move(snapshots), seed, std::move(log),
                      std::move(authenticate), std::move(view));
}

raft_core& raft_core_of(const raft_node_actor& node) {
  auto* ptr = caf::actor_cast<caf::abstract_actor*>(node);
  using actor_type = caf::stateful_actor<raft_node_state, raft_node_actor::base>;
  return *dynamic_cast<actor_type&>(*ptr).state.core;
}

} // namespace infinity
