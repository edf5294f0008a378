#include "actors/raft/node_actor.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "actors/kv/command_codec.hpp"
#include "actors/messages.hpp"

namespace infinity {
namespace {

std::string& invariant_violation_slot() {
  static std::string slot;
  return slot;
}

[[noreturn]] void invariant_failed(const std::string& node, const std::string& what) {
  auto text = "raft invariant violated on " + node + ": " + what;
  if (invariant_violation_slot().empty())
    invariant_violation_slot() = text;
  throw invariant_violation(text);
}

#define RAFT_INVARIANT(cond, what)                                                                 \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      invariant_failed(config_.id, std::string(#cond) + ": " + (what));                            \
  } while (false)

} // namespace

const std::string& first_invariant_violation() {
  return invariant_violation_slot();
}

void reset_invariant_violations() {
  invariant_violation_slot().clear();
}

raft_node::raft_node(actor_pointer self) : self_(self) {
  // nop
}

// -- start and behaviors -------------------------------------------------------------------------

caf::behavior raft_node::start(raft_config config, recovered_state recovered, caf::actor storage,
                               caf::actor kv, uint64_t seed) {
  config_ = std::move(config);
  RAFT_INVARIANT(config_.members.empty() ||
                     std::count(config_.members.begin(), config_.members.end(), config_.id) == 1,
                 "a bootstrap membership must name this node exactly once");
  RAFT_INVARIANT(config_.heartbeat_ticks >= 1 && config_.election_ticks > config_.heartbeat_ticks,
                 "heartbeats must be more frequent than election timeouts");
  RAFT_INVARIANT(config_.max_inflight_appends >= 1, "pipelining window must allow one append");
  storage_ = std::move(storage);
  kv_ = std::move(kv);
  rng_.seed(seed);
  term_ = recovered.state.term;
  voted_for_ = recovered.state.voted_for;
  log_ = raft_log(std::move(recovered.entries));
  RAFT_INVARIANT(log_.last_term() <= term_, "recovered log has entries from a future term");
  durable_last_index_ = log_.last_index();
  refresh_membership();
  checked_term_ = term_;
  checked_vote_ = voted_for_;
  // Monitoring the helpers would hide their failure; linking makes the node fail with them.
  self_->link_to(storage_);
  self_->link_to(kv_);
  self_->delayed_send(self_, config_.tick_interval, tick_atom::value);
  role_ = raft_role::follower;
  reset_election_timer();
  log_event("started as follower in term " + std::to_string(term_) + " with " +
            std::to_string(log_.last_index()) + " log entries");
  return follower_behavior();
}

caf::message_handler raft_node::common_handlers() {
  return {
      [this](request_vote& request) {
        handle_request_vote(request);
        finish_step();
      },
      [this](append_entries& request) {
        handle_append_entries(request);
        finish_step();
      },
      // Replies a role does not expect still carry terms that must be honoured.
      [this](const vote_reply& reply) {
        accept_term(reply.term,
                    reply.pre_vote && reply.granted ? message_kind::pre_vote_reply_granted
                                                    : message_kind::vote_reply,
                    reply.from);
        finish_step();
      },
      [this](const append_reply& reply) {
        accept_term(reply.term, message_kind::append_reply, reply.from);
        finish_step();
      },
      [this](tick_atom) {
        self_->delayed_send(self_, config_.tick_interval, tick_atom::value);
        handle_tick();
        finish_step();
      },
      [this](flush_atom) {
        flush_scheduled_ = false;
        finish_step();
      },
      [this](propose_atom, kv_command& command) -> caf::result<propose_result> {
        return forward_proposal(command, false);
      },
      [this](propose_atom, kv_command& command, bool forwarded) -> caf::result<propose_result> {
        return forward_proposal(command, forwarded);
      },
      [this](read_atom) -> caf::result<propose_result> { return forward_read(false); },
      [this](read_atom, bool forwarded) -> caf::result<propose_result> {
        return forward_read(forwarded);
      },
      [this](join_atom, std::string& id, std::string& address) -> caf::result<propose_result> {
        return forward_join(id, address, false);
      },
      [this](join_atom, std::string& id, std::string& address, bool forwarded)
          -> caf::result<propose_result> { return forward_join(id, address, forwarded); },
      [this](join_reset_atom, std::string& leader, uint64_t leader_term,
             std::string& leader_address) -> caf::result<bool, std::string> {
        if (leader_term < term_)
          return {false, "stale leader term " + std::to_string(leader_term)};
        auto result = handle_join_reset(leader);
        if (config_.connect_peer && !leader_address.empty() && peers_.count(leader) == 0)
          config_.connect_peer(leader, leader_address);
        finish_step();
        return result;
      },
      [this](status_atom) -> raft_status { return status(); },
      [this](peer_up_atom, const std::string& id, caf::actor& handle) {
        if (id == config_.id)
          return;
        peers_[id] = std::move(handle);
        if (role_ == raft_role::leader && pending_join_ && pending_join_->id == id &&
            !pending_join_->probe_sent)
          send_join_probe();
        if (role_ == raft_role::leader && progress_.count(id) > 0) {
          auto& progress = progress_[id];
          progress.state = follower_progress::mode::probe;
          progress.probe_outstanding = false;
          progress.inflight.clear();
          send_append(id, false);
        }
        finish_step();
      },
      [this](peer_down_atom, const std::string& id) {
        peers_.erase(id);
        for (auto& call : forwarded_calls_)
          if (!call->done && call->peer == id) {
            call->done = true;
            call->promise.deliver(call->if_peer_down);
          }
        if (auto i = progress_.find(id); i != progress_.end()) {
          // Whatever was in flight is lost with the connection: probe again once it is back.
          i->second.state = follower_progress::mode::probe;
          i->second.probe_outstanding = false;
          i->second.inflight.clear();
        }
        finish_step();
      },
  };
}

caf::behavior raft_node::follower_behavior() {
  return common_handlers();
}

