#include "actors/raft/core.hpp"

#include <algorithm>
#include <utility>

#include "actors/raft/invariants.hpp"

namespace infinity {

raft_core::raft_core(raft_config config, recovered_state recovered, uint64_t seed)
    : config_(std::move(config)) {
  RAFT_INVARIANT(config_.members.empty() ||
                     std::count(config_.members.begin(), config_.members.end(), config_.id) == 1,
                 "a bootstrap membership must name this node exactly once");
  RAFT_INVARIANT(config_.heartbeat_ticks >= 1 && config_.election_ticks > config_.heartbeat_ticks,
                 "heartbeats must be more frequent than election timeouts");
  RAFT_INVARIANT(config_.max_inflight_appends >= 1, "pipelining window must allow one append");
  rng_.seed(seed);
  // Ids of forwarded requests and join probes must not repeat across restarts: an answer to a
  // request of an earlier life of this node would otherwise resolve another request.
  next_forward_id_ = rng_() & ~(uint64_t{0xFFFF} << 48);
  next_probe_id_ = rng_();
  term_ = recovered.state.term;
  voted_for_ = recovered.state.voted_for;
  repair_until_ = recovered.state.repair_until_index;
  repair_term_ = recovered.state.repair_term;
  cluster_id_ = recovered.cluster_id;
  log_ = raft_log(std::move(recovered.entries), recovered.base.index + 1, recovered.base.term);
  // The state machine starts from the snapshot: everything it covers is committed and applied.
  snapshot_ = recovered.snapshot;
  RAFT_INVARIANT(snapshot_.index + 1 >= log_.first_index(),
                 "the log starts after " + std::to_string(log_.first_index() - 1) +
                     " but the snapshot ends at " + std::to_string(snapshot_.index));
  commit_index_ = snapshot_.index;
  applied_index_ = snapshot_.index;
  apply_sent_index_ = snapshot_.index;
  checked_commit_ = commit_index_;
  RAFT_INVARIANT(log_.last_term() <= term_, "recovered log has entries from a future term");
  pipeline_.set_durable_last_index(log_.last_index());
  refresh_membership();
  note_removed_before_restart();
  checked_term_ = term_;
  checked_vote_ = voted_for_;
  role_ = follower_role{};
  reset_election_timer();
  event("started as follower in term " + std::to_string(term_) + " with " +
        std::to_string(log_.last_index()) + " log entries" +
        (repair_until_ > 0 ? ", repairing lost entries up to " + std::to_string(repair_until_) +
                                 " (not voting until caught up)"
                           : std::string{}));
}

void raft_core::note_removed_before_restart() {
  // set_configuration marks a removal only when it sees this node leave; after a restart it sees
  // only the latest configuration, so look for an earlier one that had this node: the bootstrap
  // members, the snapshot's or a configuration entry in the log. (A snapshot taken after the
  // removal leaves no such evidence: the node then waits as a non-member, answering 503.)
  if (removed_at_ > 0 || membership_index_ == 0 ||
      configuration{members_, learners_}.contains(config_.id))
    return;
  if (std::count(config_.members.begin(), config_.members.end(), config_.id) > 0) {
    removed_at_ = membership_index_;
    event("removed from the cluster by the configuration at index " + std::to_string(removed_at_) +
          "; this node no longer serves");
    return;
  }
  // The log before the snapshot is gone: the snapshot's configuration is the earliest left.
  configuration in_snapshot;
  if (snapshot_.index > 0 && snapshot_.config_index < membership_index_ &&
      decode_configuration(snapshot_.config, in_snapshot) && in_snapshot.contains(config_.id)) {
    removed_at_ = membership_index_;
    event("removed from the cluster by the configuration at index " + std::to_string(removed_at_) +
          "; this node no longer serves");
    return;
  }
  for (auto index = log_.first_index(); index < membership_index_; ++index) {
    const auto& entry = log_.at(index);
    configuration earlier;
    if (entry.kind == entry_kind::config && decode_configuration(entry.data, earlier) &&
        earlier.contains(config_.id)) {
      removed_at_ = membership_index_;
      event("removed from the cluster by the configuration at index " +
            std::to_string(removed_at_) + "; this node no longer serves");
      return;
    }
  }
}

void raft_core::handle(peer_rpc rpc) {
  std::visit([this](auto& message) { handle(message); }, rpc);
}

raft_role raft_core::role() const {
  if (std::holds_alternative<leader_role>(role_))
    return raft_role::leader;
  if (auto* candidate = std::get_if<candidate_role>(&role_))
    return candidate->pre_vote ? raft_role::pre_candidate : raft_role::candidate;
  return raft_role::follower;
}

// -- connections and shutdown --------------------------------------------------------------------

void raft_core::peer_up(const std::string& id) {
  if (id == config_.id)
    return;
  connected_.insert(id);
  if (auto* leader = leader_state()) {
    if (leader->join && leader->join->id == id && !leader->join->probe_sent &&
        leader->join->step == leader_role::pending_join::phase::probing)
      send_join_probe(*leader);
    if (auto i = leader->progress.find(id); i != leader->progress.end()) {
      i->second.restart_probe();
      send_append(*leader, id, false);
    }
  }
  if (id == leader_id_)
    forward_handed_over();
  finish_step();
}

void raft_core::peer_down(const std::string& id) {
  connected_.erase(id);
  // A forwarded request whose connection dropped will never be answered.
  fail_forwarded_to(id);
  if (auto* leader = leader_state())
    if (auto i = leader->progress.find(id); i != leader->progress.end())
      i->second.restart_probe(); // whatever was in flight is lost with the connection
  finish_step();
}

void raft_core::stop() {
  if (auto* leader = leader_state())
    fail_leader_requests(*leader, reply_status::stopping);
  auto forwarded = std::move(forwarded_);
  forwarded_.clear();
  for (auto& [id, call] : forwarded) {
    auto reply = refusal();
    reply.status = reply_status::stopping;
    answer_call(call, reply);
  }
  for (auto id : follower_read_batch_) {
    auto reply = refusal();
    reply.status = reply_status::stopping;
    answer(request_origin{{}, id}, reply);
  }
  follower_read_batch_.clear();
  auto reads = std::move(follower_reads_);
  follower_reads_.clear();
  for (auto& [index, waiting] : reads) {
    waiting.reply.status = reply_status::stopping;
    out_.answers.push_back(std::move(waiting));
  }
}

ready raft_core::take_ready() {
  return std::exchange(out_, ready{});
}

// -- sending -------------------------------------------------------------------------------------

namespace {

void stamp(peer_rpc& rpc, const std::string& from, const std::string& cluster_id) {
  std::visit(
      [&](auto& message) {
        message.from = from;
        message.cluster_id = cluster_id;
      },
      rpc);
}

} // namespace

bool raft_core::hard_state_durable() const {
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::send_before_term_durable)
    return true;
#endif
  return pipeline_.durable(pipeline_.hard_state_seq());
}

