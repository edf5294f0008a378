// Log replication (Raft §5.3, §5.4.2), commit and apply: the follower side of AppendEntries, the
// leader's pipelined sends, acknowledgements and commit rule, and handing committed entries to
// the state machine. Also protocol-aware recovery's way out of repair mode.
#include <algorithm>
#include <functional>
#include <map>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {
namespace {

bool known_kind(entry_kind kind) {
  return kind == entry_kind::noop || kind == entry_kind::command || kind == entry_kind::config;
}

} // namespace

// -- follower side
// ---------------------------------------------------------------------------------

void raft_core::handle(append_entries& request) {
  if (!same_cluster(request.from, request.cluster_id))
    return;
  if (!accept_term(request.term, message_kind::append, request.from)) {
    finish_step();
    return;
  }
  if (leader_state()) {
    violation(request.from, "append in term " + std::to_string(term_) + ", which this node leads");
    finish_step();
    return;
  }
  if (candidate_state())
    become_follower(term_, request.from);
  if (!leader_id_.empty() && leader_id_ != request.from) {
    violation(request.from,
              "append in term " + std::to_string(term_) + ", which " + leader_id_ + " leads");
    finish_step();
    return;
  }
  // Remote input is checked before anything changes: the entries must continue the claimed
  // previous entry, contiguously, with terms that never decrease nor exceed the message's.
  uint64_t expected = request.prev_log_index + 1;
  uint64_t previous_term = request.prev_log_term;
  for (const auto& entry : request.entries) {
    membership ignored;
    if (entry.index != expected || entry.term < previous_term || entry.term > request.term ||
        entry.term == 0 || !known_kind(entry.kind) ||
        (entry.kind == entry_kind::config && !decode_membership(entry.data, ignored))) {
      violation(request.from, "malformed entry at index " + std::to_string(entry.index) +
                                  " in an append after " + std::to_string(request.prev_log_index));
      finish_step();
      return;
    }
    ++expected;
    previous_term = entry.term;
  }
  if (request.prev_log_term > request.term) {
    violation(request.from, "previous entry of a future term");
    finish_step();
    return;
  }
  if (leader_id_.empty()) {
    leader_id_ = request.from;
    event("leader is " + leader_id_ + " in term " + std::to_string(term_));
  }
  forward_handed_over();
  election_elapsed_ = 0;
  leader_http_ = request.leader_http;
  leader_commit_hint_ = std::max(leader_commit_hint_, request.commit_hint);

  // What we committed is settled (Log Matching): an append that contradicts it comes from a
  // broken or hostile sender, never from the leader of this term.
  bool contradicts_commit = request.prev_log_index <= commit_index_ &&
                            log_.has_term_at(request.prev_log_index) &&
                            log_.term_at(request.prev_log_index) != request.prev_log_term;
  for (const auto& entry : request.entries)
    if (entry.index <= commit_index_ && entry.index >= log_.first_index() &&
        !log_.matches(entry.index, entry.term))
      contradicts_commit = true;
  if (contradicts_commit) {
    violation(request.from,
              "append that contradicts entries committed up to " + std::to_string(commit_index_));
    finish_step();
    return;
  }
  append_reply reply;
  reply.term = term_;
  reply.prev_log_index = request.prev_log_index;
  reply.round = request.round;
  reply.repairing = repair_until_ > 0;
  if (request.prev_log_index < commit_index_) {
    // A stale or duplicated append: everything up to our commit index already matches the
    // leader (Log Matching), so report that and let the leader continue from there.
    reply.success = true;
    reply.match_index = commit_index_;
    send_after_durable(request.from, reply);
    finish_step();
    return;
  }
  if (!log_.matches(request.prev_log_index, request.prev_log_term)) {
    reply.success = false;
    if (request.prev_log_index > log_.last_index()) {
      reply.conflict_index = log_.last_index() + 1;
      reply.conflict_term = 0;
    } else {
      reply.conflict_term = log_.term_at(request.prev_log_index);
      reply.conflict_index =
          std::max(log_.first_index_of_term_run(request.prev_log_index), commit_index_ + 1);
    }
    send(request.from, reply);
    finish_step();
    return;
  }
  for (auto& entry : request.entries) {
    if (entry.index < log_.first_index())
      continue; // compacted into our snapshot: committed, so it matches
    if (entry.index <= log_.last_index()) {
      if (log_.term_at(entry.index) == entry.term)
        continue; // already have it
      log_.truncate_from(entry.index);
      queue_truncate(entry.index);
      if (entry.index <= membership_index_)
        refresh_membership();
    }
    bool config = entry.kind == entry_kind::config;
    log_.append(entry);
    queue_append(entry);
    if (config)
      adopt_membership(log_.at(entry.index));
  }
  auto last_new_index = request.prev_log_index + request.entries.size();
  if (request.leader_commit > commit_index_)
    advance_commit(std::min(request.leader_commit, last_new_index));
  reply.success = true;
  reply.match_index = last_new_index;
  send_after_durable(request.from, reply);
  maybe_finish_repair();
  finish_step();
}