caf::behavior raft_node::candidate_behavior() {
  caf::message_handler specific{
      [this](const vote_reply& reply) {
        handle_vote_reply(reply);
        finish_step();
      },
  };
  return specific.or_else(common_handlers());
}

caf::behavior raft_node::leader_behavior() {
  caf::message_handler specific{
      [this](const append_reply& reply) {
        handle_append_reply(reply);
        finish_step();
      },
      [this](propose_atom, kv_command& command) -> caf::result<propose_result> {
        auto result = handle_propose(command);
        finish_step();
        return result;
      },
      [this](propose_atom, kv_command& command, bool) -> caf::result<propose_result> {
        auto result = handle_propose(command);
        finish_step();
        return result;
      },
      [this](read_atom) -> caf::result<propose_result> {
        auto result = handle_read();
        finish_step();
        return result;
      },
      [this](read_atom, bool) -> caf::result<propose_result> {
        auto result = handle_read();
        finish_step();
        return result;
      },
      [this](join_atom, std::string& id, std::string& address) -> caf::result<propose_result> {
        auto result = handle_join(id, address);
        finish_step();
        return result;
      },
      [this](join_atom, std::string& id, std::string& address,
             bool) -> caf::result<propose_result> {
        auto result = handle_join(id, address);
        finish_step();
        return result;
      },
      [this](flush_atom) {
        flush_scheduled_ = false;
        broadcast_appends(false);
        if (read_round_requested_)
          send_heartbeats();
        finish_step();
      },
  };
  return specific.or_else(common_handlers());
}

// -- role transitions ----------------------------------------------------------------------------

void raft_node::become_follower(uint64_t term, const std::string& leader) {
  RAFT_INVARIANT(term >= term_, "term " + std::to_string(term) + " < " + std::to_string(term_));
  auto previous_role = role_;
  if (term > term_) {
    term_ = term;
    voted_for_.clear();
    queue_hard_state();
  }
  if (previous_role == raft_role::leader)
    fail_leader_requests(propose_status::leadership_lost);
  role_ = raft_role::follower;
  leader_id_ = leader;
  votes_.clear();
  progress_.clear();
  reset_election_timer();
  log_event("follower in term " + std::to_string(term_) +
            (leader.empty() ? std::string{", leader unknown"} : ", leader " + leader));
  self_->become(follower_behavior());
}

void raft_node::become_pre_candidate() {
  RAFT_INVARIANT(role_ != raft_role::leader, "a leader does not campaign");
  role_ = raft_role::pre_candidate;
  leader_id_.clear();
  votes_.clear();
  reset_election_timer();
  log_event("pre-candidate for term " + std::to_string(term_ + 1));
  self_->become(candidate_behavior());
  request_vote request{config_.id, term_ + 1, log_.last_index(), log_.last_term(), true};
  for (const auto& [member, address] : members_)
    if (member != config_.id)
      send_vote_request(member, request);
  record_vote(config_.id, true);
}

void raft_node::become_candidate() {
  RAFT_INVARIANT(role_ != raft_role::leader, "a leader does not campaign");
  term_ += 1;
  voted_for_ = config_.id;
  queue_hard_state();
  // Our own vote counts only once it is durable: a crash must not let us vote twice in a term.
  self_vote_seq_ = required_seq();
  role_ = raft_role::candidate;
  leader_id_.clear();
  votes_.clear();
  reset_election_timer();
  log_event("candidate in term " + std::to_string(term_));
  self_->become(candidate_behavior());
  request_vote request{config_.id, term_, log_.last_index(), log_.last_term(), false};
  for (const auto& [member, address] : members_)
    if (member != config_.id)
      send_vote_request(member, request);
  if (self_vote_seq_ <= durable_seq_)
    record_vote(config_.id, true);
}

void raft_node::become_leader() {
  RAFT_INVARIANT(role_ == raft_role::candidate, "only a candidate becomes leader");
  role_ = raft_role::leader;
  leader_id_ = config_.id;
  votes_.clear();
  progress_.clear();
  for (const auto& [member, address] : members_) {
    if (member == config_.id)
      continue;
    auto& progress = progress_[member];
    progress.next_index = log_.last_index() + 1;
    progress.recently_active = true; // a fresh leader gets a full period before check-quorum
  }
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  log_event("leader in term " + std::to_string(term_));
  self_->become(leader_behavior());
  // Raft §5.4.2 / §8: an entry of our own term lets us commit what earlier leaders left behind.
  bool append_noop = true;
#ifdef INFINITYSTORE_TESTING
  append_noop = config_.broken != raft_config::mutation::commit_by_count;
#endif
  if (append_noop) {
    log_entry noop{term_, log_.last_index() + 1, entry_kind::noop, {}};
    log_.append(noop);
    queue_append(noop);
  }
  broadcast_appends(false);
  maybe_commit(); // a single-node cluster commits on its own durable copy
}

// -- terms and votes -----------------------------------------------------------------------------

bool raft_node::in_lease() const {
  return config_.check_quorum && !leader_id_.empty() && election_elapsed_ < config_.election_ticks;
}

bool raft_node::accept_term(uint64_t message_term, message_kind kind, const std::string& from) {
  if (message_term > term_) {
    bool is_vote_request =
        kind == message_kind::vote_request || kind == message_kind::pre_vote_request;
    // A node that heard from a live leader recently refuses to help depose it (thesis §9.6).
    if (is_vote_request && in_lease())
      return false;
    // Pre-votes and granted pre-vote replies carry a hypothetical term: they change nothing.
    if (kind == message_kind::pre_vote_request || kind == message_kind::pre_vote_reply_granted)
      return true;
    become_follower(message_term, kind == message_kind::append ? from : std::string{});
    return true;
  }
  if (message_term < term_) {
    if (kind == message_kind::append) {
      // Tell a stale leader about the newer term so it steps down (it cannot learn it from
      // vote requests, which pre-vote and check-quorum suppress).
      append_reply reply;
      reply.from = config_.id;
      reply.term = term_;
      send_to(from, reply);
    } else if (kind == message_kind::pre_vote_request) {
      send_to(from, vote_reply{config_.id, term_, false, true});
    }
    return false;
  }
  return true;
}

