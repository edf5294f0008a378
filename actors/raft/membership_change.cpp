// Membership (thesis §4): the configuration in effect is the latest config entry in the log,
// committed or not (§4.1), and it changes one server at a time (§4.2): a joining node is probed,
// added as a learner (it receives the log but does not vote), and promoted to voter once it has
// caught up (§4.2.1), so a slow new node never stalls commits; a member is removed; a leader
// that removes itself first hands its leadership over (§3.10, TimeoutNow).
#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {

// -- requests ------------------------------------------------------------------------------------

void raft_core::join(uint64_t request_id, std::string id, std::string address) {
  // A removed node knows no leader it may speak for (its last one may be long gone).
  if (removed())
    answer(request_origin{{}, request_id}, refusal());
  else if (auto* leader = leader_state())
    join_as_leader(*leader, request_origin{{}, request_id}, std::move(id), std::move(address));
  else
    forward(request_id, forwarded_op::join, {}, std::move(id), std::move(address));
  finish_step();
}

void raft_core::remove(uint64_t request_id, std::string id, bool force) {
  if (removed())
    answer(request_origin{{}, request_id}, refusal());
  else if (auto* leader = leader_state())
    remove_as_leader(*leader, request_origin{{}, request_id}, id, force);
  else
    forward(request_id, forwarded_op::remove, {}, std::move(id), {}, force);
  finish_step();
}

void raft_core::transfer(uint64_t request_id, std::string target) {
  if (removed())
    answer(request_origin{{}, request_id}, refusal());
  else if (auto* leader = leader_state())
    transfer_as_leader(*leader, request_origin{{}, request_id}, std::move(target));
  else
    forward(request_id, forwarded_op::transfer, {}, std::move(target), {});
  finish_step();
}

std::string raft_core::change_blocked(const leader_role& leader) const {
  // One change at a time, and only once this term has committed an entry (thesis §4.1, and the
  // fix for the single-server change bug described on raft-dev in 2015).
  if (leader.join)
    return "node " + leader.join->id + " is being added";
  if (leader.transfer)
    return "leadership is being handed to " + leader.transfer->target;
  if (membership_index_ > commit_index_)
    return "the previous membership change is not committed yet";
  if (log_.term_at(commit_index_) != term_)
    return "the leader has not committed an entry of its term yet";
  return {};
}

uint64_t raft_core::append_configuration(leader_role& leader, configuration next) {
  log_entry entry{term_, log_.last_index() + 1, entry_kind::config, encode_configuration(next)};
  auto index = entry.index;
  log_.append(std::move(entry));
  queue_append(log_.at(index));
  adopt_membership(log_.at(index));
  if (auto* still_leader = leader_state())
    broadcast_appends(*still_leader, false);
  (void)leader;
  return index;
}

// -- join ----------------------------------------------------------------------------------------

void raft_core::join_as_leader(leader_role& leader, request_origin origin, std::string id,
                               std::string address) {
  client_reply reply;
  reply.term = term_;
  auto refuse = [&](reply_status status, std::string reason) {
    reply.status = status;
    reply.reason = std::move(reason);
    answer(origin, std::move(reply));
  };
  if (!valid_member_id(id) || address.empty() || address.find('\n') != std::string::npos ||
      address.find('=') != std::string::npos)
    return refuse(reply_status::rejected, "invalid node id or address");
  if (auto i = members_.find(id); i != members_.end()) {
    if (i->second != address && !i->second.empty())
      return refuse(reply_status::rejected, "node " + id + " is already a member at " + i->second);
    reply.status = reply_status::ok; // joining twice is harmless
    reply.index = membership_index_;
    answer(origin, std::move(reply));
    return;
  }
  for (const auto& [member, member_address] : configuration{members_, learners_}.everyone())
    if (member_address == address && member != id)
      return refuse(reply_status::rejected, "address " + address + " belongs to member " + member);
  if (log_.term_at(commit_index_) != term_ && !leader.join && !leader.transfer) {
    leader.changes_awaiting_term_commit.push_back(
        leader_role::pending_change{true, std::move(origin), std::move(id), std::move(address)});
    return;
  }
  if (auto blocked = change_blocked(leader); !blocked.empty())
    return refuse(reply_status::busy, blocked);
  leader.join = leader_role::pending_join{};
  auto& join = *leader.join;
  join.id = id;
  join.address = address;
  join.origin = std::move(origin);
  join.probe_id = ++next_probe_id_;
  if (learners_.count(id) > 0) {
    // A learner left over from an earlier attempt: skip the probe, let it catch up.
    join.step = leader_role::pending_join::phase::catching_up;
    join.learner_index = membership_index_;
    event("adding " + id + " at " + address + " (already a learner)");
    maybe_promote(leader);
    return;
  }
  event("adding " + id + " at " + address);
  out_.effects.push_back(effect_of(raft_effect::kind::dial, id, address, {}));
  if (connected_.count(id) > 0)
    send_join_probe(leader);
}

