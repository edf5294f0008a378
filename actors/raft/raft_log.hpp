// In-memory view of a Raft node's log (owned by the Raft core; storage holds the durable copy).
//
// The log holds the entries [first_index(), last_index()]; everything before first_index() was
// compacted away (or never existed: a fresh log starts at index 1), and only the term of the
// entry just before it is kept, as `term_at(first_index() - 1)`, so appends can still be matched
// against it. Every mutation checks the Raft log invariants (contiguous indexes, non-decreasing
// terms) and throws std::logic_error when a caller breaks them: that is a bug, never an input
// error.
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
  /// A log whose entries start at `first_index`; `prev_term` is the term of the entry at
  /// first_index - 1 (0 when first_index is 1).
  explicit raft_log(std::vector<log_entry> entries, uint64_t first_index = 1,
                    uint64_t prev_term = 0);

  uint64_t first_index() const { return first_index_; }
  uint64_t last_index() const { return first_index_ + entries_.size() - 1; }
  uint64_t last_term() const { return entries_.empty() ? prev_term_ : entries_.back().term; }
  bool empty() const { return entries_.empty(); }

  /// Whether `term_at(index)` is known: first_index() - 1 <= index <= last_index().
  bool has_term_at(uint64_t index) const {
    return index + 1 >= first_index_ && index <= last_index();
  }

  /// Term of the entry at `index`; requires has_term_at(index).
  uint64_t term_at(uint64_t index) const;

  /// Whether the log has an entry at `index` with `term`.
  bool matches(uint64_t index, uint64_t term) const {
    return has_term_at(index) && term_at(index) == term;
  }

  /// Requires first_index() <= index <= last_index().
  const log_entry& at(uint64_t index) const;

  /// Requires entry.index == last_index() + 1 and entry.term >= last_term().
  void append(log_entry entry);

  /// Removes every entry with index >= `index` (>= first_index()).
  void truncate_from(uint64_t index);

  /// Drops the entries up to `index` (covered by a snapshot); requires
  /// first_index() - 1 <= index <= last_index(). The term at `index` stays known.
  void compact_through(uint64_t index);

  /// Discards every entry: the log continues empty after (index, term) (a snapshot install).
  void reset_to(uint64_t index, uint64_t term);

  /// Entries [from, last_index()], at most `max_entries`, stopping before `max_bytes` of data are
  /// exceeded (but always at least one entry if any). Requires from >= first_index().
  std::vector<log_entry> slice(uint64_t from,
                               size_t max_entries = std::numeric_limits<size_t>::max(),
                               size_t max_bytes = std::numeric_limits<size_t>::max()) const;

  /// The first index of the run of entries with term `term_at(index)` that ends at `index`
  /// (conflict hint of a rejected AppendEntries); never below first_index().
  uint64_t first_index_of_term_run(uint64_t index) const;

  /// The last index whose term is `term`, or 0 if the log has no entry of that term.
  uint64_t last_index_of_term(uint64_t term) const;

  /// Lowest index changed (appended or truncated) since the last call; max() if none.
  /// Lets checkers re-examine only what changed.
  uint64_t take_lowest_changed_index();

 private:
  std::vector<log_entry> entries_; // entries_[i] has index first_index_ + i
  uint64_t first_index_ = 1;
  uint64_t prev_term_ = 0;
  uint64_t lowest_changed_index_ = 1;
};

} // namespace infinity
