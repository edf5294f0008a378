// Durable storage backend: a data directory on a local POSIX file system (or a simulated one).
//
// Layout of the directory:
//   LOCK         flock'ed for the lifetime of the object: one process per directory.
//   hard_state   one record (term, vote, repair mode, commit hint, the log's base, a reset flag),
//                replaced atomically.
//   identity     one record (node id, cluster id), replaced atomically; absent until recorded.
//   log-<first index, 20 digits>.seg
//                append-only segments; zero padding makes lexical order numeric. The first one
//                starts right after the base (index 1 for a log never compacted or reset).
//   snapshots/   the snapshot store's (`snapshot_store.hpp`); ignored here.
// "Replaced atomically" = temp file, fdatasync, rename, fsync of the directory.
//
// Every record is framed as  u32 payload length | u32 CRC32C(payload) | payload  (little-endian).
// Payloads:
//   log entry    term u64 | index u64 | kind u8 (0..2) | data
//   sync marker  0 u64 | last synced index u64 | 0xFF u8 | its own offset in the segment u64
//   hard state   "IHS4" | term u64 | repair_until_index u64 | commit hint u64 | repair_term u64 |
//                base index u64 | base term u64 | flags u8 (0x01 = reset in progress) | voted_for
//                Read too: "IHS3" (no base, no flags: base 0/0), "IHS2" (no repair term either)
//                and, without a magic, the first format: term u64 | voted_for.
//   identity     "IID1" | u32 length of node id | node id | cluster id
//
// Crash model and ordering. A crash may lose or tear anything not yet fsync'ed, and the kernel
// may write dirty pages back at any time. So nothing a request changes in the log reaches the
// kernel before that request's hard state is durable (no entry of a term the hard state does not
// know, no vote lost behind later writes); a segment is synced before the next one is started; a
// truncation is synced before anything is written behind it.
//
// Torn write or corruption: decided on evidence, not on position. After every sync, the first
// write to the log starts with a sync marker (or one is written on its own once the node is idle,
// and at destruction). Damage to a record is corruption if anything proves the record was synced:
// it is not in the last segment, an intact marker follows it, or its checksum matches at another
// length (a complete record whose length field is damaged). Otherwise the record is judged by its
// shape: one that runs past the end of the file, or has a sector that reads back as zeros (what an
// unsynced append leaves after a power cut), is a torn write and is cut silently; a complete
// record of non-zero garbage is corruption. The commit hint in the hard state (a commit index the
// synced log covered) is a last check: a cut below it is corruption too. What stays open: the last
// synced batch before its marker reaches the disk (until the next write or ~10 ms of idleness)
// has only its shape and the hint to speak for it, so damage there that looks torn is cut.
// Corruption is reported by `recover` as repairable damage (cut the tail, then catch up from a
// leader); damage that cutting cannot repair (missing segments, index gaps, a log shorter than
// the commit hint, an unreadable hard state or identity file) throws.
//
// The base: the index and term of the entry just before the log's first one, which a snapshot
// covers; recorded in the hard state file, so it is known even when the log is empty.
// - Compaction (`compact_through`) drops whole segments only, never the last one, so the new
//   base is the last index of a dropped segment (its term is known: the entry is still in the
//   log). Order: the hard state with the new base is replaced first (durable), then the dropped
//   segments are removed oldest first, then the directory is synced. A crash before the rename
//   leaves the old base and every segment; after it, some oldest segments of the dropped run may
//   remain, all at or below the base with a successor starting at or below base + 1: recovery
//   removes exactly those (a segment starting at or below the base without such a successor
//   would hold entries after the base: refused). The segments dropped were synced whole at their
//   rollover, and the directory sync of the hard state replacement made every remaining
//   segment's name durable. Costs one hard state replacement and one directory sync.
// - A reset (`has_reset`, a snapshot install) cannot tell stale segments by their indexes (the
//   old log may run past the new base). Order: the hard state with the new base, the reset flag
//   and the request's hard state (so no crash leaves a base of a term the node never recorded),
//   then every segment removed and the directory synced, then the hard state again with the
//   flag cleared; only then can the new log's first segment be created. Recovery that finds the
//   flag removes every segment, syncs the directory and clears the flag: no entry of the old log
//   survives. Costs two hard state replacements and one directory sync (one replacement if the
//   log had no segment). A reset below the commit hint lowers the hint, like a truncation.
// - Recovery returns the base and the entries from base + 1; a log whose last index (the base's,
//   if empty) is below the commit hint is refused as before. Truncating or appending at or
//   below the base is a logic error.
// - The steady append path is unchanged: one fdatasync per `sync`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/storage/file_system.hpp"
#include "actors/storage/storage_backend.hpp"

namespace infinity {

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78). Pass the result for the preceding bytes
/// as `crc` (0 to start) to checksum data piecewise.
uint32_t crc32c(const void* data, std::size_t size, uint32_t crc = 0);

