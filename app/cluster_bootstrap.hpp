// How a node's data directory becomes, and stays, the directory of one node of one cluster.
//
// Three ways to start an empty directory (etcd-like):
//   --initial-cluster id=raft,...  every listed node writes the same membership entry at index 1,
//                                  so their logs agree from the start (static bootstrap); the
//                                  cluster id is derived from that membership, the same on all;
//   neither option                 a one-node cluster of its own with a random cluster id,
//                                  serving at once (the original InfinityStore flow: start
//                                  alone, then POST /join on a leader);
//   --join HOST:PORT               an empty log and no membership: the node waits for a leader to
//                                  add it, after asking a member (HTTP) to do so, and adopts the
//                                  cluster id of the leader that adds it.
// The directory's identity file records the node id and the cluster id, written only once the
// bootstrap state is durable. A directory that holds state is used as it is, but only by the
// node it belongs to; the options above must not contradict it.
#pragma once

#include <cstdint>
#include <string>

#include "actors/raft/membership.hpp"
#include "actors/storage/file_storage.hpp"
#include "app/node_options.hpp"

namespace infinity {

struct prepared_directory {
  recovered_state state;
  /// What the node does with the directory, for the log.
  std::string description;
  /// This start wrote the bootstrap state: if the start fails later, the caller removes it, so
  /// no half-bootstrapped directory is left for another node to pick up.
  bool bootstrapped_now = false;
  /// Storage found damage and the node starts in repair mode (not voting until caught up).
  std::string repair_warning;
};

/// Checks the directory's identity against the options, repairs storage damage where a cluster
/// can make up for it, and bootstraps an empty directory. Throws std::runtime_error with one
/// clear sentence when the node must not start (another node's or cluster's directory, lost
/// state under a recorded identity, damage a lone node cannot repair).
prepared_directory prepare_data_directory(file_storage& storage, recovered_state recovered,
                                          const node_options& options, uint64_t random);

/// The cluster id every member of a static bootstrap derives from the same membership.
std::string static_cluster_id(const membership& members);

/// The latest membership in the log (empty if none).
membership latest_membership(const recovered_state& state);

/// POSTs /join?nodeid=ID&nodeaddr=RAFT to the member at `http_host_port` (blocking; call from a
/// plain thread or a detached actor). Returns the HTTP status (0 when the member could not be
/// reached) and the body. A non-empty `admin_token` is sent as `Authorization: Bearer`. Plain
/// HTTP only.
int request_join(const std::string& http_host_port, const std::string& node_id,
                 const std::string& raft_addr, std::string& body,
                 const std::string& admin_token = {});

} // namespace infinity
