// Client requests: proposals (writes), linearizable reads (ReadIndex, thesis §6.4) and their
// forwarding from followers to the leader. Every request is answered exactly once: with its
// outcome, with a refusal that says nothing changed (no or another leader), or with "unknown"
// (timeout, leadership lost, stopping) when it may still take effect.
#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {

client_reply raft_core::refusal() const {
  client_reply reply;
  if (removed()) {
    reply.status = reply_status::removed;
    reply.term = term_;
    reply.reason = "this node was removed from the cluster (configuration at index " +
                   std::to_string(removed_at_) + ") and no longer serves";
    return reply;
  }
  reply.status = leader_id_.empty() ? reply_status::no_leader : reply_status::not_leader;
  reply.term = term_;
  reply.leader_id = leader_id_;
  reply.leader_http = leader_id_ == config_.id ? config_.http_address : leader_http_;
  return reply;
}

void raft_core::answer(const request_origin& origin, client_reply reply) {
  if (reply.leader_id.empty() && !leader_id_.empty()) {
    reply.leader_id = leader_id_;
    reply.leader_http = leader_id_ == config_.id ? config_.http_address : leader_http_;
  }
  if (origin.local()) {
    out_.answers.push_back(client_answer{origin.request_id, std::move(reply)});
    return;
  }
  forward_reply message;
  message.request_id = origin.request_id;
  message.reply = std::move(reply);
  send(origin.peer, std::move(message));
}

// -- proposals
// -------------------------------------------------------------------------------------

void raft_core::propose(uint64_t request_id, std::string command) {
  if (removed())
    answer(request_origin{{}, request_id}, refusal());
  else if (auto* leader = leader_state())
    propose_as_leader(*leader, request_origin{{}, request_id}, std::move(command));
  else
    forward(request_id, forwarded_op::write, std::move(command), {}, {});
  finish_step();
}

void raft_core::propose_as_leader(leader_role& leader, request_origin origin, std::string command) {
  if (leader.transfer) {
    // Thesis §3.10: during a handover the target may take over at any moment and overwrite our
    // uncommitted tail, and new entries would keep it from catching up. Proposals wait: they are
    // appended here if the transfer fails, or passed to the new leader (election.cpp).
    leader.paused.emplace_back(std::move(origin), std::move(command));
    return;
  }
  log_entry entry{term_, log_.last_index() + 1, entry_kind::command, std::move(command)};
  auto index = entry.index;
  log_.append(entry);
  queue_append(log_.at(index));
  leader.writes.emplace(index, leader_role::pending_write{term_, std::move(origin)});
  // Proposals already in the node's mailbox are handled before the flush, so they share one
  // append to the followers.
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    out_.flush_requested = true;
  }
}

void raft_core::flush() {
  flush_scheduled_ = false;
  forward_read_batch();
  if (auto* leader = leader_state()) {
    broadcast_appends(*leader, false);
    if (leader->read_round_requested && !read_round_in_flight(*leader))
      send_heartbeats(*leader);
  }
  finish_step();
}

// -- reads
// -----------------------------------------------------------------------------------------

void raft_core::read(uint64_t request_id) {
  if (removed()) {
    answer(request_origin{{}, request_id}, refusal());
    finish_step();
    return;
  }
  if (auto* leader = leader_state()) {
    read_as_leader(*leader, request_origin{{}, request_id});
    finish_step();
    return;
  }
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::stale_follower_reads) {
    client_reply stale;
    stale.index = applied_index_;
    stale.term = term_;
    answer(request_origin{{}, request_id}, stale);
    finish_step();
    return;
  }
#endif
  // Reads that arrive together share one forwarded read: the read index the leader confirms
  // after they all arrived serves each of them (thesis §6.4), at one round trip for the batch.
  follower_read_batch_.push_back(request_id);
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    out_.flush_requested = true;
  }
  finish_step();
}