struct file_storage_options {
  /// Once a segment has reached this size the next entry starts a new one. Records are never
  /// split, so a segment can overshoot by one record. Compaction drops whole segments, so this
  /// also bounds how much of the log outlives a snapshot (and is read again at restart).
  uint64_t max_segment_bytes = uint64_t{8} * 1024 * 1024;
  /// Appends collect in memory up to this size before they are handed to the kernel, so a burst
  /// of small entries costs few system calls.
  std::size_t write_buffer_bytes = std::size_t{1} << 20;
};

/// Counts of the expensive operations, so tests and benchmarks can check what things cost.
struct file_storage_stats {
  /// fsync/fdatasync of regular files.
  uint64_t file_syncs = 0;
  uint64_t directory_syncs = 0;
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;
  /// Replacements of the hard state file, and how many of them only moved the commit hint.
  uint64_t hard_state_writes = 0;
  uint64_t commit_hint_writes = 0;
  /// Sync markers at the start of a batch (free: part of its write) and written on their own
  /// when idle or at destruction (one write and one fdatasync each).
  uint64_t markers_in_batches = 0;
  uint64_t markers_alone = 0;
  /// Compactions that dropped at least one segment, and resets (snapshot installs).
  uint64_t compactions = 0;
  uint64_t resets = 0;
};

class file_storage final : public storage_backend {
 public:
  /// Creates `directory` if needed and locks it. Throws `std::runtime_error` naming the path if
  /// it cannot be created or opened, or if another process (or object) holds the lock. `fs` is
  /// where the files live; null means the local file system.
  explicit file_storage(std::string directory, file_storage_options options = {},
                        std::shared_ptr<file_system> fs = nullptr);
  /// Writes what is still buffered and the marker of the last sync, without syncing them.
  ~file_storage() override;

  file_storage(const file_storage&) = delete;
  file_storage& operator=(const file_storage&) = delete;

  /// Must be called exactly once, before the first `write`. Cuts off a torn tail (see
  /// `recovery_report`). Repairable damage changes nothing on disk: it is returned in
  /// `recovered_state::damage`, and `write` refuses until `accept_repair`. Any other damage
  /// throws `std::runtime_error` with one sentence naming the file.
  recovered_state recover() override;

  /// Performs the repair `recover` proposed: records `repair_until_index = max(recorded,
  /// damage.possibly_acknowledged_up_to)` durably, then cuts the log after
  /// `damage.keep_last_index`. Throws `std::logic_error` if there is nothing to accept.
  void accept_repair();

  /// Throws `std::logic_error` for a request that would break the log's invariants (index gaps,
  /// decreasing terms, a term going back, a commit index or compaction beyond the log, a
  /// truncation below the base, a reset to a term above the node's, another cluster id), before
  /// changing anything; also before `recover`, and after unaccepted damage.
  ///
  /// A reset (`has_reset`) and a compaction that drops segments are durable when `write`
  /// returns (they cost hard state replacements and directory syncs; see the header comment);
  /// everything else waits for `sync`.
  void write(const persist_request& request) override;

  void sync() override;

  maintenance_need maintenance_needed() const override;
  /// Idle: writes the marker of the last sync (one write and one fdatasync) and the commit hint.
  /// Otherwise only the commit hint (one replacement of the hard state file), if it is behind.
  void maintain(bool idle) override;

  /// Who this directory belongs to; valid after `recover`, empty if never recorded.
  std::optional<node_identity> identity() const { return identity_; }
  /// Records `id` durably; empty fields leave the recorded ones as they are. Throws
  /// `std::logic_error` if it would change a recorded node id or a recorded cluster id.
  void record_identity(const node_identity& id);

  /// The hard state and commit hint as they are on disk.
  const hard_state& durable_hard_state() const { return persisted_.state; }
  uint64_t commit_hint() const { return persisted_.commit_hint; }
  /// The entry before the log's first one (durable: recorded before any segment below it goes).
  log_base base() const { return base_; }
  /// The log's first index (`base().index + 1`, also when the log is empty) and last index.
  uint64_t first_index() const { return base_.index + 1; }
  uint64_t last_index() const { return base_.index + entry_locations_.size(); }

  /// What `recover` had to repair, for the operator's log; empty if the directory was clean.
  const std::string& recovery_report() const { return recovery_report_; }
  /// Partial records cut off the tail by `recover`.
  uint64_t entries_dropped() const { return entries_dropped_; }
  uint64_t bytes_dropped() const { return bytes_dropped_; }

  const file_storage_stats& stats() const { return stats_; }
  const std::string& directory() const { return directory_; }

 private:
  struct segment {
    uint64_t first_index = 0;
    /// Including bytes still in the write buffer.
    uint64_t size = 0;
  };

  /// Where entry `i` lives, at `entry_locations_[i - base_.index - 1]`. The term is kept so
  /// appends can be checked against the entry they follow without reading the disk.
  struct entry_location {
    std::size_t segment = 0;
    uint64_t offset = 0;
    uint64_t term = 0;
  };