void raft_node::handle_request_vote(const request_vote& request) {
  auto kind = request.pre_vote ? message_kind::pre_vote_request : message_kind::vote_request;
  if (!accept_term(request.term, kind, request.from))
    return;
  bool can_vote = voted_for_ == request.from || (voted_for_.empty() && leader_id_.empty()) ||
                  (request.pre_vote && request.term > term_);
  bool up_to_date =
      request.last_log_term > log_.last_term() ||
      (request.last_log_term == log_.last_term() && request.last_log_index >= log_.last_index());
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::vote_ignores_log)
    up_to_date = true;
#endif
  if (!can_vote || !up_to_date) {
    send_to(request.from, vote_reply{config_.id, term_, false, request.pre_vote});
    return;
  }
  if (request.pre_vote) {
    send_to(request.from, vote_reply{config_.id, request.term, true, true});
    return;
  }
  RAFT_INVARIANT(request.term == term_, "a vote is granted only in the current term");
  election_elapsed_ = 0;
  voted_for_ = request.from;
  queue_hard_state();
  send_after_durable(request.from, caf::make_message(vote_reply{config_.id, term_, true, false}));
}

void raft_node::handle_vote_reply(const vote_reply& reply) {
  auto kind = reply.pre_vote && reply.granted ? message_kind::pre_vote_reply_granted
                                              : message_kind::vote_reply;
  if (!accept_term(reply.term, kind, reply.from))
    return;
  if (role_ == raft_role::pre_candidate && reply.pre_vote) {
    if (reply.granted && reply.term != term_ + 1)
      return; // from an older pre-vote round
    record_vote(reply.from, reply.granted);
  } else if (role_ == raft_role::candidate && !reply.pre_vote && reply.term == term_) {
    record_vote(reply.from, reply.granted);
  }
}

void raft_node::record_vote(const std::string& voter, bool granted) {
  if (members_.count(voter) == 0)
    return; // only voters of the membership in effect count
  votes_.emplace(voter, granted);
  tally_votes();
}

void raft_node::tally_votes() {
  size_t granted = 0;
  size_t rejected = 0;
  for (const auto& [voter, vote] : votes_)
    ++(vote ? granted : rejected);
  if (granted >= quorum()) {
    if (role_ == raft_role::pre_candidate)
      become_candidate();
    else if (role_ == raft_role::candidate)
      become_leader();
  } else if (rejected >= quorum()) {
    become_follower(term_, std::string{});
  }
}

// -- replication: follower side ------------------------------------------------------------------

void raft_node::handle_append_entries(append_entries& request) {
  if (!accept_term(request.term, message_kind::append, request.from))
    return;
  RAFT_INVARIANT(role_ != raft_role::leader,
                 "two leaders in term " + std::to_string(term_) + ": " + request.from);
  if (role_ != raft_role::follower)
    become_follower(term_, request.from);
  RAFT_INVARIANT(leader_id_.empty() || leader_id_ == request.from,
                 "two leaders in term " + std::to_string(term_) + ": " + leader_id_ + " and " +
                     request.from);
  if (leader_id_.empty()) {
    leader_id_ = request.from;
    log_event("leader is " + leader_id_ + " in term " + std::to_string(term_));
  }
  election_elapsed_ = 0;
  leader_http_ = request.leader_http;

  append_reply reply;
  reply.from = config_.id;
  reply.term = term_;
  reply.prev_log_index = request.prev_log_index;
  reply.round = request.round;
  if (request.prev_log_index < commit_index_) {
    // A stale or duplicated append: everything up to our commit index already matches the
    // leader (Log Matching), so report that and let the leader continue from there.
    reply.success = true;
    reply.match_index = commit_index_;
    send_after_durable(request.from, caf::make_message(reply));
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
    send_to(request.from, reply);
    return;
  }
  for (auto& entry : request.entries) {
    if (entry.index <= log_.last_index()) {
      if (log_.term_at(entry.index) == entry.term)
        continue; // already have it
      RAFT_INVARIANT(entry.index > commit_index_,
                     "truncating committed entry " + std::to_string(entry.index));
      log_.truncate_from(entry.index);
      queue_truncate(entry.index);
      if (entry.index <= membership_index_)
        refresh_membership();
    }
    log_.append(entry);
    queue_append(entry);
    if (entry.kind == entry_kind::config)
      adopt_membership(entry);
  }
  auto last_new_index = request.prev_log_index + request.entries.size();
  if (request.leader_commit > commit_index_)
    advance_commit(std::min(request.leader_commit, last_new_index));
  reply.success = true;
  reply.match_index = last_new_index;
  send_after_durable(request.from, caf::make_message(reply));
}

// -- replication: leader side --------------------------------------------------------------------

void raft_node::send_append(const std::string& peer, bool heartbeat) {
  if (!hard_state_durable())
    return; // on_persisted sends once the term is durable
  auto& progress = progress_.at(peer);
  append_entries request;
  request.from = config_.id;
  request.term = term_;
  request.round = round_;
  request.leader_http = config_.http_address;
  if (heartbeat) {
    // A heartbeat proves leadership and carries the commit index as far as the follower is
    // known to match; it never risks a mismatch.
    request.prev_log_index = progress.match_index;
    request.prev_log_term = log_.term_at(progress.match_index);
    request.leader_commit = std::min(commit_index_, progress.match_index);
    send_to(peer, std::move(request));
    return;
  }
  using mode = follower_progress::mode;
  if (progress.state == mode::probe && progress.probe_outstanding)
    return;
  if (progress.state == mode::replicate && progress.inflight.size() >= config_.max_inflight_appends)
    return;
  if (progress.next_index > log_.last_index() + 1)
    progress.next_index = log_.last_index() + 1;
  request.prev_log_index = progress.next_index - 1;
  request.prev_log_term = log_.term_at(request.prev_log_index);
  request.entries =
      log_.slice(progress.next_index, config_.max_entries_per_append, config_.max_bytes_per_append);
  auto last_sent = request.prev_log_index + request.entries.size();
  request.leader_commit = std::min(commit_index_, last_sent);
  if (progress.state == mode::replicate) {
    if (request.entries.empty())
      return; // nothing new; heartbeats carry the commit index
    progress.inflight.push_back(last_sent);
    progress.next_index = last_sent + 1;
  } else {
    progress.probe_outstanding = true;
  }
  send_to(peer, std::move(request));
}

