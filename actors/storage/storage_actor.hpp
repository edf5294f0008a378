// The storage actor: owns a node's `storage_backend` and answers persist requests.
//
// Protocol: `persist_request` -> `(persisted_atom, seq)` once that request and all earlier ones
// are durable. Requests are handled in mailbox order. In production it runs detached (its own
// thread) so fdatasync never stalls the scheduler; the Raft actor keeps at most one request in
// flight and merges what arrives meanwhile, so many entries share one sync (group commit).
// In simulation, `sync_delay` returns how long the simulated disk takes to sync; until then the
// write is lost if the node crashes.
#pragma once

#include <functional>
#include <memory>

#include <caf/all.hpp>

#include "actors/protocols.hpp"
#include "actors/storage/storage_backend.hpp"
#include "net/metrics.hpp"

namespace infinity {

/// Returns the delay before a write becomes durable; null means "sync at once, inline".
using sync_delay_fn = std::function<caf::timespan(const persist_request&)>;

/// `metrics` (may be null) gets the sync latencies and bytes handed to storage.
storage_actor spawn_storage_actor(caf::actor_system& system,
                                  std::shared_ptr<storage_backend> backend,
                                  sync_delay_fn sync_delay, bool detached,
                                  std::shared_ptr<metrics::node_metrics> metrics = nullptr);

} // namespace infinity
