#include "actors/kv/kv_actor.hpp"

#include "actors/messages.hpp"

namespace infinity {
namespace {

caf::behavior kv_impl(kv_actor_type* self, apply_observer observer) {
  self->state.observer = std::move(observer);
  return {
      [=](const apply_batch& batch) -> caf::result<applied_atom, uint64_t> {
        auto& st = self->state;
        for (const auto& entry : batch.entries) {
          auto effect = st.machine.apply(entry);
          if (st.observer)
            st.observer(entry, effect);
        }
        return {applied_atom::value, st.machine.last_applied()};
      },
      [=](kv_reset_atom) { self->state.machine = kv_state_machine{}; },
      [=](kv_get_atom, const std::string& key) -> caf::result<bool, std::string> {
        auto value = self->state.machine.get(key);
        if (!value)
          return {false, std::string{}};
        return {true, std::move(*value)};
      },
  };
}

} // namespace

caf::actor spawn_kv_actor(caf::actor_system& system, apply_observer observer) {
  return system.spawn(kv_impl, std::move(observer));
}

} // namespace infinity
