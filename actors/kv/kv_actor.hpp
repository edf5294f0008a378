// The KV state machine actor: applies committed entries and publishes the result to readers.
//
// Protocol (`kv_actor` in protocols.hpp):
//   apply_batch             -> applied_batch   entries must continue the applied prefix; applied
//                                              exactly once; one result per command entry
//   kv_reset_atom                              forget everything (a node joining another cluster)
//   (kv_install_atom, restored_state_machine)  replace the state with one restored from a
//                                              snapshot the leader sent
// Reads take no message: sessions (and the simulator's clients) read through `local_read_view`
// (local_read_view.hpp), which this actor keeps pointing at its current state machine. The Raft
// node is its only writer; reads that must be linearizable first pass the Raft read barrier
// (read_atom), which answers once this actor has applied the read index.
//
// Snapshots: once the entries (or their bytes) applied since the last snapshot pass the policy's
// threshold, the actor freezes an image (a copy of shard pointers, not of the data) and hands it
// to the snapshot actor, which serializes it on its own thread while writes go on; the next
// `applied_batch` after it is durable tells Raft, which then compacts its log.
//
// Result payload of a command entry: "applied", "duplicate" (same client id and sequence as a
// command applied before) or "malformed" (undecodable, skipped on every replica alike).
#pragma once

#include <functional>
#include <optional>

#include <caf/all.hpp>

#include "actors/kv/local_read_view.hpp"
#include "actors/kv/state_machine.hpp"
#include "actors/protocols.hpp"

namespace infinity {

/// Called after each applied entry (tests use it to check that replicas agree).
using apply_observer = std::function<void(const log_entry&, kv_state_machine::apply_effect)>;

const char* to_string(kv_state_machine::apply_effect effect);

/// When the KV actor snapshots itself (`every_entries` or `every_bytes` since the last
/// snapshot, whichever comes first; 0 = that threshold is off).
struct kv_snapshot_policy {
  /// Null: snapshots are off.
  snapshot_actor snapshots;
  uint64_t every_entries = 0;
  uint64_t every_bytes = 0;
};

/// `initial`: the state restored from the newest snapshot at startup (with its info), if any.
/// `view`: where the actor publishes its state machine for readers on other threads (may be null).
kv_actor spawn_kv_actor(caf::actor_system& system, apply_observer observer = nullptr,
                        kv_snapshot_policy policy = {},
                        std::optional<restored_state_machine> initial = std::nullopt,
                        std::shared_ptr<local_read_view> view = nullptr);

} // namespace infinity
