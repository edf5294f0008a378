// Terms, votes and role changes (Raft §5.1-5.2, §5.4.1; thesis §9.6 pre-vote and §6.2
// check-quorum). become_follower, become_pre_candidate, become_candidate and become_leader are
// the only places that change the role.
#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {
namespace {

vote_reply make_vote_reply(uint64_t term, bool granted, bool pre_vote) {
  vote_reply reply;
  reply.term = term;
  reply.granted = granted;
  reply.pre_vote = pre_vote;
  return reply;
}

} // namespace

bool raft_core::in_lease() const {
  return config_.check_quorum && !leader_id_.empty() && election_elapsed_ < config_.election_ticks;
}

void raft_core::reset_election_timer() {
  election_elapsed_ = 0;
  randomized_election_ticks_ =
      config_.election_ticks + static_cast<uint32_t>(rng_() % config_.election_ticks);
}

bool raft_core::accept_term(uint64_t message_term, message_kind kind, const std::string& from) {
  if (message_term > term_) {
    bool is_vote_request =
        kind == message_kind::vote_request || kind == message_kind::pre_vote_request;
    // A node that heard from a live leader recently refuses to help depose it (thesis §9.6),
    // unless that leader handed its leadership over (thesis §3.10).
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
      reply.term = term_;
      reply.repairing = repair_until_ > 0;
      send(from, reply);
    } else if (kind == message_kind::pre_vote_request) {
      send(from, make_vote_reply(term_, false, true));
    }
    return false;
  }
  return true;
}

// -- role changes
// ----------------------------------------------------------------------------------

void raft_core::become_follower(uint64_t term, const std::string& leader) {
  RAFT_INVARIANT(term >= term_, "term " + std::to_string(term) + " < " + std::to_string(term_));
  if (term > term_) {
    term_ = term;
    voted_for_.clear();
    queue_hard_state();
  }
  if (auto* previous = leader_state()) {
    leader_role ended = std::move(*previous);
    role_ = follower_role{};
    if (ended.transfer) {
      // Handed over: what waited goes to the new leader once it is known.
      auto& transfer = *ended.transfer;
      client_reply done;
      done.term = term;
      done.leader_id = transfer.target;
      done.reason = "leadership handed to " + transfer.target;
      if (transfer.then_remove_self && transfer.origin.local()) {
        handover_.push_back(handed_over{transfer.origin.request_id,
                                        forwarded_op::remove,
                                        {},
                                        config_.id,
                                        transfer.force,
                                        config_.ticks_for(config_.forward_timeout),
                                        {}});
      } else if (transfer.then_remove_self) {
        done.status = reply_status::not_leader;
        answer(transfer.origin, std::move(done));
      } else {
        answer(transfer.origin, std::move(done));
      }
      for (auto& [origin, command] : ended.paused) {
        if (origin.local())
          handover_.push_back(handed_over{origin.request_id,
                                          forwarded_op::write,
                                          std::move(command),
                                          {},
                                          false,
                                          config_.ticks_for(config_.forward_timeout),
                                          {}});
        else
          answer(origin, refusal()); // nothing was appended: the forwarder's client retries
      }
      ended.paused.clear();
      ended.transfer.reset();
    }
    fail_leader_requests(ended, reply_status::leadership_lost);
  }
  role_ = follower_role{};
  leader_id_ = leader;
  reset_election_timer();
  event("follower in term " + std::to_string(term_) +
        (leader.empty() ? std::string{", leader unknown"} : ", leader " + leader));
}

void raft_core::become_pre_candidate() {
  RAFT_INVARIANT(!leader_state(), "a leader does not campaign");
  candidate_role campaign;
  campaign.pre_vote = true;
  role_ = std::move(campaign);
  leader_id_.clear();
  reset_election_timer();
  event("pre-candidate for term " + std::to_string(term_ + 1));
  request_vote request;
  request.term = term_ + 1;
  request.last_log_index = log_.last_index();
  request.last_log_term = log_.last_term();
  request.pre_vote = true;
  for (const auto& [member, address] : members_)
    if (member != config_.id)
      send_vote_request(member, request);
  record_vote(config_.id, true);
}

void raft_core::become_candidate(bool transfer) {
  RAFT_INVARIANT(!leader_state(), "a leader does not campaign");
  term_ += 1;
  voted_for_ = config_.id;
  queue_hard_state();
  candidate_role campaign;
  // Our own vote counts only once it is durable: a crash must not let us vote twice in a term.
  campaign.self_vote_seq = pipeline_.required_seq();
  role_ = std::move(campaign);
  leader_id_.clear();
  reset_election_timer();
  event("candidate in term " + std::to_string(term_));
  request_vote request;
  request.term = term_;
  request.last_log_index = log_.last_index();
  request.last_log_term = log_.last_term();
  request.transfer = transfer;
  for (const auto& [member, address] : members_)
    if (member != config_.id)
      send_vote_request(member, request);
  if (pipeline_.durable(candidate_state()->self_vote_seq))
    record_vote(config_.id, true);
}

