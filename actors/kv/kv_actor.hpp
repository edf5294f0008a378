// The KV state machine actor: applies committed entries and serves local reads.
//
// Protocol:
//   apply_batch                 -> (applied_atom, last_applied)   entries must continue the applied
//                                                                 prefix; applied exactly once
//   (kv_get_atom, key)          -> (bool found, std::string value) from the local copy: only as
//                                                                 fresh as what was applied here
// The Raft node is its only writer; reads that must be linearizable first pass the Raft read
// barrier (read_atom) and only then ask this actor.
#pragma once

#include <functional>

#include <caf/all.hpp>

#include "actors/kv/state_machine.hpp"

namespace infinity {

/// Called after each applied entry (tests use it to check that replicas agree).
using apply_observer = std::function<void(const log_entry&, kv_state_machine::apply_effect)>;

struct kv_actor_state {
  kv_state_machine machine;
  apply_observer observer;
  static inline const char* name = "kv_state_machine";
};

using kv_actor_type = caf::stateful_actor<kv_actor_state>;

caf::actor spawn_kv_actor(caf::actor_system& system, apply_observer observer = nullptr);

} // namespace infinity
