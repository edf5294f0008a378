// Membership: the configuration in effect (the latest config entry in the log, thesis §4.1) and
// adding a voter, one at a time (thesis §4.2-4.3). A join first probes the new node, which drops
// its lone bootstrap state (unless it holds writes of its own), adopts this cluster and follows
// the leader; only then is the new membership appended.
#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {

void raft_core::join(uint64_t request_id, std::string id, std::string address) {
  if (auto* leader = leader_state())
    join_as_leader(*leader, request_origin{{}, request_id}, std::move(id), std::move(address));
  else
    forward(request_id, forwarded_op::join, {}, std::move(id), std::move(address));
  finish_step();
}

void raft_core::join_as_leader(leader_role& leader, request_origin origin, std::string id,
                               std::string address) {
  client_reply reply;
  reply.term = term_;
  if (!valid_member_id(id) || address.empty() || address.find('\n') != std::string::npos ||
      address.find('=') != std::string::npos) {
    reply.status = reply_status::rejected;
    reply.reason = "invalid node id or address";
    answer(origin, std::move(reply));
    return;
  }
  if (auto i = members_.find(id); i != members_.end()) {
    if (i->second != address && !i->second.empty()) {
      reply.status = reply_status::rejected;
      reply.reason = "node " + id + " is already a member at " + i->second;
    } else {
      reply.status = reply_status::ok; // joining twice is harmless
      reply.index = membership_index_;
    }
    answer(origin, std::move(reply));
    return;
  }
  for (const auto& [member, member_address] : members_)
    if (member_address == address) {
      reply.status = reply_status::rejected;
      reply.reason = "address " + address + " belongs to member " + member;
      answer(origin, std::move(reply));
      return;
    }
  // One change at a time, and only once this term has committed an entry (thesis §4.1, and the
  // fix for the single-server change bug described on raft-dev in 2015).
  if (leader.join || membership_index_ > commit_index_ || log_.term_at(commit_index_) != term_) {
    reply.status = reply_status::busy;
    answer(origin, std::move(reply));
    return;
  }
  leader.join =
      leader_role::pending_join{id, address, std::move(origin), 0, ++next_probe_id_, false};
  event("adding " + id + " at " + address);
  out_.effects.push_back(raft_effect{raft_effect::kind::dial, id, address, {}});
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
  if (join.ticks >= config_.ticks_for(config_.join_timeout)) {
    client_reply reply;
    reply.status = reply_status::unreachable;
    reply.term = term_;
    reply.reason = "node " + join.id + " at " + join.address + " did not answer";
    answer(join.origin, std::move(reply));
    if (members_.count(join.id) == 0)
      out_.effects.push_back(raft_effect{raft_effect::kind::hang_up, join.id, {}, {}});
    leader.join.reset();
    return;
  }
  // The new node answers only once it has a connection back to us (it dials us on the first
  // probe), so repeat the probe until an answer arrives.
  if (join.probe_sent && connected_.count(join.id) > 0 &&
      join.ticks % std::max<uint32_t>(1, config_.election_ticks / 2) == 0)
    send_join_probe(leader);
}