void raft_core::send(const std::string& to, peer_rpc rpc) {
  stamp(rpc, config_.id, cluster_id_);
  if (!hard_state_durable()) {
    pipeline_.defer(pipeline_.hard_state_seq(), outbound_message{to, std::move(rpc)});
    return;
  }
  out_.messages.push_back(outbound_message{to, std::move(rpc)});
}

void raft_core::send_after_durable(const std::string& to, peer_rpc rpc) {
  stamp(rpc, config_.id, cluster_id_);
  auto seq = pipeline_.required_seq();
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::ack_before_durable)
    seq = 0;
#endif
  if (pipeline_.durable(seq)) {
    out_.messages.push_back(outbound_message{to, std::move(rpc)});
    return;
  }
  pipeline_.defer(seq, outbound_message{to, std::move(rpc)});
}

void raft_core::send_vote_request(const std::string& to, const request_vote& request) {
  // The one message of a term that may leave before the term is durable: our own vote counts
  // only once durable, so if we crash first we come back in the older term having cast no vote
  // that anyone counted, and the votes granted to us stay durable with their voters. Waiting for
  // the disk here would only slow every election by one sync.
  peer_rpc rpc{request};
  stamp(rpc, config_.id, cluster_id_);
  out_.messages.push_back(outbound_message{to, std::move(rpc)});
}

bool raft_core::same_cluster(const std::string& from, const std::string& cluster_id) {
  if (cluster_id.empty() || cluster_id_.empty() || cluster_id == cluster_id_)
    return true;
  violation(from, "message of cluster " + cluster_id + ", this node belongs to " + cluster_id_);
  return false;
}

// -- persistence ---------------------------------------------------------------------------------

