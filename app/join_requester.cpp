#include "app/join_requester.hpp"

#include <chrono>

#include <caf/all.hpp>

#include "app/cluster_bootstrap.hpp"

namespace infinity {
namespace {

using join_retry_atom = caf::atom_constant<caf::atom("joinretry")>;

constexpr auto retry_delay = std::chrono::milliseconds(500);

struct join_requester_state {
  join_request_options options;
  int attempts = 0;
  static inline const char* name = "join_requester";
};

caf::behavior join_requester(caf::stateful_actor<join_requester_state>* self,
                             join_request_options options) {
  self->state.options = std::move(options);
  self->send(self, join_retry_atom::value);
  return {
      [self](join_retry_atom) {
        auto& st = self->state;
        const auto& opts = st.options;
        ++st.attempts;
        std::string body;
        auto status =
            request_join(opts.member_http, opts.node_id, opts.raft_address, body, opts.admin_token);
        if (status == 200) {
          opts.report("joined the cluster through " + opts.member_http, false);
          self->quit();
          return;
        }
        if (status == 400 || status == 409) {
          opts.report("cannot join through " + opts.member_http + ": " + body, true);
          self->quit();
          return;
        }
        // Nobody answered, no leader yet, or another change is in progress: try again.
        if (st.attempts == 1 || st.attempts % 10 == 0)
          opts.report("join through " + opts.member_http + " not done yet (" +
                          (status == 0 ? body : std::to_string(status) + " " + body) +
                          "), retrying",
                      false);
        self->delayed_send(self, retry_delay, join_retry_atom::value);
      },
  };
}

} // namespace

caf::actor spawn_join_requester(caf::actor_system& system, join_request_options options) {
  return system.spawn<caf::detached>(join_requester, std::move(options));
}

} // namespace infinity