void raft_core::handle(const join_probe& probe) {
  // No cluster check: a lone node adopts the cluster of the leader that adds it.
  join_probe_reply reply;
  reply.probe_id = probe.probe_id;
  const auto& leader = probe.from;
  if (!probe.leader_address.empty() && connected_.count(leader) == 0)
    out_.effects.push_back(raft_effect{raft_effect::kind::dial, leader, probe.leader_address, {}});
  if (probe.term < term_) {
    reply.reason = "stale leader term " + std::to_string(probe.term);
    send(leader, std::move(reply));
    finish_step();
    return;
  }
  if (members_.count(leader) > 0 && members_.count(config_.id) > 0) {
    reply.accepted = true;
    reply.reason = "already a member of that cluster";
    send(leader, std::move(reply));
    finish_step();
    return;
  }
  if (members_.size() > 1 || (members_.size() == 1 && members_.count(config_.id) == 0)) {
    reply.reason = "node " + config_.id + " already belongs to a cluster of " +
                   std::to_string(members_.size()) + " members";
    send(leader, std::move(reply));
    finish_step();
    return;
  }
  size_t writes = 0;
  for (uint64_t i = log_.first_index(); i <= log_.last_index(); ++i)
    if (log_.at(i).kind == entry_kind::command)
      ++writes;
  if (writes > 0) {
    reply.reason = "node " + config_.id + " holds " + std::to_string(writes) +
                   " writes of its own; refusing to discard them";
    send(leader, std::move(reply));
    finish_step();
    return;
  }
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
  out_.effects.push_back(raft_effect{raft_effect::kind::reset_state_machine, {}, {}, {}});
  if (!probe.cluster_id.empty() && probe.cluster_id != cluster_id_) {
    event("joining cluster " + probe.cluster_id);
    cluster_id_ = probe.cluster_id;
    pipeline_.queue_cluster_id(cluster_id_);
  }
  config_.members.clear();
  set_membership(membership{}, 0);
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
      leader->join->probe_id != reply.probe_id) {
    finish_step();
    return;
  }
  auto join = std::move(*leader->join);
  leader->join.reset();
  if (!reply.accepted) {
    client_reply refused;
    refused.status = reply_status::rejected;
    refused.term = term_;
    refused.reason = reply.reason;
    answer(join.origin, std::move(refused));
    event("not adding " + join.id + ": " + reply.reason);
    if (members_.count(join.id) == 0)
      out_.effects.push_back(raft_effect{raft_effect::kind::hang_up, join.id, {}, {}});
    finish_step();
    return;
  }
  auto next = members_;
  next[join.id] = join.address;
  log_entry entry{term_, log_.last_index() + 1, entry_kind::config, encode_membership(next)};
  auto index = entry.index;
  log_.append(entry);
  queue_append(log_.at(index));
  adopt_membership(log_.at(index));
  leader->writes.emplace(index, leader_role::pending_write{term_, std::move(join.origin)});
  broadcast_appends(*leader, false);
  finish_step();
}

// -- the membership in effect
// ----------------------------------------------------------------------

void raft_core::refresh_membership() {
  for (auto index = log_.last_index(); index >= log_.first_index() && index > 0; --index)
    if (log_.at(index).kind == entry_kind::config) {
      adopt_membership(log_.at(index));
      return;
    }
  membership bootstrap;
  for (const auto& id : config_.members)
    bootstrap.emplace(id, std::string{});
  set_membership(std::move(bootstrap), 0);
}

void raft_core::adopt_membership(const log_entry& entry) {
  membership next;
  // Config entries are checked when they arrive (replication.cpp), so this holds for our log.
  RAFT_INVARIANT(decode_membership(entry.data, next),
                 "undecodable membership at index " + std::to_string(entry.index));
  set_membership(std::move(next), entry.index);
}

void raft_core::set_membership(membership next, uint64_t index) {
  bool changed = next != members_;
  members_ = std::move(next);
  membership_index_ = index;
  if (auto* leader = leader_state()) {
    for (auto i = leader->progress.begin(); i != leader->progress.end();)
      i = members_.count(i->first) == 0 ? leader->progress.erase(i) : std::next(i);
    for (const auto& [member, address] : members_)
      if (member != config_.id && leader->progress.count(member) == 0)
        leader->progress.emplace(member, follower_progress{log_.last_index() + 1});
  }
  if (!changed)
    return;
  std::string names;
  for (const auto& [member, address] : members_)
    names += (names.empty() ? "" : ", ") + member;
  event("membership at index " + std::to_string(index) + ": {" + names + "}");
  out_.effects.push_back(raft_effect{raft_effect::kind::membership_changed, {}, {}, members_});
}

// -- leader timers
// ---------------------------------------------------------------------------------

void raft_core::tick_leader(leader_role& leader) {
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      size_t active = 1;
      for (auto& [peer, progress] : leader.progress) {
        if (progress.recently_active)
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
  for (auto& [peer, progress] : leader.progress) {
    if (progress.match_index() >= log_.last_index()) {
      progress.ticks_since_ack = 0;
      continue;
    }
    if (++progress.ticks_since_ack >= config_.retransmit_ticks) {
      // Appends or acknowledgements were lost: resend from what is known to match (replicate)
      // or repeat the probe.
      progress.ticks_since_ack = 0;
      progress.restart_probe();
      send_append(leader, peer, false);
    }
  }
  if (leader.heartbeat_elapsed >= config_.heartbeat_ticks || leader.read_round_requested) {
    leader.heartbeat_elapsed = 0;
    send_heartbeats(leader);
  }
}

} // namespace infinity
