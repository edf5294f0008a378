// CAF side of the message types in `types.hpp`: atoms, `inspect` overloads and registration.
//
// Every type is registered under a stable name in `register_message_types` so that nodes of one
// cluster (separate processes) agree on the wire format. Renaming a registered type breaks
// compatibility between versions.
#pragma once

#include <caf/all.hpp>

#include "actors/types.hpp"

namespace infinity {

// -- atoms (CAF 0.17: at most 10 characters)
// -------------------------------------------------------

/// Periodic clock input of a Raft node; everything time-based counts these.
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// Sent by a Raft node to itself so proposals queued in its mailbox go out as one batch.
using flush_atom = caf::atom_constant<caf::atom("flush")>;
/// Storage made a persist request durable.
using persisted_atom = caf::atom_constant<caf::atom("persisted")>;
/// The KV state machine applied everything up to an index.
using applied_atom = caf::atom_constant<caf::atom("applied")>;
/// Client proposal of a command: (propose_atom, kv_command) -> propose_result.
using propose_atom = caf::atom_constant<caf::atom("propose")>;
/// Linearizable read barrier: (read_atom) -> propose_result whose index is applied locally.
using read_atom = caf::atom_constant<caf::atom("readindex")>;
/// (status_atom) -> raft_status.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// A peer became reachable, with its handle: (peer_up_atom, id, actor); or unreachable.
using peer_up_atom = caf::atom_constant<caf::atom("peerup")>;
using peer_down_atom = caf::atom_constant<caf::atom("peerdown")>;
/// Simulated storage: make everything written so far durable.
using sync_atom = caf::atom_constant<caf::atom("sync")>;
/// Storage actor to itself: (storage_idle_atom, requests seen when armed) ~10 ms after a
/// request, for deferred work once idle; (storage_maint_atom) for deferred work due anyway.
using storage_idle_atom = caf::atom_constant<caf::atom("stidle")>;
using storage_maint_atom = caf::atom_constant<caf::atom("stmaint")>;
/// Add a voter: (join_atom, id, raft_address) -> propose_result (ok once the new membership is
/// committed and applied); forwarded between nodes as (join_atom, id, raft_address, true).
using join_atom = caf::atom_constant<caf::atom("join")>;
/// Leader -> joining node: (join_reset_atom, leader_id, leader_term, leader_raft_address) ->
/// (bool accepted, reason). The node drops its lone bootstrap state unless it holds user writes,
/// and connects back to the leader so its answers reach it.
using join_reset_atom = caf::atom_constant<caf::atom("joinreset")>;
/// Raft node -> KV actor: forget everything (only after a join reset of a node with no writes).
using kv_reset_atom = caf::atom_constant<caf::atom("kvreset")>;
/// KV state machine, local copy: (kv_get_atom, key) -> (bool found, std::string value).
using kv_get_atom = caf::atom_constant<caf::atom("kvget")>;

// -- inspect
// ---------------------------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_entry& x) {
  return f(caf::meta::type_name("log_entry"), x.term, x.index, x.kind, x.data);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_vote& x) {
  return f(caf::meta::type_name("request_vote"), x.from, x.term, x.last_log_index, x.last_log_term,
           x.pre_vote);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, vote_reply& x) {
  return f(caf::meta::type_name("vote_reply"), x.from, x.term, x.granted, x.pre_vote);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_entries& x) {
  return f(caf::meta::type_name("append_entries"), x.from, x.term, x.prev_log_index,
           x.prev_log_term, x.entries, x.leader_commit, x.round, x.leader_http);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_reply& x) {
  return f(caf::meta::type_name("append_reply"), x.from, x.term, x.success, x.prev_log_index,
           x.match_index, x.conflict_index, x.conflict_term, x.round);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_command& x) {
  return f(caf::meta::type_name("kv_command"), x.op, x.key, x.value, x.client_id, x.sequence);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, propose_result& x) {
  return f(caf::meta::type_name("propose_result"), x.status, x.index, x.term, x.leader_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hard_state& x) {
  return f(caf::meta::type_name("hard_state"), x.term, x.voted_for, x.repair_until_index);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, persist_request& x) {
  return f(caf::meta::type_name("persist_request"), x.seq, x.has_hard_state, x.state,
           x.truncate_from, x.entries, x.commit_index, x.cluster_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, apply_batch& x) {
  return f(caf::meta::type_name("apply_batch"), x.entries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, raft_status& x) {
  return f(caf::meta::type_name("raft_status"), x.id, x.role, x.term, x.leader_id, x.commit_index,
           x.applied_index, x.last_log_index, x.members, x.leader_http, x.leader_raft);
}

/// Registers every message type under its stable name; call on each actor_system_config.
void register_message_types(caf::actor_system_config& cfg);

} // namespace infinity
