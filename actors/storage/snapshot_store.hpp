// Durable snapshots of the state machine: written locally, sent to a follower in chunks, received
// in chunks, chosen at recovery. CAF-free, on the `file_system` seam like `file_storage`, so the
// crash tests run it on a simulated disk that loses power at any call.
//
// Layout of `<data directory>/snapshots/`:
//   LOCK         flock'ed for the lifetime of the store: one process per directory.
//   snap-<index, 20 digits>-<term, 20 digits>.snap
//                a finished snapshot; visible only once complete and durable.
//   snap-<index>-<term>.snap.tmp
//                being written by a `snapshot_writer`; removed when the store is opened.
//   recv-<index>-<term>-<total size, 20 digits>.part
//                being received by a `snapshot_receiver`: the first bytes of the snapshot file as
//                the leader sent them. Its name is its expected meta, so it survives a restart.
//   recv-<index>-<term>-<total size>.prog
//                how much of the .part is durable (two slots, see below); nothing = 0.
//
// Snapshot file (little-endian), read front to back:
//   "ISNP" | version u32 (1) | index u64 | term u64 | membership length u32 | membership |
//   config index u64 | body length u64 | body | CRC32C u32 of every byte before it
// The membership is opaque here (the encoded membership in effect at `index`; `config index` is
// the index of the entry that set it). The body is opaque too (what the state machine wrote).
//
// Progress slot (24 bytes at offset 0 or 512 of the .prog file, alternately):
//   "IRP1" | sequence u64 | durable length u64 | CRC32C u32 of the 20 bytes before it
// The valid slot with the higher sequence wins. A slot is written only after the .part was
// fdatasync'ed up to its length, so it never claims bytes a crash could lose; a torn slot write
// damages only that slot, and the other still holds the previous length.
//
// Crash safety:
// - Writing: temp file, writes, fdatasync, rename, directory fsync. A crash before the rename
//   leaves only a temp file (removed at the next open); after it, the file is complete and its
//   data durable, so a visible snapshot is always whole, and durable once `finish` returns.
// - Receiving: creating the .part and .prog is made durable before the first chunk, so a
//   receive survives a restart; `sync` makes the received bytes durable (data, then progress);
//   after a crash the receive resumes at the durable length, cutting anything after it. `finish`
//   syncs, checks the CRC and the header against the expected meta, then renames and syncs the
//   directory, like a write. A bad file is discarded and the sender starts over.
// - Deleting (`retain`, `remove`, discarding a receive): a crash may leave some of the files;
//   each one left is still whole.
// What the simulated disk cannot show: it keeps namespace operations of one directory in the
// order they were issued, so an ordering that relies on a directory fsync between two of them
// is argued here, not tested.
//
// Threads: a store and the objects it returns are used from one thread at a time, except pins
// (`snapshot_pin`, readers), which may be taken and dropped from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/storage/file_system.hpp"

namespace infinity {

/// The CRC32C of A followed by B, from the CRC32C of A, that of B and B's length (as zlib's
/// crc32_combine). Lets a writer checksum a header it completes only after the body.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

/// What a snapshot is of: the state after applying every entry up to `index` (whose term is
/// `term`), and the membership in effect there.
struct snapshot_meta {
  uint64_t index = 0;
  uint64_t term = 0;
  /// Index of the entry that set `membership` (0 for the initial one). Opaque here.
  uint64_t config_index = 0;
  /// The encoded membership. Opaque here.
  std::string membership;
};

/// A snapshot file as its name describes it; listing reads nothing else, so a corrupt file is
/// still listed (and `newest_valid` can say what is wrong with it).
struct snapshot_file {
  uint64_t index = 0;
  uint64_t term = 0;
  std::string path;
};

/// A snapshot `newest_valid` skipped, and why.
struct rejected_snapshot {
  snapshot_file file;
  std::string reason;
};

/// What recovery should start from.
struct snapshot_choice {
  /// Empty if no snapshot is usable (then the log must start at index 1, or the node needs one
  /// from the leader).
  std::optional<snapshot_file> file;
  snapshot_meta meta;
  /// Newer snapshots that were corrupt, and any too old to be used with the log, newest first.
  std::vector<rejected_snapshot> rejected;
};

/// A receive a crash (or a restart) interrupted, as found on disk.
struct pending_receive {
  uint64_t index = 0;
  uint64_t term = 0;
  uint64_t total_size = 0;
  /// Bytes of it that are durable: where the sender should resume.
  uint64_t durable_size = 0;
};

namespace snapshot_detail {
struct shared;
} // namespace snapshot_detail

/// Keeps a snapshot file from being deleted by `retain` or `remove` while it lives. Move-only.
class snapshot_pin {
 public:
  snapshot_pin() = default;
  snapshot_pin(snapshot_pin&& other) noexcept;
  snapshot_pin& operator=(snapshot_pin&& other) noexcept;
  snapshot_pin(const snapshot_pin&) = delete;
  snapshot_pin& operator=(const snapshot_pin&) = delete;
  ~snapshot_pin();