void raft_core::send_join_probe(leader_role& leader) {
  leader.join->probe_sent = true;
  join_probe probe;
  probe.term = term_;
  probe.probe_id = leader.join->probe_id;
  if (auto self = members_.find(config_.id); self != members_.end())
    probe.leader_address = self->second;
  send(leader.join->id, std::move(probe));
}

void raft_core::tick_join(leader_role& leader) {
  if (!leader.join)
    return;
  auto& join = *leader.join;
  ++join.ticks;
  using phase = leader_role::pending_join::phase;
  if (join.step == phase::probing) {
    if (join.ticks >= config_.ticks_for(config_.join_timeout)) {
      client_reply reply;
      reply.status = reply_status::unreachable;
      reply.term = term_;
      reply.reason = "node " + join.id + " at " + join.address + " did not answer";
      answer(join.origin, std::move(reply));
      if (!configuration{members_, learners_}.contains(join.id))
        out_.effects.push_back(effect_of(raft_effect::kind::hang_up, join.id, {}, {}));
      leader.join.reset();
      return;
    }
    // The new node answers only once it has a connection back to us (it dials us on the first
    // probe), so repeat the probe until an answer arrives.
    if (join.probe_sent && connected_.count(join.id) > 0 &&
        join.ticks % std::max<uint32_t>(1, config_.election_ticks / 2) == 0)
      send_join_probe(leader);
    return;
  }
  if (join.ticks >= config_.ticks_for(config_.catch_up_timeout)) {
    // It never caught up: take it out again rather than leave a learner that slows nobody but
    // holds an address; the join failed and nothing else changed.
    auto id = join.id;
    client_reply reply;
    reply.status = reply_status::unreachable;
    reply.term = term_;
    reply.reason = "node " + id + " did not catch up with the log within " +
                   std::to_string(config_.catch_up_timeout.count()) + " ms; it was not added";
    auto origin = join.origin;
    leader.join.reset();
    event("not adding " + id + ": it did not catch up");
    if (membership_index_ <= commit_index_) {
      configuration next{members_, learners_};
      next.learners.erase(id);
      append_configuration(leader, std::move(next));
    }
    answer(origin, std::move(reply));
  }
}

void raft_core::maybe_promote(leader_role& leader) {
  if (!leader.join || leader.join->step != leader_role::pending_join::phase::catching_up)
    return;
  auto& join = *leader.join;
  auto progress = leader.progress.find(join.id);
  // The learner entry committed and the learner is close to the commit index: promote.
  if (join.learner_index > commit_index_ || progress == leader.progress.end() ||
      progress->second.match_index() + config_.promote_max_lag < commit_index_ ||
      progress->second.match_index() < join.learner_index)
    return;
  configuration next{members_, learners_};
  auto address = next.learners[join.id];
  next.learners.erase(join.id);
  next.voters[join.id] = address;
  event("promoting " + join.id + " to voter");
  auto origin = std::move(join.origin);
  leader.join.reset();
  auto index = append_configuration(leader, std::move(next));
  if (auto* still = leader_state())
    still->writes.emplace(index, leader_role::pending_write{term_, std::move(origin)});
}