void raft_core::forward_read_batch() {
  if (follower_read_batch_.empty())
    return;
  auto batch = std::move(follower_read_batch_);
  follower_read_batch_.clear();
  if (auto* leader = leader_state()) {
    // Became leader meanwhile: read here.
    for (auto id : batch)
      read_as_leader(*leader, request_origin{{}, id});
    return;
  }
  auto forward_id = forward(batch.front(), forwarded_op::read, {}, {}, {});
  auto call = forwarded_.find(forward_id);
  if (call != forwarded_.end()) {
    call->second.also.assign(batch.begin() + 1, batch.end());
    return;
  }
  // Not forwarded (answered or held for a handover): the others take the same path one by one.
  for (size_t i = 1; i < batch.size(); ++i)
    forward(batch[i], forwarded_op::read, {}, {}, {});
}

void raft_core::answer_call(const forwarded_call& call, const client_reply& reply) {
  answer(request_origin{{}, call.request_id}, reply);
  for (auto id : call.also)
    answer(request_origin{{}, id}, reply);
}

void raft_core::read_as_leader(leader_role& leader, request_origin origin) {
  if (log_.term_at(commit_index_) != term_) {
    // Until an entry of this term commits, our commit index may lag what earlier leaders
    // committed (thesis §6.4 step 1).
    leader.reads_awaiting_term_commit.push_back(std::move(origin));
    return;
  }
  leader.reads.push_back(
      leader_role::pending_read{commit_index_, leader.round + 1, false, std::move(origin)});
  request_read_round(leader);
  confirm_reads(leader);
}

void raft_core::request_read_round(leader_role& leader) {
  leader.read_round_requested = true;
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    out_.flush_requested = true;
  }
}

void raft_core::confirm_reads(leader_role& leader) {
  if (leader.reads.empty())
    return;
  for (auto& read : leader.reads) {
    if (read.confirmed)
      continue;
    size_t acks = 1; // ourselves
    for (const auto& [peer, progress] : leader.progress)
      if (progress.acked_round >= read.round && members_.count(peer) > 0)
        ++acks;
    read.confirmed = acks >= quorum();
  }
  auto ready = [this](const leader_role::pending_read& read) {
    return read.confirmed && applied_index_ >= read.read_index;
  };
  for (auto& read : leader.reads) {
    if (!ready(read))
      continue;
    client_reply reply;
    reply.index = read.read_index;
    reply.term = term_;
    reply.leader_id = config_.id;
    reply.leader_http = config_.http_address;
    answer(read.origin, std::move(reply));
    ++counters_.reads_served;
  }
  leader.reads.erase(std::remove_if(leader.reads.begin(), leader.reads.end(), ready),
                     leader.reads.end());
  // The reads that arrived while the last round was out go together in the next one.
  if (leader.read_round_requested && !read_round_in_flight(leader) && !flush_scheduled_) {
    flush_scheduled_ = true;
    out_.flush_requested = true;
  }
}

bool raft_core::read_round_in_flight(const leader_role& leader) const {
  if (leader.round == 0)
    return false;
  size_t acks = 1; // ourselves
  for (const auto& [peer, progress] : leader.progress)
    if (progress.acked_round >= leader.round && members_.count(peer) > 0)
      ++acks;
  return acks < quorum();
}

void raft_core::serve_follower_reads() {
  while (!follower_reads_.empty() && follower_reads_.begin()->first <= applied_index_) {
    auto node = follower_reads_.extract(follower_reads_.begin());
    out_.answers.push_back(std::move(node.mapped()));
  }
}

// -- forwarding
// ------------------------------------------------------------------------------------

uint64_t raft_core::forward(uint64_t request_id, forwarded_op op, std::string command,
                            std::string member_id, std::string member_address, bool force) {
  // One hop at most: a forwarded request is never forwarded again (see handle(forward_request)).
  if (leader_id_.empty() && handover_ticks_ > 0 && !removed() &&
      (op == forwarded_op::write || op == forwarded_op::read)) {
    // Leadership is being handed over: the new leader shows up within an election timeout.
    handover_.push_back(handed_over{request_id,
                                    op,
                                    std::move(command),
                                    {},
                                    false,
                                    config_.ticks_for(config_.forward_timeout),
                                    {}});
    return 0;
  }
  if (leader_id_.empty() || connected_.count(leader_id_) == 0) {
    answer(request_origin{{}, request_id}, refusal());
    return 0;
  }
  auto timeout = op == forwarded_op::join ? config_.join_timeout + config_.forward_timeout
                                          : config_.forward_timeout;
  auto forward_id = ++next_forward_id_;
  forwarded_.emplace(forward_id, forwarded_call{leader_id_,
                                                request_id,
                                                op,
                                                config_.ticks_for(timeout),
                                                false,
                                                op == forwarded_op::write ? command : std::string{},
                                                {}});
  forward_request request;
  request.request_id = forward_id;
  request.op = op;
  request.command = std::move(command);
  request.member_id = std::move(member_id);
  request.member_address = std::move(member_address);
  request.force = force;
  send(leader_id_, std::move(request));
  return forward_id;
}