// -- leader side
// -----------------------------------------------------------------------------------

void raft_core::send_append(leader_role& leader, const std::string& peer, bool heartbeat) {
  if (!hard_state_durable())
    return; // persisted() sends once the term is durable
  auto& progress = leader.progress.at(peer);
  append_entries request;
  request.term = term_;
  request.round = leader.round;
  request.leader_http = config_.http_address;
  request.commit_hint = commit_index_;
  if (progress.state() == follower_progress::mode::snapshot ||
      progress.next_index() < log_.first_index()) {
    // What it needs next was compacted away (heartbeats too would name a missing entry).
    if (!heartbeat)
      send_snapshot(leader, peer);
    return;
  }
  if (heartbeat && !log_.has_term_at(progress.match_index()))
    return; // its match is below our log: the next send switches it to a snapshot
  if (heartbeat) {
    // A heartbeat proves leadership and carries the commit index as far as the follower is
    // known to match; it never risks a mismatch.
    request.prev_log_index = progress.match_index();
    request.prev_log_term = log_.term_at(progress.match_index());
    request.leader_commit = std::min(commit_index_, progress.match_index());
    send(peer, std::move(request));
    return;
  }
  if (!progress.can_send(config_.max_inflight_appends))
    return;
  progress.clamp_next(log_.last_index());
  request.prev_log_index = progress.next_index() - 1;
  request.prev_log_term = log_.term_at(request.prev_log_index);
  request.entries = log_.slice(progress.next_index(), config_.max_entries_per_append,
                               config_.max_bytes_per_append);
  auto last_sent = request.prev_log_index + request.entries.size();
  request.leader_commit = std::min(commit_index_, last_sent);
  if (progress.state() == follower_progress::mode::replicate && request.entries.empty())
    return; // nothing new; heartbeats carry the commit index
  progress.sent(last_sent);
  if (!request.entries.empty()) {
    ++counters_.appends_sent;
    counters_.entries_sent += request.entries.size();
  }
  send(peer, std::move(request));
}

void raft_core::fill_pipeline(leader_role& leader, const std::string& peer) {
  auto& progress = leader.progress.at(peer);
  auto before = progress.next_index();
  send_append(leader, peer, false);
  while (progress.state() == follower_progress::mode::replicate &&
         progress.next_index() != before && progress.next_index() <= log_.last_index()) {
    before = progress.next_index();
    send_append(leader, peer, false);
  }
}

void raft_core::broadcast_appends(leader_role& leader, bool heartbeat) {
  for (auto& [peer, progress] : leader.progress) {
    if (heartbeat)
      send_append(leader, peer, true);
    else
      fill_pipeline(leader, peer);
  }
}

