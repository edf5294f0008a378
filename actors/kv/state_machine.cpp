#include "actors/kv/state_machine.hpp"

#include <stdexcept>

#include "actors/kv/command_codec.hpp"

namespace infinity {

kv_state_machine::kv_state_machine(uint64_t dedup_window_entries)
    : dedup_window_entries_(dedup_window_entries) {
  // nop
}

kv_state_machine::apply_effect kv_state_machine::apply(const log_entry& entry) {
  // Applying out of order would make replicas diverge: a bug in the caller, never an input error.
  if (entry.index != last_applied_ + 1)
    throw std::logic_error("kv_state_machine: apply out of order: got index " +
                           std::to_string(entry.index) + ", expected " +
                           std::to_string(last_applied_ + 1));
  last_applied_ = entry.index;
  forget_old_command_ids(entry.index);
  if (entry.kind != entry_kind::command)
    return apply_effect::none;
  kv_command command;
  if (!decode_command(entry.data, command)) {
    ++malformed_skipped_;
    return apply_effect::malformed;
  }
  if (command.client_id != 0) {
    auto id = std::make_pair(command.client_id, command.sequence);
    if (!recent_command_ids_.insert(id).second) {
      ++duplicates_skipped_;
      return apply_effect::duplicate;
    }
    command_id_expiry_.emplace_back(entry.index, id);
  }
  switch (command.op) {
  case kv_op::set:
    data_[command.key] = std::move(command.value);
    break;
  case kv_op::del:
    data_.erase(command.key);
    break;
  }
  return apply_effect::applied;
}

std::optional<std::string> kv_state_machine::get(const std::string& key) const {
  auto i = data_.find(key);
  if (i == data_.end())
    return std::nullopt;
  return i->second;
}

void kv_state_machine::forget_old_command_ids(uint64_t index) {
  while (!command_id_expiry_.empty() &&
         command_id_expiry_.front().first + dedup_window_entries_ < index) {
    recent_command_ids_.erase(command_id_expiry_.front().second);
    command_id_expiry_.pop_front();
  }
}

} // namespace infinity
