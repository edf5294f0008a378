// Snapshots (Raft §7): the state machine snapshots itself and tells Raft, which then compacts
// its log (keeping a tail for followers that are only a little behind); a follower whose next
// entry was compacted away receives the leader's snapshot in chunks, one in flight at a time,
// resuming from what it acknowledged after a lost chunk; once stored, verified and loaded into
// its state machine, its log continues after the snapshot.
#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/invariants.hpp"

namespace infinity {

void raft_core::snapshot_taken(const snapshot_info& snapshot) {
  note_snapshot(snapshot);
  finish_step();
}

void raft_core::note_snapshot(const snapshot_info& snapshot) {
  if (snapshot.index <= snapshot_.index)
    return;
  RAFT_INVARIANT(snapshot.index <= commit_index_,
                 "a snapshot at " + std::to_string(snapshot.index) + " beyond commit " +
                     std::to_string(commit_index_));
  snapshot_ = snapshot;
  auto through = snapshot.index > config_.snapshot_keep_tail
                     ? snapshot.index - config_.snapshot_keep_tail
                     : uint64_t{0};
  through = std::min(through, log_.last_index());
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::compact_past_snapshot)
    through = log_.last_index();
#endif
  if (through >= log_.first_index()) {
    log_.compact_through(through);
    pipeline_.queue_compact(through);
  }
}

// -- leader
// ----------------------------------------------------------------------------------------

void raft_core::send_snapshot(leader_role& leader, const std::string& peer) {
  auto& progress = leader.progress.at(peer);
  if (progress.state() != follower_progress::mode::snapshot ||
      progress.snapshot_index() != snapshot_.index) {
    if (snapshot_.index == 0 || snapshot_.index + 1 < log_.first_index())
      return; // nothing covers the gap (cannot happen: compaction follows a snapshot)
    event("sending snapshot at " + std::to_string(snapshot_.index) + " to " + peer);
    progress.start_snapshot(snapshot_.index);
  }
  if (progress.chunk_in_flight())
    return;
  progress.chunk_requested();
  raft_effect read;
  read.what = raft_effect::kind::read_snapshot_chunk;
  read.id = peer;
  read.snapshot = snapshot_;
  read.offset = progress.snapshot_offset();
  read.length = config_.snapshot_chunk_bytes;
  out_.effects.push_back(std::move(read));
}

void raft_core::snapshot_chunk_read(const std::string& peer, const snapshot_info& snapshot,
                                    uint64_t offset, std::string data, bool failed) {
  auto* leader = leader_state();
  if (leader == nullptr) {
    finish_step();
    return;
  }
  auto i = leader->progress.find(peer);
  if (i == leader->progress.end() || i->second.state() != follower_progress::mode::snapshot ||
      i->second.snapshot_index() != snapshot.index || i->second.snapshot_offset() != offset) {
    finish_step();
    return;
  }
  if (failed) {
    // Gone (a newer snapshot replaced it): start over with the one we have now, at the next
    // heartbeat (not at once: a read failing again must not spin without time passing).
    i->second.restart_probe();
    event("snapshot " + std::to_string(snapshot.index) + " for " + peer +
          " is gone; starting over");
    finish_step();
    return;
  }
  install_snapshot request;
  request.term = term_;
  request.leader_http = config_.http_address;
  request.snapshot_index = snapshot.index;
  request.snapshot_term = snapshot.term;
  request.total_size = snapshot.size;
  request.offset = offset;
  request.last = offset + data.size() >= snapshot.size;
  request.data = std::move(data);
  send(peer, std::move(request));
  finish_step();
}

void raft_core::handle(const install_snapshot_reply& reply) {
  if (!same_cluster(reply.from, reply.cluster_id))
    return;
  if (!accept_term(reply.term, message_kind::append_reply, reply.from)) {
    finish_step();
    return;
  }
  auto* leader = leader_state();
  auto i =
      leader == nullptr ? decltype(leader->progress.end()){} : leader->progress.find(reply.from);
  if (leader == nullptr || reply.term != term_ || i == leader->progress.end()) {
    finish_step();
    return;
  }
  auto& progress = i->second;
  progress.recently_active = true;
  progress.silent_ticks = 0;
  if (reply.snapshot_index > log_.last_index()) {
    violation(reply.from, "install reply for a snapshot beyond the leader's log");
    finish_step();
    return;
  }
  if (reply.installed) {
    // Its log now continues after the snapshot: replicate from there.
    progress.accepted(reply.snapshot_index);
    event("follower " + reply.from + " installed snapshot " + std::to_string(reply.snapshot_index));
    maybe_commit();
    if ((leader = leader_state()) != nullptr)
      fill_pipeline(*leader, reply.from);
  } else if (progress.state() == follower_progress::mode::snapshot &&
             progress.snapshot_index() == reply.snapshot_index) {
    progress.ticks_since_ack = 0;
    progress.snapshot_acknowledged(reply.next_offset);
    send_snapshot(*leader, reply.from);
  }
  finish_step();
}

// -- follower
// --------------------------------------------------------------------------------------