void raft_node::fill_pipeline(const std::string& peer) {
  auto& progress = progress_.at(peer);
  auto before = progress.next_index;
  send_append(peer, false);
  while (progress.state == follower_progress::mode::replicate && progress.next_index != before &&
         progress.next_index <= log_.last_index()) {
    before = progress.next_index;
    send_append(peer, false);
  }
}

void raft_node::broadcast_appends(bool heartbeat) {
  for (auto& [peer, progress] : progress_) {
    if (heartbeat)
      send_append(peer, true);
    else
      fill_pipeline(peer);
  }
}

void raft_node::send_heartbeats() {
  if (read_round_requested_) {
    read_round_requested_ = false;
    ++round_;
  }
  broadcast_appends(true);
}

void raft_node::request_read_round() {
  read_round_requested_ = true;
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    self_->send(self_, flush_atom::value);
  }
}

void raft_node::handle_append_reply(const append_reply& reply) {
  if (!accept_term(reply.term, message_kind::append_reply, reply.from))
    return;
  auto i = progress_.find(reply.from);
  if (i == progress_.end())
    return;
  auto& progress = i->second;
  progress.recently_active = true;
  progress.acked_round = std::max(progress.acked_round, reply.round);
  using mode = follower_progress::mode;
  if (reply.success) {
    if (reply.match_index > progress.match_index) {
      progress.match_index = reply.match_index;
      progress.ticks_since_ack = 0;
    }
    progress.next_index = std::max(progress.next_index, progress.match_index + 1);
    while (!progress.inflight.empty() && progress.inflight.front() <= reply.match_index)
      progress.inflight.pop_front();
    if (progress.state == mode::probe) {
      // Any success tells us where the logs match: start pipelining after it.
      progress.state = mode::replicate;
      progress.probe_outstanding = false;
      progress.inflight.clear();
      progress.next_index = progress.match_index + 1;
    }
    maybe_commit();
    confirm_reads();
  } else {
    if (reply.prev_log_index < progress.match_index)
      return; // stale rejection: we already know it matches further
    if (reply.conflict_term == 0 && reply.conflict_index <= progress.match_index) {
      // The follower's log is shorter than what it acknowledged: its disk lost synced data
      // (or lied about syncing). Never count on those entries again.
      log_event("follower " + reply.from + " lost acknowledged entries after " +
                std::to_string(reply.conflict_index - 1));
      progress.match_index = reply.conflict_index - 1;
    }
    if (progress.state == mode::probe && reply.prev_log_index + 1 != progress.next_index)
      return; // not an answer to the outstanding probe
    uint64_t next = reply.conflict_index;
    if (reply.conflict_term != 0) {
      auto last_of_term = log_.last_index_of_term(reply.conflict_term);
      if (last_of_term != 0)
        next = last_of_term + 1;
    }
    next = std::min(next, reply.prev_log_index);
    progress.next_index = std::max(next, progress.match_index + 1);
    progress.state = mode::probe;
    progress.probe_outstanding = false;
    progress.inflight.clear();
    confirm_reads();
  }
  fill_pipeline(reply.from);
}

void raft_node::maybe_commit() {
  if (role_ != raft_role::leader)
    return;
  std::vector<uint64_t> matches;
  matches.reserve(members_.size());
  for (const auto& [member, address] : members_) {
    if (member == config_.id)
      matches.push_back(durable_last_index_);
    else if (auto i = progress_.find(member); i != progress_.end())
      matches.push_back(i->second.match_index);
    else
      matches.push_back(0);
  }
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
  if (first_commit_of_term && !reads_awaiting_term_commit_.empty()) {
    auto waiting = std::move(reads_awaiting_term_commit_);
    reads_awaiting_term_commit_.clear();
    for (auto& promise : waiting)
      pending_reads_.push_back(pending_read{commit_index_, round_ + 1, false, std::move(promise)});
    request_read_round();
  }
  // Followers learn the new commit index right away rather than at the next heartbeat.
  for (auto& [peer, progress] : progress_)
    if (progress.state == follower_progress::mode::replicate && progress.inflight.empty() &&
        progress.match_index == log_.last_index())
      send_append(peer, true);
}

caf::result<propose_result> raft_node::handle_propose(kv_command& command) {
  log_entry entry{term_, log_.last_index() + 1, entry_kind::command, {}};
  entry.data = encode_command(command);
  auto index = entry.index;
  log_.append(entry);
  queue_append(entry);
  auto promise = self_->make_response_promise();
  pending_proposals_.emplace(index, pending_proposal{term_, promise});
  if (!flush_scheduled_) {
    // Proposals already in the mailbox are handled before this, so they share one append.
    flush_scheduled_ = true;
    self_->send(self_, flush_atom::value);
  }
  return promise;
}

propose_result raft_node::refusal() const {
  propose_result result;
  result.status = leader_id_.empty() ? propose_status::no_leader : propose_status::not_leader;
  result.term = term_;
  result.leader_id = leader_id_;
  return result;
}

