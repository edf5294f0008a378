// The KV state machine actor: applies committed entries and serves local reads.
//
// Protocol (`kv_actor` in protocols.hpp):
//   apply_batch             -> applied_batch   entries must continue the applied prefix; applied
//                                              exactly once; one result per command entry
//   kv_reset_atom                              forget everything (a node joining another cluster)
//   (kv_get_atom, key)      -> (bool found, std::string value) from the local copy: only as
//                                              fresh as what was applied here
// The Raft node is its only writer; reads that must be linearizable first pass the Raft read
// barrier (read_atom) and only then ask this actor.
//
// Result payload of a command entry: "applied", "duplicate" (same client id and sequence as a
// command applied before) or "malformed" (undecodable, skipped on every replica alike).
#pragma once

#include <functional>

#include <caf/all.hpp>

#include "actors/kv/state_machine.hpp"
#include "actors/protocols.hpp"

namespace infinity {

/// Called after each applied entry (tests use it to check that replicas agree).
using apply_observer = std::function<void(const log_entry&, kv_state_machine::apply_effect)>;

const char* to_string(kv_state_machine::apply_effect effect);

kv_actor spawn_kv_actor(caf::actor_system& system, apply_observer observer = nullptr);

} // namespace infinity
