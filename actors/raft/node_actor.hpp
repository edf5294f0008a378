// The Raft node actor: a thin shell around the Raft core (core.hpp).
//
// Every message the actor receives becomes one input of the core; after each input the actor
// takes the core's `ready` and carries it out (ready.hpp): it sends the persist request to the
// storage actor and feeds the answer back (`persisted`), sends peer RPCs through the handles the
// peer connector (or the simulator) gave it, hands committed entries to the KV actor and feeds
// its results back (`applied`), answers the clients' response promises, and turns effects into
// messages to its observer (the peer connector: connect, hang up) and to the KV actor (reset).
// Nothing of Raft's rules lives here.
//
//   clock     -> `tick_atom` every `tick_interval` (delayed_send; simulated time under test)
//   network   -> peer handles from `(peer_up_atom, id, actor)`; RPCs are one-way messages
//   disk      -> storage_actor (`persist_request` -> `persisted_atom, seq`)
//   state     -> kv_actor (`apply_batch` -> `applied_batch`, which names its newest snapshot)
//   snapshots -> snapshot_actor (chunks to send and received, loading a received snapshot)
//   effects   -> the observer from `(observer_atom, actor)`
//   readers   -> local_read_view: whether this node was removed (after every input), and a
//                restored state machine before the KV actor installs it
//
// Client requests, timer, connection, observer and status messages are accepted only from
// actors of this process: a remote peer may send RPCs and nothing else. "From this process" is
// the sender's node, or no sender at all; the Raft port's transport (net/raft_transport.hpp)
// refuses the two BASP frames that could fake either from outside (anonymous messages, and
// routed messages, which name their own source node).
//
// With an authenticator (TLS on the Raft port), an RPC from another process counts only if the
// member id its connection authenticated as is the RPC's `from`; anything else is dropped and
// logged (the first, then every 1000th).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include "actors/kv/local_read_view.hpp"
#include "actors/protocols.hpp"
#include "actors/raft/core.hpp"
#include "actors/raft/raft_config.hpp"

namespace infinity {

/// One line per event (role change, term, leader, membership, protocol violations); called on
/// the actor's thread, and by the memory release's own thread: must be thread-safe. May be empty.
using raft_event_log = std::function<void(const std::string&)>;

/// The member id a remote node's connection authenticated as (nothing if none). Called on the
/// actor's thread; must be thread-safe.
using peer_authenticator = std::function<std::optional<std::string>(const caf::node_id&)>;

raft_node_actor spawn_raft_node(caf::actor_system& system, raft_config config,
                                recovered_state recovered, storage_actor storage, kv_actor kv,
                                snapshot_actor snapshots, uint64_t seed,
                                raft_event_log log = nullptr,
                                peer_authenticator authenticate = nullptr,
                                std::shared_ptr<local_read_view> view = nullptr);

/// The core of a live node actor (tests only; the caller must run on the actor's thread or
/// under the test coordinator).
raft_core& raft_core_of(const raft_node_actor& node);

} // namespace infinity
