#include "actors/storage/storage_actor.hpp"

#include <utility>
#include <vector>

#include "actors/messages.hpp"

namespace infinity {
namespace {

struct storage_state {
  std::shared_ptr<storage_backend> backend;
  sync_delay_fn sync_delay;
  /// Simulation only: requests written but not yet synced, waiting for the sync timer.
  std::vector<std::pair<uint64_t, caf::response_promise>> waiting;
  bool sync_scheduled = false;
  static inline const char* name = "storage";
};

caf::behavior storage_impl(caf::stateful_actor<storage_state>* self,
                           std::shared_ptr<storage_backend> backend, sync_delay_fn sync_delay) {
  self->state.backend = std::move(backend);
  self->state.sync_delay = std::move(sync_delay);
  return {
      [=](persist_request& request) -> caf::result<persisted_atom, uint64_t> {
        auto& st = self->state;
        st.backend->write(request);
        if (!st.sync_delay) {
          st.backend->sync();
          return {persisted_atom::value, request.seq};
        }
        auto promise = self->make_response_promise();
        st.waiting.emplace_back(request.seq, promise);
        if (!st.sync_scheduled) {
          st.sync_scheduled = true;
          self->delayed_send(self, st.sync_delay(request), sync_atom::value);
        }
        return promise;
      },
      [=](sync_atom) {
        auto& st = self->state;
        st.sync_scheduled = false;
        st.backend->sync();
        auto waiting = std::move(st.waiting);
        st.waiting.clear();
        for (auto& [seq, promise] : waiting)
          promise.deliver(persisted_atom::value, seq);
      },
  };
}

} // namespace

caf::actor spawn_storage_actor(caf::actor_system& system, std::shared_ptr<storage_backend> backend,
                               sync_delay_fn sync_delay, bool detached) {
  if (detached)
    return system.spawn<caf::detached>(storage_impl, std::move(backend), std::move(sync_delay));
  return system.spawn(storage_impl, std::move(backend), std::move(sync_delay));
}

} // namespace infinity