void raft_core::handle(const join_probe& probe) {
  // No cluster check: a lone node adopts the cluster of the leader that adds it.
  join_probe_reply reply;
  reply.probe_id = probe.probe_id;
  const auto& leader = probe.from;
  if (!probe.leader_address.empty() && connected_.count(leader) == 0)
    out_.effects.push_back(effect_of(raft_effect::kind::dial, leader, probe.leader_address, {}));
  auto refuse = [&](std::string reason) {
    reply.reason = std::move(reason);
    send(leader, std::move(reply));
    finish_step();
  };
  if (probe.term < term_)
    return refuse("stale leader term " + std::to_string(probe.term));
  if (members_.count(leader) > 0 &&
      (members_.count(config_.id) > 0 || learners_.count(config_.id) > 0)) {
    reply.accepted = true;
    reply.reason = "already a member of that cluster";
    send(leader, std::move(reply));
    finish_step();
    return;
  }
  if (members_.size() > 1 || (members_.size() == 1 && members_.count(config_.id) == 0))
    return refuse("node " + config_.id + " already belongs to a cluster of " +
                  std::to_string(members_.size()) + " members");
  if (snapshot_.index > 0 || log_.first_index() > 1)
    return refuse("node " + config_.id + " holds a snapshot at index " +
                  std::to_string(snapshot_.index) + " of its own; refusing to discard it");
  size_t writes = 0;
  for (uint64_t i = log_.first_index(); i <= log_.last_index(); ++i)
    if (log_.at(i).kind == entry_kind::command)
      ++writes;
  if (writes > 0)
    return refuse("node " + config_.id + " holds " + std::to_string(writes) +
                  " writes of its own; refusing to discard them");
  // Nothing of value here: forget the lone bootstrap state and wait for the leader's log.
  event("joining the cluster of " + leader + ": discarding the bootstrap state");
  if (!log_.empty()) {
    log_.truncate_from(log_.first_index());
    queue_truncate(1);
  }
  // Term and vote stay: dropping a vote within a term could let this node vote twice in it.
  commit_index_ = 0;
  checked_commit_ = 0;
  apply_sent_index_ = 0;
  applied_index_ = 0;
  ++apply_epoch_;
  removed_at_ = 0;
  out_.effects.push_back(effect_of(raft_effect::kind::reset_state_machine, {}, {}, {}));
  if (!probe.cluster_id.empty() && probe.cluster_id != cluster_id_) {
    event("joining cluster " + probe.cluster_id);
    cluster_id_ = probe.cluster_id;
    pipeline_.queue_cluster_id(cluster_id_);
  }
  config_.members.clear();
  set_configuration(configuration{}, 0);
  become_follower(term_, leader);
  reply.accepted = true;
  // The leader appends the new membership on this answer: it must not arrive before our reset
  // is durable, or a crash could bring the lone state back as a member of the new cluster.
  send_after_durable(leader, std::move(reply));
  finish_step();
}

void raft_core::handle(const join_probe_reply& reply) {
  // No cluster check: the answer may come from a node that still had a cluster of its own.
  auto* leader = leader_state();
  if (leader == nullptr || !leader->join || leader->join->id != reply.from ||
      leader->join->probe_id != reply.probe_id ||
      leader->join->step != leader_role::pending_join::phase::probing) {
    finish_step();
    return;
  }
  auto& join = *leader->join;
  if (!reply.accepted) {
    client_reply refused;
    refused.status = reply_status::rejected;
    refused.term = term_;
    refused.reason = reply.reason;
    answer(join.origin, std::move(refused));
    event("not adding " + join.id + ": " + reply.reason);
    if (!configuration{members_, learners_}.contains(join.id))
      out_.effects.push_back(effect_of(raft_effect::kind::hang_up, join.id, {}, {}));
    leader->join.reset();
    finish_step();
    return;
  }
  configuration next{members_, learners_};
  next.learners[join.id] = join.address;
  // A member of that id removed a moment ago may still have progress here: this is a new node.
  leader->progress.erase(join.id);
  join.step = leader_role::pending_join::phase::catching_up;
  join.ticks = 0;
  join.learner_index = append_configuration(*leader, std::move(next));
  finish_step();
}