void raft_core::become_leader() {
  RAFT_INVARIANT(role() == raft_role::candidate, "only a candidate becomes leader");
  leader_role leading;
  // Learners catch up and departed members learn that they left from this leader too.
  for (const auto& [member, address] : configuration{members_, learners_}.everyone())
    if (member != config_.id)
      leading.progress.emplace(member, follower_progress{log_.last_index() + 1});
  for (const auto& [member, departure] : departed_)
    leading.progress.emplace(member, follower_progress{log_.last_index() + 1});
  role_ = std::move(leading);
  leader_id_ = config_.id;
  election_elapsed_ = 0;
  event("leader in term " + std::to_string(term_));
  auto& leader = *leader_state();
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
  broadcast_appends(leader, false);
  maybe_commit(); // a single-node cluster commits on its own durable copy
  forward_handed_over();
}

// -- votes
// -----------------------------------------------------------------------------------------

void raft_core::handle(const request_vote& request) {
  if (!same_cluster(request.from, request.cluster_id))
    return;
  auto kind = request.pre_vote ? message_kind::pre_vote_request : message_kind::vote_request;
  // A transfer's vote request may depose the leader that asked for it, lease or not.
  if (request.transfer && request.term > term_ && !request.pre_vote) {
    kind = message_kind::other;
    handover_ticks_ = config_.election_ticks; // requests wait for the new leader meanwhile
  }
  if (!accept_term(request.term, kind, request.from)) {
    finish_step();
    return;
  }
  bool can_vote = voted_for_ == request.from || (voted_for_.empty() && leader_id_.empty()) ||
                  (request.pre_vote && request.term > term_);
  bool up_to_date =
      request.last_log_term > log_.last_term() ||
      (request.last_log_term == log_.last_term() && request.last_log_index >= log_.last_index());
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::vote_ignores_log)
    up_to_date = true;
#endif
  // A node that lost entries it may have acknowledged could elect a leader without them.
  if (!can_vote || !up_to_date || !may_vote_for(request.last_log_term, request.last_log_index)) {
    send(request.from, make_vote_reply(term_, false, request.pre_vote));
  } else if (request.pre_vote) {
    send(request.from, make_vote_reply(request.term, true, true));
  } else {
    RAFT_INVARIANT(request.term == term_, "a vote is granted only in the current term");
    election_elapsed_ = 0;
    voted_for_ = request.from;
    queue_hard_state();
    send_after_durable(request.from, make_vote_reply(term_, true, false));
  }
  finish_step();
}

void raft_core::handle(const vote_reply& reply) {
  if (!same_cluster(reply.from, reply.cluster_id))
    return;
  auto kind = reply.pre_vote && reply.granted ? message_kind::pre_vote_reply_granted
                                              : message_kind::vote_reply;
  if (accept_term(reply.term, kind, reply.from)) {
    if (auto* campaign = candidate_state()) {
      if (campaign->pre_vote && reply.pre_vote) {
        // A granted pre-vote of an older round names an older hypothetical term.
        if (!reply.granted || reply.term == term_ + 1)
          record_vote(reply.from, reply.granted);
      } else if (!campaign->pre_vote && !reply.pre_vote && reply.term == term_) {
        record_vote(reply.from, reply.granted);
      }
    }
  }
  finish_step();
}

void raft_core::record_vote(const std::string& voter, bool granted) {
  if (members_.count(voter) == 0)
    return; // only voters of the membership in effect count
  candidate_state()->votes.emplace(voter, granted);
  tally_votes();
}

void raft_core::tally_votes() {
  auto* campaign = candidate_state();
  size_t granted = 0;
  size_t rejected = 0;
  for (const auto& [voter, vote] : campaign->votes)
    ++(vote ? granted : rejected);
  if (granted >= quorum()) {
    if (campaign->pre_vote)
      become_candidate();
    else
      become_leader();
  } else if (rejected >= quorum()) {
    become_follower(term_, std::string{});
  }
}

void raft_core::tick_election() {
  // Only healthy voters campaign: a node waiting to be added (or removed), or repairing lost
  // entries, just follows.
  if (election_elapsed_ < randomized_election_ticks_ || members_.count(config_.id) == 0 ||
      !may_campaign())
    return;
  if (config_.pre_vote)
    become_pre_candidate();
  else
    become_candidate();
}

void raft_core::tick() {
  ++election_elapsed_;
  if (handover_ticks_ > 0)
    --handover_ticks_;
  tick_forwarded();
  tick_departed();
  if (auto* leader = leader_state())
    tick_leader(*leader);
  else
    tick_election();
  finish_step();
}

} // namespace infinity
