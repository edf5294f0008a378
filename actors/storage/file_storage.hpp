// Durable storage backend: a data directory on a local POSIX file system.
//
// Layout of the directory:
//   LOCK                          flock'ed for the lifetime of the object: one process per dir.
//   hard_state                    one CRC'd record (term, voted_for), replaced atomically.
//   log-<first index, 20 digits>.seg
//                                 append-only segments; zero padding makes lexical order numeric.
//
// Every record, in segments and in the hard state file, is framed as
//   u32 payload length | u32 CRC32C(payload) | payload            (all integers little-endian)
// A log payload is term u64 | index u64 | kind u8 | data; a hard state payload is
// term u64 | voted_for bytes.
//
// Crash model: a crash may tear or lose anything written after the last `sync()`. Recovery
// therefore forgives damage at the very end of the log, and only there: anything else means the
// disk lost data it had promised to keep, and recovery refuses to guess.
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
  /// split, so a segment can overshoot by one record.
  uint64_t max_segment_bytes = uint64_t{64} * 1024 * 1024;
  /// Appends collect in memory up to this size before they are handed to the kernel, so a burst
  /// of small entries costs few system calls.
  std::size_t write_buffer_bytes = std::size_t{1} << 20;
};

/// Counts of the expensive system calls, so tests and benchmarks can check group commit.
struct file_storage_stats {
  /// fsync/fdatasync of regular files.
  uint64_t file_syncs = 0;
  uint64_t directory_syncs = 0;
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;
};

class file_storage final : public storage_backend {
 public:
  /// Creates `directory` if needed and locks it. Throws `std::runtime_error` naming the path if
  /// it cannot be created or opened, or if another process (or object) holds the lock. `fs` is
  /// where the files live; null means the local file system.
  explicit file_storage(std::string directory, file_storage_options options = {},
                        std::shared_ptr<file_system> fs = nullptr);
  ~file_storage() override;

  file_storage(const file_storage&) = delete;
  file_storage& operator=(const file_storage&) = delete;

  /// Must be called exactly once, before the first `write`. Cuts off a torn tail (see
  /// `recovery_report`) and throws `std::runtime_error` for any other damage.
  recovered_state recover() override;

  /// Throws `std::logic_error` for a request that would break the log's invariants (index gaps,
  /// decreasing terms, a term going back), before changing anything.
  void write(const persist_request& request) override;

  void sync() override;

  /// What `recover` had to repair, for the operator's log; empty if the directory was clean.
  const std::string& recovery_report() const { return recovery_report_; }
  /// Partial or corrupt records cut off the tail by `recover`.
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

  /// Where entry `i` lives, at `entry_locations_[i - 1]`. The term is kept so appends can be
  /// checked against the entry they follow without reading the disk.
  struct entry_location {
    std::size_t segment = 0;
    uint64_t offset = 0;
    uint64_t term = 0;
  };

  std::string path_of(const std::string& file_name) const;
  std::string segment_path(std::size_t position) const;
  uint64_t last_index() const { return entry_locations_.size(); }

  void require_usable(const char* operation) const;
  void validate(const persist_request& request) const;

  hard_state read_hard_state_file();
  void write_hard_state_file(const hard_state& state);
  void load_segments(const std::vector<uint64_t>& first_indexes, recovered_state& result);
  void cut_torn_tail(const std::string& path, const std::string& bytes, uint64_t offset,
                     const std::string& problem);

  /// Makes the latest requested hard state durable. Called before anything a later request
  /// changes in the log reaches the kernel.
  void persist_pending_hard_state();
  void truncate_log_from(uint64_t index);
  void append_entry(const log_entry& entry);
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

  std::vector<segment> segments_;
  std::vector<entry_location> entry_locations_;
  /// Open for `segments_.back()` once something needs to be written there.
  std::unique_ptr<file_system::file> current_file_;
  /// Bytes of the current segment already handed to the kernel.
  uint64_t flushed_size_ = 0;
  std::string write_buffer_;
  bool current_segment_unsynced_ = false;
  bool directory_unsynced_ = false;

  hard_state persisted_hard_state_;
  /// Written by `sync`, or before the log changes on disk, whichever comes first; so a run of
  /// requests that each carry a hard state costs one replace.
  std::optional<hard_state> pending_hard_state_;

  std::string recovery_report_;
  uint64_t entries_dropped_ = 0;
  uint64_t bytes_dropped_ = 0;
  file_storage_stats stats_;
};

} // namespace infinity
