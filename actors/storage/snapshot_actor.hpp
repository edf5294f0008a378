// The snapshot actor: the only user of a node's `snapshot_store`.
//
// Protocol (`snapshot_actor` in protocols.hpp), every request answered:
//   (snapshot_write_atom, snapshot_job)            -> snapshot_info   the KV actor's frozen image,
//        serialized and made durable; `size` is then the file's. Older snapshots beyond the
//        retention are deleted (not one a transfer still reads).
//   (snapshot_read_atom, info, offset, length)     -> (bool ok, bytes) a chunk of the file for a
//        follower; !ok if that snapshot is gone (a newer one replaced it).
//   (snapshot_store_atom, info, offset, bytes, last) -> (next offset, complete, failed) a chunk
//        received from the leader, durable before the answer; a chunk at another offset than
//        the bytes held is refused with that offset, so the leader resumes there.
//   (snapshot_load_atom, info)                     -> restored_state_machine  a received
//        snapshot (verified when its last chunk arrived), parsed here, off the Raft and KV threads.
// Detached in production: file I/O and serialization never block the scheduler's workers.
// Failures are answered (never thrown at the caller): a failed write is retried by the KV actor
// at its next threshold, a failed receive starts the transfer over.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include "actors/kv/state_machine.hpp"
#include "actors/protocols.hpp"
#include "actors/storage/snapshot_store.hpp"
#include "actors/storage/storage_backend.hpp"

namespace infinity {

struct snapshot_actor_options {
  /// Finished snapshots kept on disk (the newest ones).
  std::size_t retain = 2;
  /// One line per snapshot written, received or discarded.
  std::function<void(const std::string&)> log;
  /// Run at a lower CPU priority than the node's other threads (set for detached actors).
  bool background = false;
};

snapshot_actor spawn_snapshot_actor(caf::actor_system& system,
                                    std::shared_ptr<snapshot_store> store,
                                    snapshot_actor_options options, bool detached);

/// What a node starts from.
struct startup_snapshot {
  /// The state machine restored from the newest valid snapshot; empty if there is none.
  std::optional<kv_state_machine> machine;
  /// Lines for the operator's log (snapshots skipped and why, what was loaded).
  std::vector<std::string> report;
};

/// Loads the newest intact snapshot that the recovered log can continue, into a state machine,
/// and sets `recovered.snapshot`. If the log ends before the snapshot it is reset to start after
/// it (through `storage`, durably), since the snapshot supersedes every entry up to its index.
/// Throws `std::runtime_error` with a clear message when the log starts after index 1 and no
/// intact snapshot covers the gap, or when a snapshot contradicts the log.
startup_snapshot load_startup_snapshot(snapshot_store& store, storage_backend& storage,
                                       recovered_state& recovered);

} // namespace infinity
