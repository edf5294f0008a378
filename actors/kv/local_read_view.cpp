#include "actors/kv/local_read_view.hpp"

#include "actors/kv/state_machine.hpp"

namespace infinity {

local_read_view::local_read_view() : machine_(std::make_shared<const kv_state_machine>()) {}

std::optional<std::string> local_read_view::get(const std::string& key) const {
  // The machine stays alive while we read it even if the KV actor replaces it meanwhile.
  auto machine = std::atomic_load(&machine_);
  return machine->get(key);
}

void local_read_view::publish(std::shared_ptr<const kv_state_machine> machine) {
  std::atomic_store(&machine_, std::move(machine));
}

} // namespace infinity
