#include "actors/kv/kv_actor.hpp"

namespace infinity {
namespace {

struct kv_actor_state {
  kv_state_machine machine;
  apply_observer observer;
  static inline const char* name = "kv_state_machine";
};

kv_actor::behavior_type kv_impl(kv_actor::stateful_pointer<kv_actor_state> self,
                                apply_observer observer) {
  self->state.observer = std::move(observer);
  return {
      [self](const apply_batch& batch) {
        auto& st = self->state;
        applied_batch out;
        for (const auto& entry : batch.entries) {
          auto effect = st.machine.apply(entry);
          if (entry.kind == entry_kind::command)
            out.results.push_back(entry_result{entry.index, to_string(effect)});
          if (st.observer)
            st.observer(entry, effect);
        }
        out.last_applied = st.machine.last_applied();
        return out;
      },
      [self](kv_reset_atom) { self->state.machine = kv_state_machine{}; },
      [self](kv_install_atom, restored_state_machine& restored) {
        self->state.machine = std::move(*restored.machine);
      },
      [self](kv_get_atom, const std::string& key) -> caf::result<bool, std::string> {
        auto value = self->state.machine.get(key);
        if (!value)
          return {false, std::string{}};
        return {true, std::move(*value)};
      },
  };
}

} // namespace

const char* to_string(kv_state_machine::apply_effect effect) {
  switch (effect) {
  case kv_state_machine::apply_effect::none:
    return "none";
  case kv_state_machine::apply_effect::applied:
    return "applied";
  case kv_state_machine::apply_effect::duplicate:
    return "duplicate";
  case kv_state_machine::apply_effect::malformed:
    return "malformed";
  }
  return "unknown";
}

kv_actor spawn_kv_actor(caf::actor_system& system, apply_observer observer) {
  return system.spawn(kv_impl, std::move(observer));
}

} // namespace infinity
