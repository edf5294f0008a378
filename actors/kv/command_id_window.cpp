#include "actors/kv/command_id_window.hpp"

#include <algorithm>
#include <stdexcept>

#include "actors/kv/hashing.hpp"

namespace infinity {

size_t command_id_window::hash_of(uint64_t client, uint64_t sequence) {
  return static_cast<size_t>(mix64(client * 0x9E3779B97F4A7C15ULL ^ sequence));
}

size_t command_id_window::probe(uint64_t client, uint64_t sequence) const {
  for (size_t i = home(hash_of(client, sequence));; i = next_slot(i)) {
    auto at = table_[i];
    if (at == empty_slot || (ring_[at].client == client && ring_[at].sequence == sequence))
      return i;
  }
}

bool command_id_window::contains(uint64_t client, uint64_t sequence) const {
  return count_ > 0 && table_[probe(client, sequence)] != empty_slot;
}

void command_id_window::grow() {
  // The ring grows by half and starts at 0 again; the table is rebuilt (at most 2/3 full).
  size_t capacity = std::max<size_t>(16, ring_.size() + ring_.size() / 2);
  if (capacity + capacity / 2 >= empty_slot)
    throw std::length_error("command_id_window: more than 2^32 ids");
  std::vector<item> ring;
  ring.reserve(capacity);
  for_each([&](const item& i) { ring.push_back(i); });
  ring.resize(capacity);
  ring_ = std::move(ring);
  head_ = 0;
  table_.assign(capacity + capacity / 2, empty_slot);
  for (size_t at = 0; at < count_; ++at)
    table_[probe(ring_[at].client, ring_[at].sequence)] = static_cast<uint32_t>(at);
}

bool command_id_window::insert(uint64_t index, uint64_t client, uint64_t sequence) {
  if (count_ > 0 && table_[probe(client, sequence)] != empty_slot)
    return false;
  if (count_ == ring_.size())
    grow();
  size_t at = head_ + count_;
  if (at >= ring_.size())
    at -= ring_.size();
  ring_[at] = item{index, client, sequence};
  table_[probe(client, sequence)] = static_cast<uint32_t>(at);
  ++count_;
  return true;
}

void command_id_window::pop_front() {
  const auto& oldest = ring_[head_];
  size_t hole = probe(oldest.client, oldest.sequence);
  // Backward shift: move later slots of the run into the hole if their home allows it.
  for (size_t j = next_slot(hole); table_[j] != empty_slot; j = next_slot(j)) {
    const auto& there = ring_[table_[j]];
    size_t h = home(hash_of(there.client, there.sequence));
    bool home_in_between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!home_in_between) {
      table_[hole] = table_[j];
      hole = j;
    }
  }
  table_[hole] = empty_slot;
  head_ = next(head_);
  --count_;
  if (count_ == 0)
    head_ = 0;
}

} // namespace infinity