void raft_core::forward_handed_over() {
  if (handover_.empty())
    return;
  if (auto* leader = leader_state()) {
    // The handover failed and leadership came back to us: carry them out here.
    auto waiting = std::move(handover_);
    handover_.clear();
    for (auto& request : waiting) {
      request_origin origin{{}, request.request_id};
      if (request.op == forwarded_op::write)
        propose_as_leader(*leader, std::move(origin), std::move(request.command));
      else if (request.op == forwarded_op::read)
        read_as_leader(*leader, std::move(origin));
      else if (request.op == forwarded_op::remove)
        remove_as_leader(*leader, std::move(origin), request.member_id, request.force);
      if ((leader = leader_state()) == nullptr)
        break; // cannot happen today; never touch a role that ended
    }
    return;
  }
  if (leader_id_.empty() || connected_.count(leader_id_) == 0)
    return;
  auto waiting = std::move(handover_);
  handover_.clear();
  for (auto& request : waiting) {
    if (request.not_to == leader_id_) {
      handover_.push_back(std::move(request)); // the leader that refused it: wait for the next
      continue;
    }
    auto id = forward(request.request_id, request.op, std::move(request.command),
                      std::move(request.member_id), {}, request.force);
    if (auto call = forwarded_.find(id); call != forwarded_.end())
      call->second.retried = true;
  }
}

bool raft_core::first_time(const std::string& peer, uint64_t id) {
  constexpr size_t remembered_per_peer = 4096;
  auto& seen = seen_forwards_[peer];
  if (!seen.ids.insert(id).second)
    return false;
  seen.order.push_back(id);
  if (seen.order.size() > remembered_per_peer) {
    seen.ids.erase(seen.order.front());
    seen.order.pop_front();
  }
  return true;
}

void raft_core::handle(const forward_request& request) {
  if (!same_cluster(request.from, request.cluster_id))
    return;
  if (!first_time(request.from, request.request_id)) {
    finish_step(); // a duplicate: the first copy was answered
    return;
  }
  request_origin origin{request.from, request.request_id};
  auto* leader = leader_state();
  if (leader == nullptr) {
    // One hop only: two nodes that each believe the other leads. "Removed" is about us, not
    // about the forwarder's client: it hears that we do not lead (nothing changed).
    auto reply = refusal();
    if (reply.status == reply_status::removed)
      reply.status = reply_status::no_leader;
    answer(origin, std::move(reply));
  } else {
    switch (request.op) {
    case forwarded_op::write:
      propose_as_leader(*leader, std::move(origin), request.command);
      break;
    case forwarded_op::read:
      read_as_leader(*leader, std::move(origin));
      break;
    case forwarded_op::join:
      join_as_leader(*leader, std::move(origin), request.member_id, request.member_address);
      break;
    case forwarded_op::remove:
      remove_as_leader(*leader, std::move(origin), request.member_id, request.force);
      break;
    case forwarded_op::transfer:
      transfer_as_leader(*leader, std::move(origin), request.member_id);
      break;
    default:
      violation(request.from, "forwarded request of unknown kind");
    }
  }
  finish_step();
}

