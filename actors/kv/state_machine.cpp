#include "actors/kv/state_machine.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "actors/kv/command_codec.hpp"
#include "actors/kv/hashing.hpp"

namespace infinity {
namespace {

constexpr std::string_view image_magic = "IKV1";

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

} // namespace

kv_state_machine::kv_state_machine(uint64_t dedup_window_entries)
    : dedup_window_entries_(dedup_window_entries) {
  for (auto& s : shards_)
    s = std::make_shared<shard>();
}

size_t kv_state_machine::shard_of(const std::string& key) {
  return static_cast<size_t>(fnv1a(key) % shard_count);
}

kv_state_machine::shard& kv_state_machine::writable(size_t index) {
  auto& s = shards_[index];
  // Shared with a frozen image: copy this shard only, the image keeps the old one.
  if (s.use_count() > 1)
    s = std::make_shared<shard>(*s);
  return *s;
}

kv_state_machine::apply_effect kv_state_machine::apply(const log_entry& entry) {
  // Applying out of order would make replicas diverge: a bug in the caller, never an input error.
  if (entry.index != last_applied_ + 1)
    throw std::logic_error("kv_state_machine: apply out of order: got index " +
                           std::to_string(entry.index) + ", expected " +
                           std::to_string(last_applied_ + 1));
  last_applied_ = entry.index;
  last_applied_term_ = entry.term;
  forget_old_command_ids(entry.index);
  if (entry.kind == entry_kind::config) {
    config_ = entry.data;
    config_index_ = entry.index;
    return apply_effect::none;
  }
  if (entry.kind != entry_kind::command)
    return apply_effect::none;
  kv_command command;
  if (!decode_command(entry.data, command)) {
    ++malformed_skipped_;
    return apply_effect::malformed;
  }
  if (command.client_id != 0 &&
      !recent_command_ids_.insert(entry.index, command.client_id, command.sequence)) {
    ++duplicates_skipped_;
    return apply_effect::duplicate;
  }
  const auto shard_index = shard_of(command.key);
  std::unique_lock<std::shared_mutex> readers_wait{(*shard_locks_)[shard_index]};
  auto& data = writable(shard_index);
  switch (command.op) {
  case kv_op::set: {
    auto result = data.insert_or_assign(command.key, command.value);
    if (result.inserted) {
      ++size_;
      data_bytes_ += command.key.size();
    } else {
      data_bytes_ -= result.old_value_size;
    }
    data_bytes_ += command.value.size();
    break;
  }
  case kv_op::del:
    if (auto removed = data.erase(command.key)) {
      data_bytes_ -= *removed;
      --size_;
    }
    break;
  }
  return apply_effect::applied;
}

std::optional<std::string> kv_state_machine::get(const std::string& key) const {
  const auto index = shard_of(key);
  std::shared_lock<std::shared_mutex> no_writer{(*shard_locks_)[index]};
  // A view into the shard's arena: copied before the lock is released.
  auto value = shards_[index]->find(key);
  if (!value)
    return std::nullopt;
  return std::string(*value);
}

void kv_state_machine::forget_old_command_ids(uint64_t index) {
  while (!recent_command_ids_.empty() &&
         recent_command_ids_.front().index + dedup_window_entries_ < index)
    recent_command_ids_.pop_front();
}

// -- snapshots
// -------------------------------------------------------------------------------------

kv_state_machine::image kv_state_machine::freeze() const {
  image result;
  result.last_applied = last_applied_;
  result.last_applied_term = last_applied_term_;
  result.config = config_;
  result.config_index = config_index_;
  result.dedup_window_entries = dedup_window_entries_;
  for (size_t i = 0; i < shard_count; ++i)
    result.shards[i] = shards_[i];
  result.recent_command_ids.reserve(recent_command_ids_.size());
  recent_command_ids_.for_each([&](const command_id_window::item& i) {
    result.recent_command_ids.emplace_back(i.index, command_id{i.client, i.sequence});
  });
  result.size = size_;
  return result;
}

void kv_state_machine::serialize(const image& snapshot,
                                 const std::function<void(std::string_view)>& out,
                                 size_t piece_bytes) {
  std::string buffer;
  auto flush_if_full = [&] {
    if (buffer.size() >= piece_bytes) {
      out(buffer);
      buffer.clear();
    }
  };
  buffer.append(image_magic);
  put_varint(buffer, snapshot.last_applied);
  put_varint(buffer, snapshot.last_applied_term);
  put_varint(buffer, snapshot.config_index);
  put_bytes(buffer, snapshot.config);
  put_varint(buffer, snapshot.dedup_window_entries);
  put_varint(buffer, snapshot.recent_command_ids.size());
  for (const auto& [index, id] : snapshot.recent_command_ids) {
    put_varint(buffer, index);
    put_varint(buffer, id.first);
    put_varint(buffer, id.second);
    flush_if_full();
  }
  for (const auto& s : snapshot.shards) {
    put_varint(buffer, s->size());
    s->for_each_sorted([&](std::string_view key, std::string_view value) {
      put_bytes(buffer, key);
      put_bytes(buffer, value);
      flush_if_full();
    });
  }
  if (!buffer.empty())
    out(buffer);
}

// -- restoring
// -------------------------------------------------------------------------------------

struct kv_state_machine::restorer::impl {
  std::string buffer;
  size_t offset = 0;
  enum class step { header, ids, shards, done } at = step::header;
  kv_state_machine machine{0};
  uint64_t ids_left = 0;
  size_t shard = 0;
  uint64_t pairs_left = 0;
  bool shard_started = false;