void raft_core::handle(const install_snapshot& request) {
  if (!same_cluster(request.from, request.cluster_id))
    return;
  if (!accept_term(request.term, message_kind::append, request.from)) {
    finish_step();
    return;
  }
  if (leader_state()) {
    violation(request.from,
              "snapshot in term " + std::to_string(term_) + ", which this node leads");
    finish_step();
    return;
  }
  if (candidate_state())
    become_follower(term_, request.from);
  if (!leader_id_.empty() && leader_id_ != request.from) {
    violation(request.from,
              "snapshot in term " + std::to_string(term_) + ", which " + leader_id_ + " leads");
    finish_step();
    return;
  }
  if (request.snapshot_index == 0 || request.snapshot_term == 0 ||
      request.snapshot_term > request.term || request.offset > request.total_size ||
      request.data.size() > request.total_size - request.offset) {
    violation(request.from, "malformed snapshot chunk");
    finish_step();
    return;
  }
  if (leader_id_.empty()) {
    leader_id_ = request.from;
    event("leader is " + leader_id_ + " in term " + std::to_string(term_));
  }
  election_elapsed_ = 0;
  leader_http_ = request.leader_http;
  if (request.snapshot_index <= commit_index_) {
    // We hold everything it covers already.
    install_snapshot_reply reply;
    reply.term = term_;
    reply.snapshot_index = request.snapshot_index;
    reply.next_offset = request.total_size;
    reply.installed = true;
    send_after_durable(request.from, std::move(reply));
    finish_step();
    return;
  }
  if (receiving_ &&
      (receiving_->index != request.snapshot_index || receiving_->term != request.snapshot_term)) {
    if (restoring_) {
      finish_step(); // busy loading the previous one; the leader retries
      return;
    }
    event("snapshot " + std::to_string(receiving_->index) + " superseded by " +
          std::to_string(request.snapshot_index));
  }
  if (!receiving_ || receiving_->index != request.snapshot_index) {
    snapshot_info incoming;
    incoming.index = request.snapshot_index;
    incoming.term = request.snapshot_term;
    incoming.size = request.total_size;
    receiving_ = incoming;
    restoring_ = false;
    event("receiving snapshot " + std::to_string(incoming.index) + " (" +
          std::to_string(incoming.size) + " bytes) from " + request.from);
  }
  if (restoring_) {
    finish_step();
    return;
  }
  raft_effect store;
  store.what = raft_effect::kind::store_snapshot_chunk;
  store.snapshot = *receiving_;
  store.offset = request.offset;
  store.data = request.data;
  store.last = request.last;
  out_.effects.push_back(std::move(store));
  finish_step();
}

void raft_core::snapshot_chunk_stored(const snapshot_info& snapshot, uint64_t next_offset,
                                      bool complete, bool failed) {
  if (!receiving_ || receiving_->index != snapshot.index || restoring_) {
    finish_step();
    return;
  }
  if (complete && !failed) {
    restoring_ = true;
    raft_effect restore;
    restore.what = raft_effect::kind::restore_state_machine;
    restore.snapshot = *receiving_;
    out_.effects.push_back(std::move(restore));
    finish_step();
    return;
  }
  if (failed)
    receiving_.reset();
  if (!leader_id_.empty()) {
    install_snapshot_reply reply;
    reply.term = term_;
    reply.snapshot_index = snapshot.index;
    reply.next_offset = failed ? 0 : next_offset;
    send(leader_id_, std::move(reply));
  }
  finish_step();
}

void raft_core::state_machine_restore_failed(const snapshot_info& snapshot) {
  if (!receiving_ || receiving_->index != snapshot.index || !restoring_) {
    finish_step();
    return;
  }
  receiving_.reset();
  restoring_ = false;
  event("snapshot " + std::to_string(snapshot.index) + " could not be loaded; asking for it again");
  if (!leader_id_.empty()) {
    install_snapshot_reply reply;
    reply.term = term_;
    reply.snapshot_index = snapshot.index;
    reply.next_offset = 0;
    send(leader_id_, std::move(reply));
  }
  finish_step();
}

void raft_core::state_machine_restored(const snapshot_info& snapshot) {
  if (!receiving_ || receiving_->index != snapshot.index || !restoring_) {
    finish_step();
    return;
  }
  receiving_.reset();
  restoring_ = false;
  // Raft §7: keep the entries after the snapshot if our log holds its last entry, else
  // discard the whole log.
  bool keep_tail =
      log_.has_term_at(snapshot.index) && log_.term_at(snapshot.index) == snapshot.term;
#ifdef INFINITYSTORE_TESTING
  if (config_.broken == raft_config::mutation::install_keeps_conflicting_log)
    keep_tail = log_.has_term_at(snapshot.index);
#endif
  if (keep_tail && snapshot.index >= log_.first_index()) {
    log_.compact_through(snapshot.index);
    pipeline_.queue_compact(snapshot.index);
  } else {
    log_.reset_to(snapshot.index, snapshot.term);
    pipeline_.queue_reset(log_base{snapshot.index, snapshot.term});
  }
  snapshot_ = snapshot;
  commit_index_ = std::max(commit_index_, snapshot.index);
  applied_index_ = snapshot.index;
  apply_sent_index_ = snapshot.index;
  ++apply_epoch_; // answers to batches applied to the state machine it replaced
  refresh_membership();
  event("installed snapshot " + std::to_string(snapshot.index) + " (term " +
        std::to_string(snapshot.term) + ")");
  if (!leader_id_.empty()) {
    install_snapshot_reply reply;
    reply.term = term_;
    reply.snapshot_index = snapshot.index;
    reply.next_offset = snapshot.size;
    reply.installed = true;
    send_after_durable(leader_id_, std::move(reply));
  }
  maybe_apply();
  maybe_finish_repair();
  finish_step();
}

} // namespace infinity
