// The typed interfaces between the actors of a node. A changed message fails to compile here
// instead of failing at run time, and the test doubles (the simulator's link actor, the stub
// Raft node of the HTTP session test) implement the same types.
//
//   raft_peer_actor   what one Raft node sends another (one-way RPCs, net/ or a simulated link
//                     carries them)
//   raft_node_actor   the Raft node: peer RPCs, client requests, and its local seams (clock,
//                     connections, observer)
//   kv_actor          the state machine: committed entries in, results and local reads out
//   storage_actor     durability: persist requests in, "persisted up to seq" out
#pragma once

#include <memory>
#include <string>

#include <caf/all.hpp>

#include "actors/kv/state_machine.hpp"
#include "actors/messages.hpp"

namespace infinity {

using raft_peer_actor = caf::typed_actor<
    caf::reacts_to<request_vote>, caf::reacts_to<vote_reply>, caf::reacts_to<append_entries>,
    caf::reacts_to<append_reply>, caf::reacts_to<forward_request>, caf::reacts_to<forward_reply>,
    caf::reacts_to<join_probe>, caf::reacts_to<join_probe_reply>, caf::reacts_to<timeout_now>,
    caf::reacts_to<install_snapshot>, caf::reacts_to<install_snapshot_reply>>;

using raft_node_actor = raft_peer_actor::extend<
    // Clients (local only).
    caf::replies_to<propose_atom, std::string>::with<client_reply>,
    caf::replies_to<read_atom>::with<client_reply>,
    caf::replies_to<join_atom, std::string, std::string>::with<client_reply>,
    caf::replies_to<remove_atom, std::string, bool>::with<client_reply>,
    caf::replies_to<transfer_atom, std::string>::with<client_reply>,
    caf::replies_to<status_atom>::with<raft_status>,
    // Local seams (only from this process).
    caf::reacts_to<tick_atom>, caf::reacts_to<flush_atom>,
    caf::reacts_to<peer_up_atom, std::string, caf::actor>,
    caf::reacts_to<peer_down_atom, std::string>, caf::reacts_to<observer_atom, caf::actor>>;

/// A state machine restored from a snapshot file, handed from the snapshot actor (which
/// parsed it off the Raft and KV actors' threads) to the KV actor. Local only.
struct restored_state_machine {
  snapshot_info info;
  std::shared_ptr<kv_state_machine> machine;
};

/// A frozen image of the KV state machine to be written as a snapshot. Local only.
struct snapshot_job {
  snapshot_info info;
  std::shared_ptr<const kv_state_machine::image> image;
};

/// Snapshot files (detached: file I/O off the scheduler): writes images, reads chunks for
/// followers, stores chunks received from the leader, and loads received snapshots.
using snapshot_actor = caf::typed_actor<
    caf::replies_to<snapshot_write_atom, snapshot_job>::with<snapshot_info>,
    caf::replies_to<snapshot_read_atom, snapshot_info, uint64_t, uint64_t>::with<bool, std::string,
                                                                                 snapshot_info>,
    caf::replies_to<snapshot_store_atom, snapshot_info, uint64_t, std::string,
                    bool>::with<uint64_t, bool, bool>,
    caf::replies_to<snapshot_load_atom, snapshot_info>::with<restored_state_machine>>;

using kv_actor = caf::typed_actor<caf::replies_to<apply_batch>::with<applied_batch>,
                                  caf::reacts_to<kv_reset_atom>,
                                  caf::reacts_to<kv_install_atom, restored_state_machine>>;

using storage_actor =
    caf::typed_actor<caf::replies_to<persist_request>::with<persisted_atom, uint64_t>,
                     caf::reacts_to<sync_atom>, caf::reacts_to<storage_idle_atom, uint64_t>,
                     caf::reacts_to<storage_maint_atom>, caf::reacts_to<storage_maint_atom, bool>>;

} // namespace infinity

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(infinity::restored_state_machine)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(infinity::snapshot_job)