void raft_core::handle(const forward_reply& reply) {
  if (!same_cluster(reply.from, reply.cluster_id))
    return;
  auto i = forwarded_.find(reply.request_id);
  if (i == forwarded_.end() || i->second.peer != reply.from) {
    finish_step(); // answered already (timed out, connection lost) or not ours
    return;
  }
  auto call = i->second;
  forwarded_.erase(i);
  auto status = reply.reply.status;
  if (call.op == forwarded_op::write && !call.retried &&
      (status == reply_status::not_leader || status == reply_status::no_leader)) {
    // Nothing was appended (a leader that handed over answers the writes it paused this way):
    // pass it once more to the next leader instead of failing the client.
    handover_.push_back(handed_over{call.request_id,
                                    call.op,
                                    std::move(call.command),
                                    {},
                                    false,
                                    config_.ticks_for(config_.forward_timeout),
                                    reply.from});
    forward_handed_over();
    finish_step();
    return;
  }
  if (call.op == forwarded_op::read && reply.reply.status == reply_status::ok &&
      applied_index_ < reply.reply.index) {
    // The leader confirmed `index` as a linearizable read point; our copy is good for the read
    // once it has applied that far (thesis §6.4.1, reads from followers).
    follower_reads_.emplace(reply.reply.index, client_answer{call.request_id, reply.reply});
    for (auto id : call.also)
      follower_reads_.emplace(reply.reply.index, client_answer{id, reply.reply});
  } else {
    answer_call(call, reply.reply);
  }
  finish_step();
}

void raft_core::tick_forwarded() {
  for (auto i = handover_.begin(); i != handover_.end();) {
    if (--i->ticks_left > 0) {
      ++i;
      continue;
    }
    // No new leader showed up in time: the request was never appended anywhere.
    answer(request_origin{{}, i->request_id}, refusal());
    i = handover_.erase(i);
  }
  for (auto i = forwarded_.begin(); i != forwarded_.end();) {
    if (--i->second.ticks_left > 0) {
      ++i;
      continue;
    }
    // Lost on the way or unanswered: a write may or may not have been appended; a read or a
    // join that was not confirmed had no effect.
    auto reply = refusal();
    reply.status = reply_status::timeout;
    reply.reason = "no answer from the leader in time";
    answer_call(i->second, reply);
    i = forwarded_.erase(i);
  }
}

void raft_core::fail_forwarded_to(const std::string& peer) {
  for (auto i = forwarded_.begin(); i != forwarded_.end();) {
    if (i->second.peer != peer) {
      ++i;
      continue;
    }
    auto reply = refusal();
    reply.status = reply_status::timeout;
    reply.reason = "the connection to the leader dropped";
    answer_call(i->second, reply);
    i = forwarded_.erase(i);
  }
}

void raft_core::fail_leader_requests(leader_role& leader, reply_status status) {
  // Proposals paused for a transfer were never appended: "nothing changed" is the truth.
  for (auto& [origin, command] : leader.paused)
    answer(origin, refusal());
  leader.paused.clear();
  if (leader.transfer) {
    client_reply failed;
    failed.status = status;
    failed.term = term_;
    answer(leader.transfer->origin, std::move(failed));
    leader.transfer.reset();
  }
  client_reply reply;
  reply.status = status;
  reply.term = term_;
  for (auto& [index, pending] : leader.writes) {
    reply.index = index;
    answer(pending.origin, reply);
  }
  leader.writes.clear();
  if (leader.join) {
    // The membership entry was not appended yet: nothing changed.
    reply.index = 0;
    answer(leader.join->origin, reply);
    leader.join.reset();
  }
  // A read that was not served has no effect: it is safe to fail it.
  reply.index = 0;
  for (auto& read : leader.reads)
    answer(read.origin, reply);
  leader.reads.clear();
  for (auto& origin : leader.reads_awaiting_term_commit)
    answer(origin, reply);
  leader.reads_awaiting_term_commit.clear();
  // Changes waiting for this term's first commit never started: nothing changed.
  client_reply not_started;
  not_started.status = reply_status::no_leader;
  not_started.term = term_;
  not_started.reason = "leadership changed before the change could start; nothing changed";
  for (auto& change : leader.changes_awaiting_term_commit)
    answer(change.origin, not_started);
  leader.changes_awaiting_term_commit.clear();
  leader.read_round_requested = false;
}

} // namespace infinity
