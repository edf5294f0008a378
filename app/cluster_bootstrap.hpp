// How a node with an empty data directory becomes part of a cluster, and how it asks to join.
//
// Three ways to start (etcd-like):
//   --initial-cluster id=raft,...  every listed node writes the same membership entry at index 1,
//                                  so their logs agree from the start (static bootstrap);
//   neither option                 a one-node cluster of its own, serving at once (the original
//                                  InfinityStore flow: start alone, then POST /join on a leader);
//   --join HOST:PORT               an empty log and no membership: the node waits for a leader to
//                                  add it, after asking a member (HTTP) to do so.
// A data directory that already holds state is used as it is; the options above are ignored.
#pragma once

#include <string>

#include "actors/raft/membership.hpp"
#include "actors/storage/storage_backend.hpp"
#include "app/node_options.hpp"

namespace infinity {

/// Writes (and syncs) the bootstrap state when `recovered` is empty, and returns what the node
/// starts from. Throws std::runtime_error on invalid combinations (e.g. this node missing from
/// --initial-cluster, or listed there with another Raft address).
recovered_state bootstrap_if_empty(storage_backend& storage, recovered_state recovered,
                                   const node_options& options, std::string& log_line);

/// The latest membership in the log (empty if none).
membership latest_membership(const recovered_state& state);

/// POSTs /join?nodeid=ID&nodeaddr=RAFT to the member at `http_host_port` (blocking; call from a
/// plain thread). Returns the HTTP status (0 when the member could not be reached) and the body.
/// A non-empty `admin_token` is sent as `Authorization: Bearer`. Plain HTTP only.
int request_join(const std::string& http_host_port, const std::string& node_id,
                 const std::string& raft_addr, std::string& body,
                 const std::string& admin_token = {});

} // namespace infinity