std::shared_ptr<raft_node::forwarded_call> raft_node::track_forward(const std::string& peer,
                                                                    caf::response_promise promise,
                                                                    propose_result if_peer_down) {
  forwarded_calls_.erase(std::remove_if(forwarded_calls_.begin(), forwarded_calls_.end(),
                                        [](const auto& call) { return call->done; }),
                         forwarded_calls_.end());
  auto call = std::make_shared<forwarded_call>();
  call->peer = peer;
  call->promise = std::move(promise);
  call->if_peer_down = std::move(if_peer_down);
  forwarded_calls_.push_back(call);
  return call;
}

caf::result<propose_result> raft_node::forward_proposal(kv_command& command, bool forwarded) {
  auto leader = peers_.find(leader_id_);
  // One hop at most: two nodes that each believe the other leads must not bounce a command.
  if (forwarded || leader_id_.empty() || leader == peers_.end())
    return refusal();
  // Lost on the way or unanswered: the command may or may not have been appended.
  propose_result unknown;
  unknown.status = propose_status::timeout;
  unknown.term = term_;
  unknown.leader_id = leader_id_;
  auto promise = self_->make_response_promise();
  auto call = track_forward(leader_id_, promise, unknown);
  self_
      ->request(leader->second, config_.forward_timeout, propose_atom::value, std::move(command),
                true)
      .then(
          [call](const propose_result& result) {
            if (!call->done) {
              call->done = true;
              call->promise.deliver(result);
            }
          },
          [call](caf::error&) {
            if (!call->done) {
              call->done = true;
              call->promise.deliver(call->if_peer_down);
            }
          });
  return promise;
}

caf::result<propose_result> raft_node::forward_read(bool forwarded) {
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::stale_follower_reads && !forwarded) {
    propose_result stale;
    stale.index = applied_index_;
    stale.term = term_;
    return stale;
  }
#endif
  auto leader = peers_.find(leader_id_);
  if (forwarded || leader_id_.empty() || leader == peers_.end())
    return refusal();
  // A read that was not confirmed had no effect: failing it is always safe.
  auto failed = refusal();
  failed.status = propose_status::timeout;
  auto promise = self_->make_response_promise();
  auto call = track_forward(leader_id_, promise, failed);
  self_->request(leader->second, config_.forward_timeout, read_atom::value, true)
      .then(
          [this, call](const propose_result& result) {
            if (call->done)
              return;
            call->done = true;
            if (result.status != propose_status::ok) {
              call->promise.deliver(result);
              return;
            }
            // The leader confirmed `index` as a linearizable read point; our copy is good for the
            // read once it has applied that far (thesis §6.4.1, reads from followers).
            if (applied_index_ >= result.index)
              call->promise.deliver(result);
            else
              follower_reads_.emplace(result.index, follower_read{result, call->promise});
          },
          [call](caf::error&) {
            if (!call->done) {
              call->done = true;
              call->promise.deliver(call->if_peer_down);
            }
          });
  return promise;
}

caf::result<propose_result> raft_node::forward_join(const std::string& id,
                                                    const std::string& address, bool forwarded) {
  auto leader = peers_.find(leader_id_);
  if (forwarded || leader_id_.empty() || leader == peers_.end())
    return refusal();
  auto promise = self_->make_response_promise();
  self_
      ->request(leader->second, config_.join_timeout + config_.forward_timeout, join_atom::value,
                id, address, true)
      .then([promise](const propose_result& result) mutable { promise.deliver(result); },
            [this, promise](caf::error&) mutable {
              auto result = refusal();
              result.status = propose_status::timeout;
              promise.deliver(result);
            });
  return promise;
}

caf::result<propose_result> raft_node::handle_join(const std::string& id,
                                                   const std::string& address) {
  propose_result result;
  result.term = term_;
  result.leader_id = config_.id;
  if (!valid_member_id(id) || address.empty() || address.find('\n') != std::string::npos) {
    result.status = propose_status::rejected;
    result.leader_id = "invalid node id or address";
    return result;
  }
  if (auto i = members_.find(id); i != members_.end()) {
    if (i->second != address && !i->second.empty()) {
      result.status = propose_status::rejected;
      result.leader_id = "node " + id + " is already a member at " + i->second;
      return result;
    }
    result.status = propose_status::ok; // joining twice is harmless
    result.index = membership_index_;
    return result;
  }
  // One change at a time, and only once this term has committed an entry (thesis §4.1, and the
  // fix for the single-server change bug described on raft-dev in 2015).
  if (pending_join_ || membership_index_ > commit_index_ || log_.term_at(commit_index_) != term_) {
    result.status = propose_status::busy;
    return result;
  }
  auto promise = self_->make_response_promise();
  pending_join_ = pending_join_state{id, address, promise, 0, false};
  log_event("adding " + id + " at " + address);
  if (config_.connect_peer)
    config_.connect_peer(id, address);
  if (peers_.count(id) > 0)
    send_join_probe();
  return promise;
}

void raft_node::send_join_probe() {
  pending_join_->probe_sent = true;
  auto id = pending_join_->id;
  auto term = term_;
  auto own_address = members_.count(config_.id) > 0 ? members_.at(config_.id) : std::string{};
  self_
      ->request(peers_.at(id), config_.join_timeout, join_reset_atom::value, config_.id, term_,
                own_address)
      .then(
          [this, id, term](bool accepted, const std::string& reason) {
            if (!pending_join_ || pending_join_->id != id || term_ != term ||
                role_ != raft_role::leader)
              return;
            auto join = std::move(*pending_join_);
            pending_join_.reset();
            if (!accepted) {
              propose_result result;
              result.status = propose_status::rejected;
              result.term = term_;
              result.leader_id = reason;
              join.promise.deliver(result);
              log_event("not adding " + id + ": " + reason);
              if (config_.disconnect_peer && members_.count(id) == 0)
                config_.disconnect_peer(id);
              return;
            }
            auto next = members_;
            next[join.id] = join.address;
            log_entry entry{term_, log_.last_index() + 1, entry_kind::config,
                            encode_membership(next)};
            log_.append(entry);
            queue_append(entry);
            adopt_membership(entry);
            pending_proposals_.emplace(entry.index, pending_proposal{term_, join.promise});
            broadcast_appends(false);
            finish_step();
          },
          [this, id](caf::error&) {
            if (!pending_join_ || pending_join_->id != id)
              return;
            auto result = refusal();
            result.status = propose_status::unreachable;
            result.leader_id = "node " + id + " did not answer";
            pending_join_->promise.deliver(result);
            pending_join_.reset();
            if (config_.disconnect_peer && members_.count(id) == 0)
              config_.disconnect_peer(id);
          });
}

