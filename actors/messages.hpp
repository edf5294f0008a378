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
/// Storage made a persist request durable: (persisted_atom, seq).
using persisted_atom = caf::atom_constant<caf::atom("persisted")>;
/// A client write: (propose_atom, encoded command) -> client_reply.
using propose_atom = caf::atom_constant<caf::atom("propose")>;
/// Linearizable read barrier: (read_atom) -> client_reply whose index is applied locally.
using read_atom = caf::atom_constant<caf::atom("readindex")>;
/// (status_atom) -> raft_status.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// To the Raft node: a peer became reachable, with its handle: (peer_up_atom, id, actor); or
/// unreachable: (peer_down_atom, id). To the peer connector: (peer_up_atom, id, "host:port")
/// connects to a node, (peer_down_atom, id) hangs up.
using peer_up_atom = caf::atom_constant<caf::atom("peerup")>;
using peer_down_atom = caf::atom_constant<caf::atom("peerdown")>;
/// (observer_atom, actor): where a Raft node sends its effects (connect, hang up).
using observer_atom = caf::atom_constant<caf::atom("observer")>;
/// Simulated storage: make everything written so far durable.
using sync_atom = caf::atom_constant<caf::atom("sync")>;
/// Storage actor to itself: (storage_idle_atom, requests seen when armed) ~10 ms after a
/// request, for deferred work once idle; (storage_maint_atom) for deferred work due anyway.
using storage_idle_atom = caf::atom_constant<caf::atom("stidle")>;
using storage_maint_atom = caf::atom_constant<caf::atom("stmaint")>;
/// Add a voter: (join_atom, id, raft_address) -> client_reply (ok once the node caught up as a
/// learner and its promotion to voter is committed and applied).
using join_atom = caf::atom_constant<caf::atom("join")>;
/// Remove a member: (remove_atom, id, force) -> client_reply (ok once committed and applied).
using remove_atom = caf::atom_constant<caf::atom("remove")>;
/// Hand leadership to a voter: (transfer_atom, id or "") -> client_reply.
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
/// Raft node -> KV actor: forget everything (only after a join reset of a node with no writes).
using kv_reset_atom = caf::atom_constant<caf::atom("kvreset")>;
/// Raft node -> KV actor: replace the state with one restored from a snapshot.
using kv_install_atom = caf::atom_constant<caf::atom("kvinstall")>;
/// Snapshot actor: write an image, read a chunk, store a received chunk, load a snapshot.
using snapshot_write_atom = caf::atom_constant<caf::atom("snapwrite")>;
using snapshot_read_atom = caf::atom_constant<caf::atom("snapread")>;
using snapshot_store_atom = caf::atom_constant<caf::atom("snapstore")>;
using snapshot_load_atom = caf::atom_constant<caf::atom("snapload")>;

// -- inspect
// ---------------------------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_entry& x) {
  return f(caf::meta::type_name("log_entry"), x.term, x.index, x.kind, x.data);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, client_reply& x) {
  return f(caf::meta::type_name("client_reply"), x.status, x.index, x.term, x.leader_id,
           x.leader_http, x.reason, x.payload);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_vote& x) {
  return f(caf::meta::type_name("request_vote"), x.from, x.cluster_id, x.term, x.last_log_index,
           x.last_log_term, x.pre_vote, x.transfer);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, vote_reply& x) {
  return f(caf::meta::type_name("vote_reply"), x.from, x.cluster_id, x.term, x.granted, x.pre_vote);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_entries& x) {
  return f(caf::meta::type_name("append_entries"), x.from, x.cluster_id, x.term, x.prev_log_index,
           x.prev_log_term, x.entries, x.leader_commit, x.round, x.leader_http, x.commit_hint);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_reply& x) {
  return f(caf::meta::type_name("append_reply"), x.from, x.cluster_id, x.term, x.success,
           x.prev_log_index, x.match_index, x.conflict_index, x.conflict_term, x.round,
           x.repairing);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, forward_request& x) {
  return f(caf::meta::type_name("forward_request"), x.from, x.cluster_id, x.request_id, x.op,
           x.command, x.member_id, x.member_address, x.force);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, forward_reply& x) {
  return f(caf::meta::type_name("forward_reply"), x.from, x.cluster_id, x.request_id, x.reply);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_probe& x) {
  return f(caf::meta::type_name("join_probe"), x.from, x.cluster_id, x.term, x.leader_address,
           x.probe_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_info& x) {
  return f(caf::meta::type_name("snapshot_info"), x.index, x.term, x.config, x.config_index,
           x.size);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, install_snapshot& x) {
  return f(caf::meta::type_name("install_snapshot"), x.from, x.cluster_id, x.term, x.leader_http,
           x.snapshot_index, x.snapshot_term, x.total_size, x.offset, x.data, x.last);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, install_snapshot_reply& x) {
  return f(caf::meta::type_name("install_snapshot_reply"), x.from, x.cluster_id, x.term,
           x.snapshot_index, x.next_offset, x.installed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, timeout_now& x) {
  return f(caf::meta::type_name("timeout_now"), x.from, x.cluster_id, x.term);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_progress& x) {
  return f(caf::meta::type_name("member_progress"), x.id, x.voter, x.match_index, x.next_index,
           x.lag, x.last_contact_ms, x.state, x.connected, x.repairing);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_probe_reply& x) {
  return f(caf::meta::type_name("join_probe_reply"), x.from, x.cluster_id, x.probe_id, x.accepted,
           x.reason);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_command& x) {
  return f(caf::meta::type_name("kv_command"), x.op, x.key, x.value, x.client_id, x.sequence);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hard_state& x) {
  return f(caf::meta::type_name("hard_state"), x.term, x.voted_for, x.repair_until_index,
           x.repair_term);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_base& x) {
  return f(caf::meta::type_name("log_base"), x.index, x.term);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, persist_request& x) {
  return f(caf::meta::type_name("persist_request"), x.seq, x.has_hard_state, x.state, x.has_reset,
           x.reset_to, x.truncate_from, x.entries, x.compact_through, x.commit_index, x.cluster_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, apply_batch& x) {
  return f(caf::meta::type_name("apply_batch"), x.entries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entry_result& x) {
  return f(caf::meta::type_name("entry_result"), x.index, x.payload);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, applied_batch& x) {
  return f(caf::meta::type_name("applied_batch"), x.last_applied, x.results, x.snapshot);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, raft_status& x) {
  return f(caf::meta::type_name("raft_status"), x.id, x.role, x.term, x.leader_id, x.commit_index,
           x.applied_index, x.last_log_index, x.members, x.leader_http, x.leader_raft, x.cluster_id,
           x.repair_until_index);
}

/// Registers every message type under its stable name; call on each actor_system_config.
void register_message_types(caf::actor_system_config& cfg);

} // namespace infinity