void raft_core::queue_hard_state() {
  pipeline_.queue_hard_state(hard_state{term_, voted_for_, repair_until_, repair_term_});
}

void raft_core::queue_truncate(uint64_t from) {
  pipeline_.queue_truncate(from);
}

void raft_core::queue_append(const log_entry& entry) {
  pipeline_.queue_append(entry);
}

void raft_core::maybe_persist() {
  if (auto request = pipeline_.start(log_.last_index(), commit_index_))
    out_.persist = std::move(*request);
}

void raft_core::persisted(uint64_t seq) {
  const bool hard_state_was_durable = hard_state_durable();
  RAFT_INVARIANT(pipeline_.finish(seq), "unexpected persisted seq " + std::to_string(seq));
  for (auto& message : pipeline_.release())
    out_.messages.push_back(std::move(message));
  if (auto* candidate = candidate_state()) {
    if (!candidate->pre_vote && pipeline_.durable(candidate->self_vote_seq) &&
        candidate->votes.count(config_.id) == 0)
      record_vote(config_.id, true);
  } else if (auto* leader = leader_state()) {
    if (!hard_state_was_durable && hard_state_durable()) {
      // Elected on the others' votes while our own term was still on its way to disk: only
      // now may the term's first appends and heartbeats go out.
      broadcast_appends(*leader, false);
      send_heartbeats(*leader);
    }
    maybe_commit();
  }
  maybe_finish_repair();
  finish_step();
}

void raft_core::finish_step() {
  maybe_persist();
  check_invariants();
}

// -- events --------------------------------------------------------------------------------------

void raft_core::event(std::string what) {
  out_.events.push_back(config_.id + ": " + std::move(what));
}

void raft_core::violation(const std::string& from, std::string what) {
  auto text = "protocol violation from " + (from.empty() ? std::string{"?"} : from) + ": " + what +
              " (dropped)";
  protocol_violations_.push_back(text);
  event(std::move(text));
}

raft_status raft_core::status() const {
  raft_status result;
  result.id = config_.id;
  result.role = role();
  result.term = term_;
  result.leader_id = leader_id_;
  result.commit_index = commit_index_;
  result.applied_index = applied_index_;
  result.last_log_index = log_.last_index();
  result.leader_commit =
      std::max(commit_index_, std::holds_alternative<leader_role>(role_) ? 0 : leader_commit_hint_);
  result.log_entries =
      log_.last_index() >= log_.first_index() ? log_.last_index() - log_.first_index() + 1 : 0;
  result.snapshot_index = snapshot_.index;
  result.log_first_index = log_.first_index();
  result.appends_sent = counters_.appends_sent;
  result.entries_sent = counters_.entries_sent;
  result.read_rounds = counters_.read_rounds;
  result.reads_served = counters_.reads_served;
  for (const auto& [member, address] : members_)
    result.members.push_back(member);
  if (!leader_id_.empty()) {
    result.leader_http = leader_id_ == config_.id ? config_.http_address : leader_http_;
    if (auto i = members_.find(leader_id_); i != members_.end())
      result.leader_raft = i->second;
  }
  result.cluster_id = cluster_id_;
  result.repair_until_index = repair_until_;
  for (const auto& [member, address] : learners_)
    result.learners.push_back(member);
  for (const auto& [member, address] : configuration{members_, learners_}.everyone())
    result.addresses.emplace_back(member, address);
  result.removed = removed();
  result.removed_at_index = removed_at_;
  if (auto* leader = std::get_if<leader_role>(&role_)) {
    if (leader->transfer)
      result.transfer_target = leader->transfer->target;
    for (const auto& [peer, progress] : leader->progress) {
      member_progress p;
      p.id = peer;
      p.voter = members_.count(peer) > 0;
      p.match_index = progress.match_index();
      p.next_index = progress.next_index();
      p.lag = log_.last_index() - std::min(progress.match_index(), log_.last_index());
      p.last_contact_ms =
          uint64_t{progress.silent_ticks} * static_cast<uint64_t>(config_.tick_interval.count());
      p.state = progress.state() == follower_progress::mode::probe       ? "probe"
                : progress.state() == follower_progress::mode::replicate ? "replicate"
                                                                         : "snapshot";
      p.connected = connected_.count(peer) > 0;
      p.repairing = progress.repairing;
      result.progress.push_back(std::move(p));
    }
  }
  return result;
}

} // namespace infinity