caf::result<bool, std::string> raft_node::handle_join_reset(const std::string& leader) {
  if (members_.count(leader) > 0 && members_.count(config_.id) > 0)
    return {true, std::string{"already a member of that cluster"}};
  if (members_.size() > 1 || (members_.size() == 1 && members_.count(config_.id) == 0))
    return {false, "node " + config_.id + " already belongs to a cluster of " +
                       std::to_string(members_.size()) + " members"};
  size_t writes = 0;
  for (uint64_t i = 1; i <= log_.last_index(); ++i)
    if (log_.at(i).kind == entry_kind::command)
      ++writes;
  if (writes > 0)
    return {false, "node " + config_.id + " holds " + std::to_string(writes) +
                       " writes of its own; refusing to discard them"};
  // Nothing of value here: forget the lone bootstrap state and wait for the leader's log.
  log_event("joining the cluster of " + leader + ": discarding the bootstrap state");
  if (role_ == raft_role::leader)
    fail_leader_requests(propose_status::leadership_lost);
  if (log_.last_index() > 0) {
    log_.truncate_from(1);
    queue_truncate(1);
  }
  // Term and vote stay: dropping a vote within a term could let this node vote twice in it.
  commit_index_ = 0;
  checked_commit_ = 0;
  apply_sent_index_ = 0;
  applied_index_ = 0;
  ++apply_epoch_;
  self_->send(kv_, kv_reset_atom::value);
  config_.members.clear();
  set_membership(membership{}, 0);
  become_follower(term_, leader);
  if (required_seq() <= durable_seq_)
    return {true, std::string{}};
  auto promise = self_->make_response_promise();
  deferred_actions_.emplace_back(required_seq(),
                                 [promise]() mutable { promise.deliver(true, std::string{}); });
  return promise;
}

// -- membership
// ------------------------------------------------------------------------------------

void raft_node::refresh_membership() {
  for (auto index = log_.last_index(); index >= 1; --index)
    if (log_.at(index).kind == entry_kind::config) {
      adopt_membership(log_.at(index));
      return;
    }
  membership bootstrap;
  for (const auto& id : config_.members)
    bootstrap.emplace(id, std::string{});
  set_membership(std::move(bootstrap), 0);
}

void raft_node::adopt_membership(const log_entry& entry) {
  membership next;
  RAFT_INVARIANT(decode_membership(entry.data, next),
                 "undecodable membership at index " + std::to_string(entry.index));
  set_membership(std::move(next), entry.index);
}

void raft_node::set_membership(membership next, uint64_t index) {
  bool changed = next != members_;
  members_ = std::move(next);
  membership_index_ = index;
  if (role_ == raft_role::leader) {
    for (auto i = progress_.begin(); i != progress_.end();)
      i = members_.count(i->first) == 0 ? progress_.erase(i) : std::next(i);
    for (const auto& [member, address] : members_)
      if (member != config_.id && progress_.count(member) == 0) {
        auto& progress = progress_[member];
        progress.next_index = log_.last_index() + 1;
        progress.recently_active = true;
      }
  }
  if (!changed)
    return;
  std::string names;
  for (const auto& [member, address] : members_)
    names += (names.empty() ? "" : ", ") + member;
  log_event("membership at index " + std::to_string(index) + ": {" + names + "}");
  if (config_.on_membership)
    config_.on_membership(members_);
}

caf::result<propose_result> raft_node::handle_read() {
  auto promise = self_->make_response_promise();
  if (log_.term_at(commit_index_) != term_) {
    // Until an entry of this term commits, our commit index may lag what earlier leaders
    // committed (thesis §6.4 step 1).
    reads_awaiting_term_commit_.push_back(std::move(promise));
    return promise;
  }
  pending_reads_.push_back(pending_read{commit_index_, round_ + 1, false, promise});
  request_read_round();
  confirm_reads();
  return promise;
}

void raft_node::confirm_reads() {
  if (role_ != raft_role::leader || pending_reads_.empty())
    return;
  for (auto& read : pending_reads_) {
    if (read.confirmed)
      continue;
    size_t acks = 1; // ourselves
    for (const auto& [peer, progress] : progress_)
      if (progress.acked_round >= read.round)
        ++acks;
    read.confirmed = acks >= quorum();
  }
  auto ready = [this](const pending_read& read) {
    return read.confirmed && applied_index_ >= read.read_index;
  };
  for (auto& read : pending_reads_) {
    if (ready(read)) {
      propose_result result;
      result.status = propose_status::ok;
      result.index = read.read_index;
      result.term = term_;
      result.leader_id = config_.id;
      read.promise.deliver(result);
    }
  }
  pending_reads_.erase(std::remove_if(pending_reads_.begin(), pending_reads_.end(), ready),
                       pending_reads_.end());
}

void raft_node::fail_leader_requests(propose_status status) {
  propose_result result;
  result.status = status;
  result.term = term_;
  for (auto& [index, pending] : pending_proposals_) {
    result.index = index;
    pending.promise.deliver(result);
  }
  pending_proposals_.clear();
  if (pending_join_) {
    // The membership entry was not appended yet: nothing changed.
    result.index = 0;
    pending_join_->promise.deliver(result);
    pending_join_.reset();
  }
  // A read that was not served has no effect: it is safe to fail it.
  result.index = 0;
  for (auto& read : pending_reads_)
    read.promise.deliver(result);
  pending_reads_.clear();
  for (auto& promise : reads_awaiting_term_commit_)
    promise.deliver(result);
  reads_awaiting_term_commit_.clear();
  read_round_requested_ = false;
}