// -- remove --------------------------------------------------------------------------------------

void raft_core::remove_as_leader(leader_role& leader, request_origin origin, const std::string& id,
                                 bool force) {
  client_reply reply;
  reply.term = term_;
  auto refuse = [&](reply_status status, std::string reason) {
    reply.status = status;
    reply.reason = std::move(reason);
    answer(origin, std::move(reply));
  };
  bool voter = members_.count(id) > 0;
  if (!voter && learners_.count(id) == 0)
    return refuse(reply_status::rejected, "node " + id + " is not a member");
  if (log_.term_at(commit_index_) != term_ && !leader.join && !leader.transfer) {
    leader.changes_awaiting_term_commit.push_back(
        leader_role::pending_change{false, std::move(origin), id, {}, force});
    return;
  }
  if (auto blocked = change_blocked(leader); !blocked.empty())
    return refuse(reply_status::busy, blocked);
  if (voter && members_.size() == 1)
    return refuse(reply_status::rejected, "node " + id + " is the last voter");
  if (voter && !force) {
    // The voters left must still be able to form a quorum among the nodes reachable now;
    // otherwise the removal itself could never commit and the cluster would stall.
    size_t remaining = members_.size() - 1;
    size_t reachable = id == config_.id ? 0 : 1; // ourselves, unless we are the one leaving
    for (const auto& [peer, progress] : leader.progress)
      if (peer != id && members_.count(peer) > 0 && connected_.count(peer) > 0 &&
          progress.silent_ticks < config_.election_ticks)
        ++reachable;
    if (reachable < remaining / 2 + 1)
      return refuse(reply_status::rejected,
                    "removing " + id + " would leave " + std::to_string(remaining) +
                        " voters of which only " + std::to_string(reachable) +
                        " are reachable now, less than a quorum; retry with force=1 to remove it "
                        "anyway");
  }
  if (id == config_.id) {
    // Hand leadership over first; the new leader removes us (thesis §4.2.2 without a leader
    // that manages a configuration it is not part of).
    transfer_as_leader(leader, std::move(origin), {}, true, force);
    return;
  }
  configuration next{members_, learners_};
  next.voters.erase(id);
  next.learners.erase(id);
  event("removing " + id);
  auto index = append_configuration(leader, std::move(next));
  if (auto* still = leader_state())
    still->writes.emplace(index, leader_role::pending_write{term_, std::move(origin)});
}

void raft_core::run_changes_awaiting_term_commit(leader_role& leader) {
  auto waiting = std::move(leader.changes_awaiting_term_commit);
  leader.changes_awaiting_term_commit.clear();
  for (auto& change : waiting) {
    auto* still = leader_state();
    if (still == nullptr) {
      client_reply reply;
      reply.status = reply_status::no_leader;
      reply.term = term_;
      reply.reason = "leadership changed before the change could start; nothing changed";
      answer(change.origin, std::move(reply));
    } else if (change.join) {
      join_as_leader(*still, std::move(change.origin), std::move(change.id),
                     std::move(change.address));
    } else {
      remove_as_leader(*still, std::move(change.origin), change.id, change.force);
    }
  }
}

void raft_core::hang_up_departed() {
  auto* leader = leader_state();
  for (auto i = departed_.begin(); i != departed_.end();) {
    const auto& [id, departure] = *i;
    bool committed = departure.index <= commit_index_;
    bool learned = false;
    if (leader != nullptr)
      if (auto p = leader->progress.find(id); p != leader->progress.end())
        learned = p->second.match_index() >= departure.index;
    bool keep = !committed || (!learned && departure.ticks_since_commit < departed_grace_ticks());
#ifdef INFINITYSTORE_TESTING
    keep = keep || config_.broken == raft_config::mutation::removed_voter_counts;
#endif
    if (keep) {
      ++i;
      continue;
    }
    out_.effects.push_back(effect_of(raft_effect::kind::hang_up, id, {}, {}));
    if (leader != nullptr)
      leader->progress.erase(id);
    i = departed_.erase(i);
  }
}