  const std::string& path() const { return path_; }

 private:
  friend class snapshot_store;
  snapshot_pin(std::shared_ptr<snapshot_detail::shared> shared, std::string path);
  void release();

  std::shared_ptr<snapshot_detail::shared> shared_;
  std::string path_;
};

/// Writes one snapshot: created by `snapshot_store::begin`, fed with `append` (the body, in
/// pieces of any size; at most `buffer_bytes` are held in memory), made durable and visible by
/// `finish`. Destroying it unfinished aborts it.
class snapshot_writer {
 public:
  snapshot_writer(snapshot_writer&&) noexcept;
  snapshot_writer& operator=(snapshot_writer&&) noexcept;
  snapshot_writer(const snapshot_writer&) = delete;
  snapshot_writer& operator=(const snapshot_writer&) = delete;
  ~snapshot_writer();

  /// Appends to the body. Throws `std::logic_error` after `finish` or `abort`.
  void append(std::string_view bytes);
  /// Completes the header and the CRC, fdatasync, rename, directory fsync: durable and visible
  /// (in `list`) on return. Replaces a snapshot of the same index and term.
  snapshot_file finish();
  /// Removes the temp file (no sync: a leftover is removed at the next open). No-op if done.
  void abort();

  uint64_t body_size() const { return body_size_; }

 private:
  friend class snapshot_store;
  snapshot_writer(std::shared_ptr<snapshot_detail::shared> shared, const snapshot_meta& meta);
  void flush();

  std::shared_ptr<snapshot_detail::shared> shared_;
  snapshot_meta meta_;
  std::string temp_path_;
  std::string final_path_;
  std::unique_ptr<file_system::file> file_;
  std::string header_;
  std::string buffer_;
  uint64_t body_size_ = 0;
  uint64_t unsynced_bytes_ = 0;
  uint32_t body_crc_ = 0;
  bool done_ = false;
};

/// Reads one snapshot, pinned while the reader lives. Its header was checked when it was opened;
/// the body only by `verify`.
class snapshot_reader {
 public:
  const snapshot_meta& meta() const { return meta_; }
  const snapshot_file& file() const { return file_; }
  uint64_t body_size() const { return body_size_; }
  /// The whole file: what a leader sends, byte for byte.
  uint64_t file_size() const { return file_size_; }

  /// Streams through the whole file and checks its CRC. Empty if intact, else what is wrong.
  std::optional<std::string> verify();
  /// Up to `max_bytes` of the file from `offset` (fewer only at its end): chunks to send.
  std::string read(uint64_t offset, std::size_t max_bytes);
  /// Up to `max_bytes` of the body from `offset`: for the state machine to restore from.
  std::string read_body(uint64_t offset, std::size_t max_bytes);

 private:
  friend class snapshot_store;
  snapshot_reader() = default;

  snapshot_pin pin_;
  snapshot_file file_;
  snapshot_meta meta_;
  std::unique_ptr<file_system::file> handle_;
  uint64_t body_offset_ = 0;
  uint64_t body_size_ = 0;
  uint64_t file_size_ = 0;
};

/// Receives one snapshot file in chunks (a follower). Chunks must come in order: one at another
/// offset than the bytes received so far is refused with that size, so the sender resumes there
/// after a lost, repeated or reordered chunk.
class snapshot_receiver {
 public:
  struct write_result {
    bool accepted = false;
    /// Bytes received so far (after this chunk, if accepted).
    uint64_t size = 0;
  };
  /// Empty `problem` iff `file` is set.
  struct finish_result {
    std::optional<snapshot_file> file;
    std::string problem;
  };

  snapshot_receiver(snapshot_receiver&&) noexcept;
  snapshot_receiver& operator=(snapshot_receiver&&) noexcept;
  snapshot_receiver(const snapshot_receiver&) = delete;
  snapshot_receiver& operator=(const snapshot_receiver&) = delete;
  /// Leaves the partial file for a later receive to resume (or discard).
  ~snapshot_receiver();