// -- time
// ------------------------------------------------------------------------------------------

void raft_node::reset_election_timer() {
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  randomized_election_ticks_ =
      config_.election_ticks + static_cast<uint32_t>(rng_() % config_.election_ticks);
}

void raft_node::handle_tick() {
  ++election_elapsed_;
  if (role_ != raft_role::leader) {
    // Only voters campaign: a node waiting to be added (or removed) just follows.
    if (election_elapsed_ >= randomized_election_ticks_ && members_.count(config_.id) > 0) {
      if (config_.pre_vote)
        become_pre_candidate();
      else
        become_candidate();
    }
    return;
  }
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      size_t active = 1;
      for (auto& [peer, progress] : progress_) {
        if (progress.recently_active)
          ++active;
        progress.recently_active = false;
      }
      if (active < quorum()) {
        log_event("stepping down: no quorum heard from in term " + std::to_string(term_));
        become_follower(term_, std::string{});
        return;
      }
    }
  }
  ++heartbeat_elapsed_;
  if (pending_join_ && ++pending_join_->ticks * config_.tick_interval > config_.join_timeout) {
    auto result = refusal();
    result.status = propose_status::unreachable;
    result.leader_id =
        "node " + pending_join_->id + " at " + pending_join_->address + " did not answer";
    pending_join_->promise.deliver(result);
    if (config_.disconnect_peer && members_.count(pending_join_->id) == 0)
      config_.disconnect_peer(pending_join_->id);
    pending_join_.reset();
  }
  for (auto& [peer, progress] : progress_) {
    if (progress.match_index >= log_.last_index()) {
      progress.ticks_since_ack = 0;
      continue;
    }
    if (++progress.ticks_since_ack >= config_.retransmit_ticks) {
      // Appends or acknowledgements were lost: resend from what is known to match (replicate)
      // or repeat the probe.
      progress.ticks_since_ack = 0;
      if (progress.state == follower_progress::mode::replicate)
        progress.next_index = progress.match_index + 1;
      progress.state = follower_progress::mode::probe;
      progress.probe_outstanding = false;
      progress.inflight.clear();
      send_append(peer, false);
    }
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_ticks || read_round_requested_) {
    heartbeat_elapsed_ = 0;
    send_heartbeats();
  }
}

// -- persistence
// -----------------------------------------------------------------------------------

void raft_node::queue_hard_state() {
  queued_.has_hard_state = true;
  queued_.state = hard_state{term_, voted_for_};
  queued_dirty_ = true;
  hard_state_seq_ = required_seq();
}

bool raft_node::hard_state_durable() const {
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::send_before_term_durable)
    return true;
#endif
  return hard_state_seq_ <= durable_seq_;
}

void raft_node::queue_truncate(uint64_t from) {
  // Entries queued but not yet sent at or after `from` are simply dropped; storage truncates
  // whatever it already has.
  auto& entries = queued_.entries;
  if (!entries.empty() && entries.front().index < from) {
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [from](const log_entry& e) { return e.index >= from; }),
                  entries.end());
  } else {
    entries.clear();
    queued_.truncate_from =
        queued_.truncate_from == 0 ? from : std::min(queued_.truncate_from, from);
  }
  queued_dirty_ = true;
  durable_last_index_ = std::min(durable_last_index_, from - 1);
  inflight_last_index_ = std::min(inflight_last_index_, from - 1);
}

void raft_node::queue_append(const log_entry& entry) {
  queued_.entries.push_back(entry);
  queued_dirty_ = true;
}

uint64_t raft_node::required_seq() const {
  return queued_dirty_ ? sent_seq_ + 1 : sent_seq_;
}

void raft_node::maybe_persist() {
  if (!queued_dirty_ || persist_in_flight_)
    return;
  queued_.seq = ++sent_seq_;
  inflight_last_index_ = log_.last_index();
  persist_in_flight_ = true;
  self_->request(storage_, caf::infinite, std::move(queued_))
      .then([this](persisted_atom, uint64_t seq) {
        on_persisted(seq);
        finish_step();
      });
  queued_ = persist_request{};
  queued_dirty_ = false;
}

void raft_node::on_persisted(uint64_t seq) {
  RAFT_INVARIANT(seq == sent_seq_ && persist_in_flight_,
                 "unexpected persisted seq " + std::to_string(seq));
  const bool hard_state_was_durable = hard_state_durable();
  persist_in_flight_ = false;
  durable_seq_ = seq;
  durable_last_index_ = inflight_last_index_;
  auto ready = [this](const deferred_send& d) { return d.required_seq <= durable_seq_; };
  for (auto& d : deferred_)
    if (ready(d))
      if (auto i = peers_.find(d.to); i != peers_.end())
        self_->send(i->second, std::move(d.message));
  deferred_.erase(std::remove_if(deferred_.begin(), deferred_.end(), ready), deferred_.end());
  auto actions = std::move(deferred_actions_);
  deferred_actions_.clear();
  for (auto& [required, action] : actions) {
    if (required <= durable_seq_)
      action();
    else
      deferred_actions_.emplace_back(required, std::move(action));
  }
  if (role_ == raft_role::candidate && self_vote_seq_ <= durable_seq_ &&
      votes_.count(config_.id) == 0) {
    record_vote(config_.id, true);
  } else if (role_ == raft_role::leader) {
    if (!hard_state_was_durable && hard_state_durable()) {
      // Elected on the others' votes while our own term was still on its way to disk: only
      // now may the term's first appends and heartbeats go out.
      broadcast_appends(false);
      send_heartbeats();
    }
    maybe_commit();
  }
}

void raft_node::send_after_durable(const std::string& to, caf::message message) {
  auto seq = required_seq();
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::ack_before_durable)
    seq = 0;
#endif
  if (seq <= durable_seq_) {
    if (auto i = peers_.find(to); i != peers_.end())
      self_->send(i->second, std::move(message));
    return;
  }
  deferred_.push_back(deferred_send{seq, to, std::move(message)});
}