void raft_core::tick_departed() {
  if (departed_.empty())
    return;
  for (auto& [id, departure] : departed_)
    if (departure.index <= commit_index_)
      ++departure.ticks_since_commit;
  hang_up_departed();
}

// -- leadership transfer -------------------------------------------------------------------------

void raft_core::transfer_as_leader(leader_role& leader, request_origin origin, std::string target,
                                   bool then_remove_self, bool force) {
  client_reply reply;
  reply.term = term_;
  if (leader.transfer) {
    reply.status = reply_status::busy;
    reply.reason = "leadership is already being handed to " + leader.transfer->target;
    answer(origin, std::move(reply));
    return;
  }
  if (target.empty()) {
    // The most up to date voter takes over fastest.
    uint64_t best = 0;
    for (const auto& [peer, progress] : leader.progress)
      if (members_.count(peer) > 0 && connected_.count(peer) > 0 && !progress.repairing &&
          (target.empty() || progress.match_index() > best)) {
        target = peer;
        best = progress.match_index();
      }
  }
  if (target == config_.id && !then_remove_self) {
    reply.status = reply_status::ok;
    reply.reason = "already the leader";
    answer(origin, std::move(reply));
    return;
  }
  if (target.empty() || members_.count(target) == 0 || target == config_.id) {
    reply.status = reply_status::rejected;
    reply.reason = target.empty() || target == config_.id
                       ? "no other voter to hand leadership to is reachable"
                       : "node " + target + " is not a voter";
    answer(origin, std::move(reply));
    return;
  }
  leader.transfer =
      leader_role::pending_transfer{target, std::move(origin), 0, false, then_remove_self, force};
  event("handing leadership to " + target + (then_remove_self ? " before leaving" : ""));
  maybe_send_timeout_now(leader);
}

void raft_core::maybe_send_timeout_now(leader_role& leader) {
  if (!leader.transfer || leader.transfer->timeout_now_sent)
    return;
  auto progress = leader.progress.find(leader.transfer->target);
  if (progress == leader.progress.end())
    return;
  if (progress->second.match_index() < log_.last_index()) {
    fill_pipeline(leader, leader.transfer->target); // catch it up first
    return;
  }
  leader.transfer->timeout_now_sent = true;
  timeout_now request;
  request.term = term_;
  send(leader.transfer->target, std::move(request));
}

void raft_core::tick_transfer(leader_role& leader) {
  if (!leader.transfer)
    return;
  if (++leader.transfer->ticks < config_.election_ticks) {
    maybe_send_timeout_now(leader);
    return;
  }
  // The target did not take over within an election timeout: keep leading, append what waited.
  auto transfer = std::move(*leader.transfer);
  leader.transfer.reset();
  event("handing leadership to " + transfer.target + " failed: it did not take over in time");
  client_reply reply;
  reply.status = reply_status::timeout;
  reply.term = term_;
  reply.reason = "node " + transfer.target + " did not take over within an election timeout";
  answer(transfer.origin, std::move(reply));
  auto paused = std::move(leader.paused);
  leader.paused.clear();
  for (auto& [origin, command] : paused)
    propose_as_leader(leader, std::move(origin), std::move(command));
}

void raft_core::handle(const timeout_now& request) {
  if (!same_cluster(request.from, request.cluster_id))
    return;
  // Only the leader of our term may ask, and only a healthy voter takes over.
  if (request.term == term_ && leader_id_ == request.from && !leader_state() &&
      members_.count(config_.id) > 0 && may_campaign()) {
    event("taking over leadership from " + request.from);
    handover_ticks_ = config_.election_ticks;
    become_candidate(true);
  }
  finish_step();
}

// -- the configuration in effect
// -------------------------------------------------------------------

