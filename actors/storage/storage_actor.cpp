#include "actors/storage/storage_actor.hpp"

#include <chrono>
#include <utility>
#include <vector>

#include "actors/messages.hpp"

namespace infinity {
namespace {

/// No request for this long counts as idle (the backend then writes e.g. its sync marker).
constexpr auto idle_delay = std::chrono::milliseconds(10);
/// Deferred work a backend wants "within a second" under load.
constexpr auto maintenance_period = std::chrono::seconds(1);

struct storage_state {
  std::shared_ptr<storage_backend> backend;
  sync_delay_fn sync_delay;
  /// Simulation only: requests written but not yet synced, waiting for the sync timer.
  std::vector<std::pair<uint64_t, caf::typed_response_promise<persisted_atom, uint64_t>>> waiting;
  bool sync_scheduled = false;
  /// Requests so far, so an idle timer can tell whether one arrived since it was armed.
  uint64_t requests = 0;
  bool idle_timer_armed = false;
  bool periodic_timer_armed = false;
  bool maintenance_queued = false;
  std::shared_ptr<metrics::node_metrics> metrics;
  static inline const char* name = "storage";
};

using storage_pointer = storage_actor::stateful_pointer<storage_state>;

/// Arms what the backend's deferred work needs; a backend without any (memory_storage) costs no
/// timer at all, so the simulator's event sequence does not change.
void schedule_maintenance(storage_pointer self) {
  auto& st = self->state;
  const maintenance_need need = st.backend->maintenance_needed();
  if (need == maintenance_need::none)
    return;
  if (!st.idle_timer_armed) {
    st.idle_timer_armed = true;
    self->delayed_send(self, idle_delay, storage_idle_atom::value, st.requests);
  }
  if (need == maintenance_need::now && !st.maintenance_queued) {
    st.maintenance_queued = true; // after the answer to the request at hand
    self->send(self, storage_maint_atom::value);
  } else if (need == maintenance_need::within_a_second && !st.periodic_timer_armed) {
    st.periodic_timer_armed = true;
    self->delayed_send(self, maintenance_period, storage_maint_atom::value, true);
  }
}

/// backend->sync(), timed when metrics are on; while it runs, `sync_started_ns` says since when
/// (readiness reports a disk that stopped answering).
void timed_sync(storage_state& st) {
  if (!st.metrics) {
    st.backend->sync();
    return;
  }
  auto start = metrics::steady_now_ns();
  st.metrics->sync_started_ns.store(start, std::memory_order_relaxed);
  st.backend->sync();
  auto end = metrics::steady_now_ns();
  st.metrics->sync_started_ns.store(0, std::memory_order_relaxed);
  st.metrics->fsync_seconds.observe_ns(static_cast<uint64_t>(end - start));
}

void maintain_now(storage_pointer self) {
  self->state.backend->maintain(false);
  schedule_maintenance(self);
}

storage_actor::behavior_type storage_impl(storage_pointer self,
                                          std::shared_ptr<storage_backend> backend,
                                          sync_delay_fn sync_delay,
                                          std::shared_ptr<metrics::node_metrics> metrics) {
  self->state.backend = std::move(backend);
  self->state.sync_delay = std::move(sync_delay);
  self->state.metrics = std::move(metrics);
  return {
      [=](persist_request& request) -> caf::result<persisted_atom, uint64_t> {
        auto& st = self->state;
        ++st.requests;
        if (st.metrics) {
          uint64_t bytes = 0;
          for (const auto& entry : request.entries)
            bytes += entry.data.size();
          st.metrics->persist_requests.fetch_add(1, std::memory_order_relaxed);
          st.metrics->entry_bytes_written.fetch_add(bytes, std::memory_order_relaxed);
        }
        st.backend->write(request);
        if (!st.sync_delay) {
          timed_sync(st);
          schedule_maintenance(self);
          return {persisted_atom::value, request.seq};
        }
        auto promise = self->make_response_promise<persisted_atom, uint64_t>();
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
        timed_sync(st);
        auto waiting = std::move(st.waiting);
        st.waiting.clear();
        for (auto& [seq, promise] : waiting)
          promise.deliver(persisted_atom::value, seq);
        schedule_maintenance(self);
      },
      [=](storage_idle_atom, uint64_t requests_when_armed) {
        auto& st = self->state;
        st.idle_timer_armed = false;
        if (requests_when_armed == st.requests && st.waiting.empty())
          st.backend->maintain(true);
        schedule_maintenance(self);
      },
      [=](storage_maint_atom) {
        self->state.maintenance_queued = false;
        maintain_now(self);
      },
      [=](storage_maint_atom, bool /*periodic*/) {
        self->state.periodic_timer_armed = false;
        maintain_now(self);
      },
  };
}

} // namespace

storage_actor spawn_storage_actor(caf::actor_system& system,
                                  std::shared_ptr<storage_backend> backend,
                                  sync_delay_fn sync_delay, bool detached,
                                  std::shared_ptr<metrics::node_metrics> metrics) {
  if (detached)
    return system.spawn<caf::detached>(storage_impl, std::move(backend), std::move(sync_delay),
                                       std::move(metrics));
  return system.spawn(storage_impl, std::move(backend), std::move(sync_delay), std::move(metrics));
}

} // namespace infinity
