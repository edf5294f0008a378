// Invariants of the Raft core about its own state (LogCabin's RaftConsensusInvariants): checked
// after every input, fatal when broken, because they can only break through a bug of this node.
// Remote input is never checked with them: a peer that breaks the protocol is dropped and
// reported instead (raft_core::violation), so no message can stop a node.
#pragma once

#include <string>

namespace infinity::detail {

[[noreturn]] void invariant_failed(const std::string& node, const std::string& what);

} // namespace infinity::detail

/// Used inside raft_core members (names the node by `config_.id`).
#define RAFT_INVARIANT(cond, what)                                                                 \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      ::infinity::detail::invariant_failed(config_.id, std::string(#cond) + ": " + (what));        \
  } while (false)