  [[noreturn]] static void fail(const std::string& what) {
    throw std::runtime_error("snapshot body: " + what);
  }

  /// Reads a varint at `at`; false if the buffer ends first.
  bool varint(size_t& at, uint64_t& value) const {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= buffer.size())
        return false;
      auto byte = static_cast<uint8_t>(buffer[at++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0)
        return true;
    }
    fail("a varint longer than 64 bits");
  }

  bool bytes(size_t& at, std::string& value) const {
    uint64_t size = 0;
    if (!varint(at, size))
      return false;
    if (size > buffer.size() - at)
      return false;
    value.assign(buffer, at, size);
    at += size;
    return true;
  }

  bool parse_header() {
    size_t at = offset;
    if (buffer.size() - at < image_magic.size())
      return false;
    if (std::string_view(buffer).substr(at, image_magic.size()) != image_magic)
      fail("not a key-value snapshot (bad magic)");
    at += image_magic.size();
    uint64_t last = 0, term = 0, config_index = 0, window = 0;
    std::string config;
    if (!varint(at, last) || !varint(at, term) || !varint(at, config_index) || !bytes(at, config) ||
        !varint(at, window) || !varint(at, ids_left))
      return false;
    machine = kv_state_machine{window};
    machine.last_applied_ = last;
    machine.last_applied_term_ = term;
    machine.config_index_ = config_index;
    machine.config_ = std::move(config);
    offset = at;
    this->at = step::ids;
    return true;
  }

  bool parse_id() {
    size_t at = offset;
    uint64_t index = 0, client = 0, sequence = 0;
    if (!varint(at, index) || !varint(at, client) || !varint(at, sequence))
      return false;
    if (!machine.recent_command_ids_.insert(index, client, sequence))
      fail("a command id listed twice");
    offset = at;
    --ids_left;
    return true;
  }

  bool parse_shard_item() {
    size_t at = offset;
    if (!shard_started) {
      if (!varint(at, pairs_left))
        return false;
      shard_started = true;
      offset = at;
      return true;
    }
    std::string key, value;
    if (!bytes(at, key) || !bytes(at, value))
      return false;
    if (shard_of(key) != shard)
      fail("key in the wrong shard");
    machine.data_bytes_ += key.size() + value.size();
    if (!machine.shards_[shard]->insert_or_assign(key, value).inserted)
      fail("a key listed twice");
    ++machine.size_;
    offset = at;
    --pairs_left;
    return true;
  }

  void parse() {
    for (;;) {
      bool progressed = false;
      switch (at) {
      case step::header:
        progressed = parse_header();
        break;
      case step::ids:
        if (ids_left == 0) {
          at = step::shards;
          progressed = true;
        } else {
          progressed = parse_id();
        }
        break;
      case step::shards:
        if (shard_started && pairs_left == 0) {
          shard_started = false;
          if (++shard == shard_count)
            at = step::done;
          progressed = true;
        } else {
          progressed = parse_shard_item();
        }
        break;
      case step::done:
        if (offset != buffer.size())
          fail("bytes after the last shard");
        return;
      }
      if (!progressed)
        break;
    }
    // Keep the buffer small: drop what was parsed once it is most of it.
    if (offset > (1 << 16) && offset * 2 > buffer.size()) {
      buffer.erase(0, offset);
      offset = 0;
    }
  }
};

kv_state_machine::restorer::restorer() : impl_(std::make_unique<impl>()) {
  // nop
}

kv_state_machine::restorer::~restorer() = default;

void kv_state_machine::restorer::feed(std::string_view bytes) {
  impl_->buffer.append(bytes);
  impl_->parse();
}

kv_state_machine kv_state_machine::restorer::finish() {
  impl_->parse();
  if (impl_->at != impl::step::done || impl_->offset != impl_->buffer.size())
    impl::fail("it ends before the last shard");
  return std::move(impl_->machine);
}

} // namespace infinity
