// In-memory view of a Raft node's log (owned by the node actor; storage holds the durable copy).
//
// Indexes start at 1; index 0 is the empty prefix with term 0. Every mutation checks the Raft log
// invariants (contiguous indexes, non-decreasing terms) and throws std::logic_error when a caller
// breaks them: that is a bug, never an input error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "actors/types.hpp"

namespace infinity {

class raft_log {
 public:
  raft_log() = default;
  explicit raft_log(std::vector<log_entry> entries);

  uint64_t last_index() const { return entries_.size(); }
  uint64_t last_term() const { return entries_.empty() ? 0 : entries_.back().term; }

  /// Term of the entry at `index`; 0 for index 0. Requires index <= last_index().
  uint64_t term_at(uint64_t index) const;

  /// Whether the log has an entry at `index` with `term` (index 0 always matches term 0).
  bool matches(uint64_t index, uint64_t term) const {
    return index <= last_index() && term_at(index) == term;
  }

  /// Requires 1 <= index <= last_index().
  const log_entry& at(uint64_t index) const;

  /// Requires entry.index == last_index() + 1 and entry.term >= last_term().
  void append(log_entry entry);

  /// Removes every entry with index >= `index` (>= 1).
  void truncate_from(uint64_t index);

  /// Entries [from, last_index()], at most `max_entries`, stopping before `max_bytes` of data are
  /// exceeded (but always at least one entry if any).
  std::vector<log_entry> slice(uint64_t from,
                               size_t max_entries = std::numeric_limits<size_t>::max(),
                               size_t max_bytes = std::numeric_limits<size_t>::max()) const;

  /// The first index of the run of entries with term `term_at(index)` that ends at `index`
  /// (conflict hint of a rejected AppendEntries).
  uint64_t first_index_of_term_run(uint64_t index) const;

  /// The last index whose term is `term`, or 0 if the log has no entry of that term.
  uint64_t last_index_of_term(uint64_t term) const;

  /// Lowest index changed (appended or truncated) since the last call; max() if none.
  /// Lets checkers re-examine only what changed.
  uint64_t take_lowest_changed_index();

 private:
  std::vector<log_entry> entries_; // entries_[i] has index i + 1
  uint64_t lowest_changed_index_ = 1;
};

} // namespace infinity