void raft_core::refresh_membership() {
  for (auto index = log_.last_index(); index >= log_.first_index() && index > 0; --index)
    if (log_.at(index).kind == entry_kind::config) {
      adopt_membership(log_.at(index));
      return;
    }
  // None in the log: the snapshot's, or the bootstrap members (simulator).
  if (!snapshot_.config.empty()) {
    configuration from_snapshot;
    RAFT_INVARIANT(decode_configuration(snapshot_.config, from_snapshot),
                   "undecodable configuration in snapshot " + std::to_string(snapshot_.index));
    set_configuration(std::move(from_snapshot), snapshot_.config_index);
    return;
  }
  configuration bootstrap;
  for (const auto& id : config_.members)
    bootstrap.voters.emplace(id, std::string{});
  set_configuration(std::move(bootstrap), 0);
}

void raft_core::adopt_membership(const log_entry& entry) {
  configuration next;
  // Config entries are checked when they arrive (replication.cpp), so this holds for our log.
  RAFT_INVARIANT(decode_configuration(entry.data, next),
                 "undecodable configuration at index " + std::to_string(entry.index));
  set_configuration(std::move(next), entry.index);
}

void raft_core::set_configuration(configuration next, uint64_t index) {
  configuration previous{members_, learners_};
  bool changed = next != previous;
  bool was_member = previous.contains(config_.id);
  members_ = std::move(next.voters);
  learners_ = std::move(next.learners);
  membership_index_ = index;
  configuration now{members_, learners_};
  for (const auto& [id, address] : previous.everyone())
    if (!now.contains(id) && id != config_.id)
      departed_[id] = departure{index, 0};
  for (auto i = departed_.begin(); i != departed_.end();)
    i = now.contains(i->first) ? departed_.erase(i) : std::next(i);
  if (auto* leader = leader_state()) {
    // Departed members keep their progress until they learned of the change (hang_up_departed).
    for (const auto& [member, address] : now.everyone())
      if (member != config_.id && leader->progress.count(member) == 0)
        leader->progress.emplace(member, follower_progress{log_.last_index() + 1});
  }
  if (now.contains(config_.id)) {
    removed_at_ = 0;
  } else if (was_member && index > 0) {
    removed_at_ = index;
    event("removed from the cluster by the configuration at index " + std::to_string(index) +
          "; this node no longer serves");
  }
  if (!changed)
    return;
  std::string names;
  for (const auto& [member, address] : members_)
    names += (names.empty() ? "" : ", ") + member;
  for (const auto& [member, address] : learners_)
    names += (names.empty() ? "" : ", ") + member + " (learner)";
  event("membership at index " + std::to_string(index) + ": {" + names + "}");
  out_.effects.push_back(effect_of(raft_effect::kind::membership_changed, {}, {}, now.everyone()));
  hang_up_departed();
}

// -- leader timers
// ---------------------------------------------------------------------------------

void raft_core::tick_leader(leader_role& leader) {
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      size_t active = members_.count(config_.id) > 0 ? 1 : 0;
      for (auto& [peer, progress] : leader.progress) {
        if (progress.recently_active && members_.count(peer) > 0)
          ++active;
        progress.recently_active = false;
      }
      if (active < quorum()) {
        event("stepping down: no quorum heard from in term " + std::to_string(term_));
        become_follower(term_, std::string{});
        return; // `leader` is gone
      }
    }
  }
  ++leader.heartbeat_elapsed;
  tick_join(leader);
  tick_transfer(leader);
  for (auto& [peer, progress] : leader.progress) {
    ++progress.silent_ticks;
    if (progress.match_index() >= log_.last_index()) {
      progress.ticks_since_ack = 0;
      continue;
    }
    if (++progress.ticks_since_ack >= config_.retransmit_ticks) {
      // Appends, chunks or acknowledgements were lost: resend from what is known to match
      // (replicate), repeat the probe, or ask for the chunk after the acknowledged offset.
      progress.ticks_since_ack = 0;
      if (progress.state() == follower_progress::mode::snapshot)
        progress.chunk_lost();
      else
        progress.restart_probe();
      send_append(leader, peer, false);
    }
  }
  // A heartbeat also starts a new read round if the one out was lost.
  if (leader.heartbeat_elapsed >= config_.heartbeat_ticks ||
      (leader.read_round_requested && !read_round_in_flight(leader))) {
    leader.heartbeat_elapsed = 0;
    send_heartbeats(leader);
  }
}

} // namespace infinity