void raft_core::send_heartbeats(leader_role& leader) {
  if (leader.read_round_requested) {
    leader.read_round_requested = false;
    ++leader.round;
    ++counters_.read_rounds;
  }
  broadcast_appends(leader, true);
}

void raft_core::handle(const append_reply& reply) {
  if (!same_cluster(reply.from, reply.cluster_id))
    return;
  if (!accept_term(reply.term, message_kind::append_reply, reply.from)) {
    finish_step();
    return;
  }
  auto* leader = leader_state();
  if (leader == nullptr || reply.term != term_) {
    finish_step();
    return;
  }
  auto i = leader->progress.find(reply.from);
  if (i == leader->progress.end()) {
    finish_step();
    return;
  }
  if ((reply.success && reply.match_index > log_.last_index()) ||
      (!reply.success && reply.conflict_index == 0)) {
    violation(reply.from, "append reply beyond what was sent");
    finish_step();
    return;
  }
  auto& progress = i->second;
  progress.recently_active = true;
  progress.silent_ticks = 0;
  progress.repairing = reply.repairing;
  progress.acked_round = std::max(progress.acked_round, reply.round);
  if (reply.success) {
    progress.accepted(reply.match_index);
    maybe_commit();
    if ((leader = leader_state()) != nullptr) {
      confirm_reads(*leader);
      maybe_promote(*leader);
    }
    if ((leader = leader_state()) != nullptr)
      maybe_send_timeout_now(*leader);
  } else {
    if (reply.prev_log_index < progress.match_index()) {
      finish_step();
      return; // stale rejection: we already know it matches further
    }
    if (reply.conflict_term == 0 && reply.conflict_index <= progress.match_index()) {
      // The follower's log is shorter than what it acknowledged: its disk lost synced data
      // (or lied about syncing). Never count on those entries again.
      event("follower " + reply.from + " lost acknowledged entries after " +
            std::to_string(reply.conflict_index - 1));
      progress.lost_entries_after(reply.conflict_index - 1);
    }
    if (progress.state() == follower_progress::mode::probe &&
        reply.prev_log_index + 1 != progress.next_index()) {
      finish_step();
      return; // not an answer to the outstanding probe
    }
    uint64_t next = reply.conflict_index;
    if (reply.conflict_term != 0) {
      auto last_of_term = log_.last_index_of_term(reply.conflict_term);
      if (last_of_term != 0)
        next = last_of_term + 1;
    }
    progress.rejected(std::min(next, reply.prev_log_index));
    confirm_reads(*leader);
  }
  if ((leader = leader_state()) != nullptr && leader->progress.count(reply.from) > 0)
    fill_pipeline(*leader, reply.from);
  hang_up_departed(); // a departed member may just have acknowledged its removal
  finish_step();
}

void raft_core::maybe_commit() {
  auto* leader = leader_state();
  if (leader == nullptr)
    return;
  std::vector<uint64_t> matches;
  matches.reserve(members_.size());
  for (const auto& [member, address] : members_) {
    if (member == config_.id) {
      matches.push_back(pipeline_.durable_last_index());
    } else if (auto i = leader->progress.find(member); i != leader->progress.end()) {
      // A follower repairing lost entries does not count (protocol-aware recovery).
      matches.push_back(i->second.repairing ? 0 : i->second.match_index());
    } else {
      matches.push_back(0);
    }
  }
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::removed_voter_counts)
    for (const auto& [member, departure] : departed_)
      if (auto i = leader->progress.find(member); i != leader->progress.end())
        matches.push_back(i->second.match_index());
#endif
  std::sort(matches.begin(), matches.end(), std::greater<>{});
  if (matches.size() < quorum())
    return;
  auto quorum_index = matches[quorum() - 1];
  if (quorum_index <= commit_index_)
    return;
  bool current_term = log_.term_at(quorum_index) == term_;
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::commit_by_count)
    current_term = true;
