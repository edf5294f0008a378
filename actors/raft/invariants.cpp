#include "actors/raft/invariants.hpp"

#include "actors/raft/core.hpp"

namespace infinity {
namespace {

std::string& invariant_violation_slot() {
  static std::string slot;
  return slot;
}

} // namespace

namespace detail {

void invariant_failed(const std::string& node, const std::string& what) {
  auto text = "raft invariant violated on " + node + ": " + what;
  if (invariant_violation_slot().empty())
    invariant_violation_slot() = text;
  throw invariant_violation(text);
}

} // namespace detail

const std::string& first_invariant_violation() {
  return invariant_violation_slot();
}

void reset_invariant_violations() {
  invariant_violation_slot().clear();
}

void raft_core::check_invariants() {
  // Deltas since the previous step.
  RAFT_INVARIANT(term_ >= checked_term_, "term went back from " + std::to_string(checked_term_) +
                                             " to " + std::to_string(term_));
  if (term_ == checked_term_)
    RAFT_INVARIANT(checked_vote_.empty() || checked_vote_ == voted_for_,
                   "two votes in term " + std::to_string(term_) + ": " + checked_vote_ + " and " +
                       voted_for_);
  RAFT_INVARIANT(commit_index_ >= checked_commit_, "commit index went back");
  // The state itself.
  RAFT_INVARIANT(applied_index_ <= commit_index_, "applied beyond commit");
  RAFT_INVARIANT(apply_sent_index_ <= commit_index_, "applying beyond commit");
  RAFT_INVARIANT(commit_index_ <= log_.last_index(), "commit beyond the log");
  RAFT_INVARIANT(log_.last_term() <= term_, "log has an entry from a future term");
  RAFT_INVARIANT(pipeline_.durable_last_index() <= log_.last_index(), "durable beyond the log");
  if (auto* leader = std::get_if<leader_role>(&role_)) {
    RAFT_INVARIANT(leader_id_ == config_.id, "a leader that does not name itself");
    RAFT_INVARIANT(voted_for_ == config_.id, "a leader that did not vote for itself");
    RAFT_INVARIANT(leader->progress.count(config_.id) == 0, "a leader tracking itself");
    for (const auto& [peer, progress] : leader->progress)
      RAFT_INVARIANT(progress.match_index() <= log_.last_index(),
                     "match of " + peer + " beyond the leader's log");
  }
  checked_term_ = term_;
  checked_vote_ = voted_for_;
  checked_commit_ = commit_index_;
}

} // namespace infinity
