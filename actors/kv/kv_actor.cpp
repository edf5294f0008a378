#include "actors/kv/kv_actor.hpp"

#include "actors/kv/local_read_view.hpp"
#include "actors/messages.hpp"

namespace infinity {
namespace {

/// A snapshot waits until the commands applied since the last one amount to at least this
/// fraction (1/ratio) of the state's bytes.
constexpr uint64_t snapshot_ratio = 4;

struct kv_actor_state {
  /// Shared with the read view's readers; replaced (never moved into) when the state is reset
  /// or installed, so a reader keeps a consistent machine.
  std::shared_ptr<kv_state_machine> machine = std::make_shared<kv_state_machine>();
  std::shared_ptr<local_read_view> view;
  apply_observer observer;
  kv_snapshot_policy policy;
  /// The newest durable snapshot (index 0: none), reported to Raft with every batch.
  snapshot_info latest;
  bool snapshot_in_progress = false;
  uint64_t entries_since_snapshot = 0;
  uint64_t bytes_since_snapshot = 0;
  static inline const char* name = "kv_state_machine";

  void note_snapshot(const snapshot_info& info) {
    if (info.index > latest.index)
      latest = info;
  }
};

using kv_pointer = kv_actor::stateful_pointer<kv_actor_state>;

void maybe_snapshot(kv_pointer self) {
  auto& st = self->state;
  const auto& policy = st.policy;
  if (!policy.snapshots || st.snapshot_in_progress || st.machine->last_applied() <= st.latest.index)
    return;
  const bool by_entries =
      policy.every_entries > 0 && st.entries_since_snapshot >= policy.every_entries;
  const bool by_bytes = policy.every_bytes > 0 && st.bytes_since_snapshot >= policy.every_bytes;
  if (!by_entries && !by_bytes)
    return;
  // Never while the log since the last snapshot is small beside the state: a large state machine
  // would otherwise be rewritten every few thousand entries (LogCabin's snapshot ratio).
  if (st.bytes_since_snapshot * snapshot_ratio < st.machine->data_bytes())
    return;
  snapshot_job job;
  job.image = std::make_shared<const kv_state_machine::image>(st.machine->freeze());
  job.info.index = job.image->last_applied;
  job.info.term = job.image->last_applied_term;
  job.info.config = job.image->config;
  job.info.config_index = job.image->config_index;
  st.snapshot_in_progress = true;
  st.entries_since_snapshot = 0;
  st.bytes_since_snapshot = 0;
  self->request(policy.snapshots, caf::infinite, snapshot_write_atom::value, std::move(job))
      .then(
          [self](const snapshot_info& written) {
            self->state.snapshot_in_progress = false;
            self->state.note_snapshot(written);
          },
          // Logged by the snapshot actor; the next threshold tries again.
          [self](const caf::error&) { self->state.snapshot_in_progress = false; });
}

void replace_machine(kv_pointer self, std::shared_ptr<kv_state_machine> machine) {
  auto& st = self->state;
  st.machine = std::move(machine);
  if (st.view)
    st.view->publish(st.machine);
}

kv_actor::behavior_type kv_impl(kv_pointer self, apply_observer observer, kv_snapshot_policy policy,
                                std::optional<restored_state_machine> initial,
                                std::shared_ptr<local_read_view> view) {
  auto& st = self->state;
  st.observer = std::move(observer);
  st.policy = std::move(policy);
  st.view = std::move(view);
  if (initial) {
    replace_machine(self, std::move(initial->machine));
    st.latest = initial->info;
  } else {
    replace_machine(self, std::make_shared<kv_state_machine>());
  }
  return {
      [self](const apply_batch& batch) {
        auto& st = self->state;
        applied_batch out;
        for (const auto& entry : batch.entries) {
          auto effect = st.machine->apply(entry);
          ++st.entries_since_snapshot;
          st.bytes_since_snapshot += entry.data.size();
          if (entry.kind == entry_kind::command)
            out.results.push_back(entry_result{entry.index, to_string(effect)});
          if (st.observer)
            st.observer(entry, effect);
        }
        out.last_applied = st.machine->last_applied();
        maybe_snapshot(self);
        out.snapshot = st.latest;
        return out;
      },
      [self](kv_reset_atom) {
        // Only a node without snapshots joins another cluster (the Raft core refuses otherwise).
        replace_machine(self, std::make_shared<kv_state_machine>());
        self->state.latest = snapshot_info{};
      },
      [self](kv_install_atom, restored_state_machine& restored) {
        auto& st = self->state;
        // The Raft node may have published this very machine already (local_read_view.hpp).
        replace_machine(self, std::move(restored.machine));
        st.note_snapshot(restored.info);
        st.entries_since_snapshot = 0;
        st.bytes_since_snapshot = 0;
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

kv_actor spawn_kv_actor(caf::actor_system& system, apply_observer observer,
                        kv_snapshot_policy policy, std::optional<restored_state_machine> initial,
                        std::shared_ptr<local_read_view> view) {
  return system.spawn(kv_impl, std::move(observer), std::move(policy), std::move(initial),
                      std::move(view));
}

} // namespace infinity