void raft_node::send_vote_request(const std::string& to, const request_vote& request) {
  // The one message of a term that may leave before the term is durable: our own vote counts
  // only once durable, so if we crash first we come back in the older term having cast no vote
  // that anyone counted, and the votes granted to us stay durable with their voters. Waiting for
  // the disk here would only slow every election by one sync.
  if (auto i = peers_.find(to); i != peers_.end())
    self_->send(i->second, request);
}

template <class... Ts>
void raft_node::send_to(const std::string& to, Ts&&... xs) {
  if (!hard_state_durable()) {
    deferred_.push_back(
        deferred_send{hard_state_seq_, to, caf::make_message(std::forward<Ts>(xs)...)});
    return;
  }
  if (auto i = peers_.find(to); i != peers_.end())
    self_->send(i->second, std::forward<Ts>(xs)...);
}

// -- commit and apply
// ------------------------------------------------------------------------------

void raft_node::advance_commit(uint64_t index) {
  if (index <= commit_index_)
    return;
  RAFT_INVARIANT(index <= log_.last_index(), "commit beyond the log");
  commit_index_ = index;
  maybe_apply();
}

void raft_node::maybe_apply() {
  while (apply_sent_index_ < commit_index_) {
    apply_batch batch;
    batch.entries =
        log_.slice(apply_sent_index_ + 1, std::min<uint64_t>(config_.max_entries_per_apply,
                                                             commit_index_ - apply_sent_index_));
    apply_sent_index_ = batch.entries.back().index;
    self_->request(kv_, caf::infinite, std::move(batch))
        .then([this, epoch = apply_epoch_](applied_atom, uint64_t index) {
          if (epoch != apply_epoch_)
            return; // answer for the state machine a join reset discarded
          on_applied(index);
          finish_step();
        });
  }
}

void raft_node::on_applied(uint64_t index) {
  RAFT_INVARIANT(index <= commit_index_, "applied " + std::to_string(index) + " beyond commit " +
                                             std::to_string(commit_index_));
  applied_index_ = std::max(applied_index_, index);
  while (!pending_proposals_.empty() && pending_proposals_.begin()->first <= applied_index_) {
    auto node = pending_proposals_.extract(pending_proposals_.begin());
    propose_result result;
    result.index = node.key();
    result.term = node.mapped().term;
    result.leader_id = leader_id_;
    // Still leader of the proposal's term, so our log holds it at that index: it was applied.
    result.status = log_.term_at(node.key()) == node.mapped().term
                        ? propose_status::ok
                        : propose_status::leadership_lost;
    node.mapped().promise.deliver(result);
  }
  while (!follower_reads_.empty() && follower_reads_.begin()->first <= applied_index_) {
    auto node = follower_reads_.extract(follower_reads_.begin());
    node.mapped().promise.deliver(node.mapped().result);
  }
  confirm_reads();
}

// -- bookkeeping
// -----------------------------------------------------------------------------------

void raft_node::finish_step() {
  maybe_persist();
  check_invariants();
}

void raft_node::check_invariants() {
  RAFT_INVARIANT(term_ >= checked_term_, "term went back from " + std::to_string(checked_term_) +
                                             " to " + std::to_string(term_));
  if (term_ == checked_term_)
    RAFT_INVARIANT(checked_vote_.empty() || checked_vote_ == voted_for_,
                   "two votes in term " + std::to_string(term_) + ": " + checked_vote_ + " and " +
                       voted_for_);
  RAFT_INVARIANT(commit_index_ >= checked_commit_, "commit index went back");
  RAFT_INVARIANT(applied_index_ <= commit_index_, "applied beyond commit");
  RAFT_INVARIANT(commit_index_ <= log_.last_index(), "commit beyond the log");
  RAFT_INVARIANT(log_.last_term() <= term_, "log has an entry from a future term");
  RAFT_INVARIANT(durable_last_index_ <= log_.last_index(), "durable beyond the log");
  checked_term_ = term_;
  checked_vote_ = voted_for_;
  checked_commit_ = commit_index_;
}

void raft_node::log_event(const std::string& what) {
  if (config_.log_event)
    config_.log_event(config_.id + ": " + what);
}

raft_status raft_node::status() const {
  raft_status result;
  result.id = config_.id;
  result.role = role_;
  result.term = term_;
  result.leader_id = leader_id_;
  result.commit_index = commit_index_;
  result.applied_index = applied_index_;
  result.last_log_index = log_.last_index();
  for (const auto& [member, address] : members_)
    result.members.push_back(member);
  if (!leader_id_.empty()) {
    result.leader_http = leader_id_ == config_.id ? config_.http_address : leader_http_;
    if (auto i = members_.find(leader_id_); i != members_.end())
      result.leader_raft = i->second;
  }
  return result;
}

// -- spawning
// --------------------------------------------------------------------------------------

namespace {

// A free function with spawn arguments rather than a capturing lambda: CAF 0.17 dereferences a
// null argument tuple for argument-less spawns, which UBSan rightly reports.
caf::behavior raft_node_impl(raft_actor_type* self, raft_config config, recovered_state recovered,
                             caf::actor storage, caf::actor kv, uint64_t seed) {
  return self->state.start(std::move(config), std::move(recovered), std::move(storage),
                           std::move(kv), seed);
}

} // namespace

caf::actor spawn_raft_node(caf::actor_system& system, raft_config config, recovered_state recovered,
                           caf::actor storage, caf::actor kv, uint64_t seed) {
  return system.spawn(raft_node_impl, std::move(config), std::move(recovered), std::move(storage),
                      std::move(kv), seed);
}

raft_node& raft_node_of(const caf::actor& node) {
  auto* ptr = caf::actor_cast<caf::abstract_actor*>(node);
  return dynamic_cast<raft_actor_type&>(*ptr).state;
}

} // namespace infinity