  /// Accepts `bytes` only at `offset == size()` and within the total size; handed to the
  /// kernel, durable only after `sync`.
  write_result write(uint64_t offset, std::string_view bytes);
  /// Makes every accepted byte durable (the .part's data, then its progress): acknowledge a
  /// chunk only after this. Two fdatasyncs; nothing if nothing new was accepted.
  void sync();
  /// Once all bytes are in: syncs, checks the CRC and that the header is of the expected index
  /// and term, then makes the snapshot durable and visible. A bad file is discarded (a problem is
  /// returned and the sender must start over). Throws `std::logic_error` before all bytes are in.
  finish_result finish();
  /// Removes the partial files (no sync: leftovers are removed by the next receive).
  void abort();

  uint64_t index() const { return index_; }
  uint64_t term() const { return term_; }
  uint64_t total_size() const { return total_size_; }
  uint64_t size() const { return size_; }
  uint64_t durable_size() const { return durable_size_; }

 private:
  friend class snapshot_store;
  snapshot_receiver() = default;
  void write_progress(uint64_t length);

  std::shared_ptr<snapshot_detail::shared> shared_;
  uint64_t index_ = 0;
  uint64_t term_ = 0;
  uint64_t total_size_ = 0;
  std::string part_path_;
  std::string progress_path_;
  std::unique_ptr<file_system::file> part_;
  std::unique_ptr<file_system::file> progress_;
  uint64_t size_ = 0;
  uint64_t durable_size_ = 0;
  uint64_t progress_sequence_ = 0;
  bool done_ = false;
};

class snapshot_store {
 public:
  /// Opens (creating it if needed, durably) `<data_directory>/snapshots`, locks it, and removes
  /// what a crash left that can never become a snapshot: writers' temp files and progress
  /// files without their .part. Throws `std::runtime_error` naming the path if it cannot, or if
  /// another process (or object) holds the lock. `fs` null means the local file system.
  explicit snapshot_store(const std::string& data_directory,
                          std::shared_ptr<file_system> fs = nullptr);
  ~snapshot_store();
  snapshot_store(const snapshot_store&) = delete;
  snapshot_store& operator=(const snapshot_store&) = delete;

  /// Finished snapshots, newest (highest index, then term) first. Reads only names.
  std::vector<snapshot_file> list();

  /// Starts writing a snapshot. Throws `std::logic_error` for index 0, or a term 0 above it.
  snapshot_writer begin(const snapshot_meta& meta);

  /// Opens a snapshot and checks its header (not the body: see `verify`). Throws
  /// `std::runtime_error` naming the file if the header is unreadable or disagrees with the name.
  snapshot_reader open(const snapshot_file& file);

  /// Protects `file` from `retain` and `remove` while the pin lives (a reader pins its file).
  snapshot_pin pin(const snapshot_file& file);

  /// Deletes every snapshot older than the newest `keep`, except pinned ones, which stay.
  /// Returns what it deleted; one directory fsync if anything. Throws `std::logic_error` for
  /// `keep == 0`. Counts files, not valid ones: call it after a snapshot was finished (or
  /// received), which is then whole, so a corrupt older one never displaces it.
  std::vector<snapshot_file> retain(std::size_t keep);
  /// Deletes one snapshot durably (e.g. one `newest_valid` rejected). Throws `std::logic_error`
  /// if it is pinned.
  void remove(const snapshot_file& file);

  /// The newest snapshot that is intact and usable with a log whose first entry is
  /// `log_first_index` (the base's index + 1): verified in full, newest first. An older snapshot
  /// is used only if the log covers every entry after it (`index + 1 >= log_first_index`);
  /// otherwise state would be missing between it and the log. Every snapshot skipped on the way
  /// is reported with the reason.
  snapshot_choice newest_valid(uint64_t log_first_index);

  /// The receive a crash or restart interrupted, if any (the newest if, oddly, several).
  std::optional<pending_receive> pending();
  /// Starts receiving the snapshot (index, term) whose file has `total_size` bytes, or resumes
  /// the interrupted receive of exactly that one (at its durable size, cutting what was not
  /// synced). Any other partial receive is discarded: the install now under way supersedes it.
  /// The new partial files are durable on return.
  snapshot_receiver receive(uint64_t index, uint64_t term, uint64_t total_size);

  const std::string& directory() const;
  /// What opening removed, for the operator's log; empty if nothing.
  const std::string& open_report() const { return open_report_; }

 private:
  std::shared_ptr<snapshot_detail::shared> shared_;
  std::unique_ptr<file_system::lock> lock_;
  std::string open_report_;
};

} // namespace infinity
