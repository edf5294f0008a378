// Asks a member of a running cluster to add this node (--join), until it succeeds or is refused
// for good. An actor that retries with delayed_send; it runs detached because the request
// itself is a blocking HTTP call.
#pragma once

#include <functional>
#include <string>

#include <caf/fwd.hpp>

namespace infinity {

struct join_request_options {
  std::string member_http; ///< HOST:PORT of a member's client API
  std::string node_id;
  std::string raft_address; ///< where the members reach this node
  std::string admin_token;  ///< sent as a bearer token when not empty
  /// One line per outcome that matters; `fatal` is true when the join was refused for good.
  std::function<void(const std::string& line, bool fatal)> report;
};

/// Spawns the actor; it stops by itself once the join succeeded or was refused.
caf::actor spawn_join_requester(caf::actor_system& system, join_request_options options);

} // namespace infinity