#endif
  // Raft §5.4.2: counting replicas is safe only for entries of the leader's own term.
  if (!current_term)
    return;
  bool first_commit_of_term = log_.term_at(commit_index_) != term_;
  advance_commit(quorum_index);
  if (first_commit_of_term && !leader->changes_awaiting_term_commit.empty()) {
    run_changes_awaiting_term_commit(*leader);
    if ((leader = leader_state()) == nullptr)
      return;
  }
  if (first_commit_of_term && !leader->reads_awaiting_term_commit.empty()) {
    auto waiting = std::move(leader->reads_awaiting_term_commit);
    leader->reads_awaiting_term_commit.clear();
    for (auto& origin : waiting)
      leader->reads.push_back(
          leader_role::pending_read{commit_index_, leader->round + 1, false, std::move(origin)});
    request_read_round(*leader);
  }
  // Followers learn the new commit index right away rather than at the next heartbeat.
  for (auto& [peer, progress] : leader->progress)
    if (progress.state() == follower_progress::mode::replicate && progress.inflight() == 0 &&
        progress.match_index() == log_.last_index())
      send_append(*leader, peer, true);
}

// -- commit and apply
// ------------------------------------------------------------------------------

void raft_core::advance_commit(uint64_t index) {
  if (index <= commit_index_)
    return;
  RAFT_INVARIANT(index <= log_.last_index(), "commit beyond the log");
  commit_index_ = index;
  maybe_apply();
  hang_up_departed();
  if (auto* leader = leader_state())
    maybe_promote(*leader);
}

void raft_core::maybe_apply() {
  while (apply_sent_index_ < commit_index_) {
    apply_work work;
    work.epoch = apply_epoch_;
    work.batch.entries =
        log_.slice(apply_sent_index_ + 1, std::min<uint64_t>(config_.max_entries_per_apply,
                                                             commit_index_ - apply_sent_index_));
    apply_sent_index_ = work.batch.entries.back().index;
    out_.apply.push_back(std::move(work));
  }
}

void raft_core::applied(uint64_t epoch, const applied_batch& batch) {
  if (epoch != apply_epoch_) {
    finish_step(); // answer for the state machine a join reset discarded
    return;
  }
  RAFT_INVARIANT(batch.last_applied <= commit_index_,
                 "applied " + std::to_string(batch.last_applied) + " beyond commit " +
                     std::to_string(commit_index_));
  applied_index_ = std::max(applied_index_, batch.last_applied);
  note_snapshot(batch.snapshot);
  if (auto* leader = leader_state()) {
    std::map<uint64_t, const std::string*> payloads;
    for (const auto& result : batch.results)
      payloads.emplace(result.index, &result.payload);
    auto& writes = leader->writes;
    while (!writes.empty() && writes.begin()->first <= applied_index_) {
      auto node = writes.extract(writes.begin());
      client_reply reply;
      reply.index = node.key();
      reply.term = node.mapped().term;
      // Still leader of the proposal's term, so our log holds it at that index: it was applied.
      reply.status = log_.term_at(node.key()) == node.mapped().term ? reply_status::ok
                                                                    : reply_status::leadership_lost;
      if (auto p = payloads.find(node.key()); p != payloads.end())
        reply.payload = *p->second;
      answer(node.mapped().origin, std::move(reply));
    }
    confirm_reads(*leader);
  }
  serve_follower_reads();
  maybe_finish_repair();
  finish_step();
}

void raft_core::maybe_finish_repair() {
  // The leader's log holds every committed entry (Leader Completeness). Once ours holds them up
  // to where we may have lost acknowledged ones, durably, our votes and acknowledgements are
  // truthful again.
  if (repair_until_ == 0 || commit_index_ < repair_until_ ||
      pipeline_.durable_last_index() < repair_until_)
    return;
  event("repaired: caught up to index " + std::to_string(repair_until_) +
        " from the leader, voting again");
  repair_until_ = 0;
  repair_term_ = 0;
  queue_hard_state();
}

} // namespace infinity