  /// Contents of the hard state file.
  struct hard_state_record {
    hard_state state;
    uint64_t commit_hint = 0;
    log_base base;
    /// A reset to `base` began: every segment must go before the log may grow again.
    bool reset_in_progress = false;
  };

  /// A cut of the log at `offset` of the segment starting at `first_index`; every later segment
  /// goes too.
  struct log_cut {
    uint64_t first_index = 0;
    uint64_t offset = 0;
    /// No entry is left before the cut: the file goes.
    bool remove_file = false;
    /// The later segments, oldest first.
    std::vector<uint64_t> later_first_indexes;
  };

  struct scan_result;

  std::string path_of(const std::string& file_name) const;
  std::string segment_path(std::size_t position) const;
  /// Term of the entry at `index`, which is the base or in the log.
  uint64_t term_at(uint64_t index) const;
  /// The hint the next hard state file would record: only indexes the synced log covers.
  uint64_t wanted_commit_hint() const;

  void require_usable(const char* operation) const;
  void validate(const persist_request& request) const;

  hard_state_record read_hard_state_file();
  /// Keeps the recorded base (no reset may be under way).
  void write_hard_state_file(const hard_state& state, uint64_t commit_hint);
  void write_hard_state_file(const hard_state& state, uint64_t commit_hint, const log_base& base,
                             bool reset_in_progress);
  std::optional<node_identity> read_identity_file();
  void write_identity_file(const node_identity& id);
  void write_atomically(const std::string& name, const std::string& temp_name,
                        const std::string& bytes);
  scan_result scan_log(const std::vector<uint64_t>& first_indexes);
  /// Returns the first index of the segment it truncated and synced, if any.
  std::optional<uint64_t> apply_cut(const log_cut& cut);
  void remove_leftover_temp_files();
  /// Removes leftover temp files and segments at or below the base, finishes an interrupted
  /// reset, writes the first hard state file of a `fresh` directory, cuts, and makes everything
  /// recovered durable.
  void finish_recovery(const std::optional<log_cut>& cut, bool fresh);

  /// Makes the latest requested hard state durable. Called before anything a later request
  /// changes in the log reaches the kernel.
  void persist_pending_hard_state();
  void truncate_log_from(uint64_t index);
  /// Durable on return: the new base, then the whole segments below it removed.
  void compact_log(uint64_t through);
  /// Durable on return: the new base with the reset flag, every segment removed, the flag
  /// cleared. Writes the pending hard state along with the new base.
  void reset_log(const log_base& to);
  void append_entry(const log_entry& entry);
  void append_marker();
  void start_segment(uint64_t first_index);
  void open_current_segment();
  void flush_write_buffer();
  void sync_file(file_system::file& file);
  void sync_directory();

  std::string directory_;
  file_storage_options options_;
  std::shared_ptr<file_system> fs_;
  std::unique_ptr<file_system::lock> lock_;

  bool recovered_ = false;
  /// Set when an I/O error left the files in an unknown state. After a failed fsync the kernel
  /// may already have dropped the dirty pages, so retrying could report success for lost data.
  bool failed_ = false;
  /// Damage found by `recover` and the cut that repairs it, until `accept_repair`.
  std::optional<storage_damage> damage_;
  std::optional<log_cut> repair_cut_;
  /// Temp files a crash left before their rename, removed once recovery changes the disk.
  std::vector<std::string> leftover_temp_files_;
  /// Segments entirely at or below the recorded base (a compaction or reset a crash
  /// interrupted), oldest first, removed once recovery changes the disk.
  std::vector<uint64_t> doomed_segments_;

  /// Equal to `persisted_.base` except inside `compact_log` and `reset_log`.
  log_base base_;
  std::vector<segment> segments_;
  std::vector<entry_location> entry_locations_;
  /// Open for `segments_.back()` once something needs to be written there.
  std::unique_ptr<file_system::file> current_file_;
  /// Bytes of the current segment already handed to the kernel.
  uint64_t flushed_size_ = 0;
  std::string write_buffer_;
  bool current_segment_unsynced_ = false;
  bool directory_unsynced_ = false;
  /// Entries up to here are durable (file and directory entry synced).
  uint64_t synced_last_index_ = 0;
  /// Everything in the current segment before `flushed_size_` is synced and no marker says so
  /// yet: the next write to it starts with one.
  bool marker_pending_ = false;

  hard_state_record persisted_;
  /// Written before the log changes on disk, or by `sync`, whichever comes first; so a run of
  /// requests that each carry a hard state costs one replace.
  std::optional<hard_state> pending_hard_state_;
  /// Highest commit index requested since the last truncation below it.
  uint64_t requested_commit_index_ = 0;
  /// A segment rolled over while the hint was behind: record it soon.
  bool commit_hint_urgent_ = false;

  std::optional<node_identity> identity_;

  std::string recovery_report_;
  uint64_t entries_dropped_ = 0;
  uint64_t bytes_dropped_ = 0;
  file_storage_stats stats_;
};

} // namespace infinity
