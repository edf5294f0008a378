#include "actors/raft/raft_log.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace infinity {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::logic_error("raft_log: " + what);
}

} // namespace

raft_log::raft_log(std::vector<log_entry> entries, uint64_t first_index, uint64_t prev_term)
    : first_index_(first_index), prev_term_(prev_term), lowest_changed_index_(first_index) {
  if (first_index == 0)
    fail("first index 0");
  if (first_index == 1 && prev_term != 0)
    fail("a log starting at index 1 has no previous term");
  entries_.reserve(entries.size());
  for (auto& entry : entries)
    append(std::move(entry));
}

uint64_t raft_log::term_at(uint64_t index) const {
  if (index + 1 == first_index_)
    return prev_term_;
  return at(index).term;
}

const log_entry& raft_log::at(uint64_t index) const {
  if (index < first_index_ || index > last_index())
    fail("index " + std::to_string(index) + " outside [" + std::to_string(first_index_) + ", " +
         std::to_string(last_index()) + "]");
  return entries_[index - first_index_];
}

void raft_log::append(log_entry entry) {
  if (entry.index != last_index() + 1)
    fail("append of index " + std::to_string(entry.index) + " after " +
         std::to_string(last_index()));
  if (entry.term < last_term())
    fail("append of term " + std::to_string(entry.term) + " after term " +
         std::to_string(last_term()));
  if (entry.term == 0)
    fail("append of an entry with term 0");
  lowest_changed_index_ = std::min(lowest_changed_index_, entry.index);
  entries_.push_back(std::move(entry));
}

void raft_log::truncate_from(uint64_t index) {
  if (index < first_index_)
    fail("truncate_from(" + std::to_string(index) + ") below the first index " +
         std::to_string(first_index_));
  if (index > last_index())
    return;
  lowest_changed_index_ = std::min(lowest_changed_index_, index);
  entries_.resize(index - first_index_);
}

void raft_log::compact_through(uint64_t index) {
  if (index + 1 < first_index_ || index > last_index())
    fail("compact_through(" + std::to_string(index) + ") outside [" +
         std::to_string(first_index_ - 1) + ", " + std::to_string(last_index()) + "]");
  if (index + 1 == first_index_)
    return;
  prev_term_ = term_at(index);
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<std::ptrdiff_t>(index + 1 - first_index_));
  first_index_ = index + 1;
}

void raft_log::reset_to(uint64_t index, uint64_t term) {
  if (index > 0 && term == 0)
    fail("reset_to(" + std::to_string(index) + ", 0)");
  entries_.clear();
  first_index_ = index + 1;
  prev_term_ = term;
  lowest_changed_index_ = std::min(lowest_changed_index_, first_index_);
}

std::vector<log_entry> raft_log::slice(uint64_t from, size_t max_entries, size_t max_bytes) const {
  std::vector<log_entry> out;
  if (from < first_index_)
    fail("slice from " + std::to_string(from) + " below the first index " +
         std::to_string(first_index_));
  size_t bytes = 0;
  for (auto index = from; index <= last_index() && out.size() < max_entries; ++index) {
    const auto& entry = entries_[index - first_index_];
    if (!out.empty() && bytes + entry.data.size() > max_bytes)
      break;
    bytes += entry.data.size();
    out.push_back(entry);
  }
  return out;
}

uint64_t raft_log::first_index_of_term_run(uint64_t index) const {
  auto term = term_at(index);
  while (index > first_index_ && entries_[index - 1 - first_index_].term == term)
    --index;
  return index;
}

uint64_t raft_log::last_index_of_term(uint64_t term) const {
  // Terms are non-decreasing along the log, so binary search for the last entry <= term.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), term,
                             [](uint64_t t, const log_entry& e) { return t < e.term; });
  if (it == entries_.begin())
    return prev_term_ == term && first_index_ > 1 ? first_index_ - 1 : 0;
  --it;
  return it->term == term ? it->index : 0;
}

uint64_t raft_log::take_lowest_changed_index() {
  auto result = lowest_changed_index_;
  lowest_changed_index_ = std::numeric_limits<uint64_t>::max();
  return result;
}

} // namespace infinity
