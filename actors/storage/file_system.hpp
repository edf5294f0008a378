// The file operations `file_storage` needs, behind an interface so tests can run it on a simulated
// disk that loses power at any system call (`tests/support/sim_file_system.hpp`).
//
// Every failure throws: `posix_file_system` throws `std::runtime_error` naming the path and the
// errno text; a simulated file system may also throw its own exception type to stop the caller
// as a killed process would stop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace infinity {

class file_system {
 public:
  /// An open regular file. Destroying it closes it; close errors are ignored because durability
  /// comes only from `sync_data`.
  class file {
   public:
    virtual ~file() = default;
    /// Writes all of `bytes` at `offset` (pwrite), extending the file as needed.
    virtual void write_at(uint64_t offset, std::string_view bytes) = 0;
    /// Reads up to `max_bytes` at `offset` (pread); fewer only at the end of the file. For files
    /// too large to read whole (snapshots).
    virtual std::string read_at(uint64_t offset, std::size_t max_bytes) = 0;
    virtual uint64_t size() = 0;
    /// ftruncate.
    virtual void truncate(uint64_t size) = 0;
    /// fdatasync: this file's data and size are durable on return.
    virtual void sync_data() = 0;
  };

  /// Held until destroyed.
  class lock {
   public:
    virtual ~lock() = default;
  };

  enum class open_mode {
    /// The file must exist.
    existing,
    /// Create it; it must not exist yet (O_CREAT | O_EXCL).
    create_new,
    /// Create it, or empty it if it exists (O_CREAT | O_TRUNC).
    create_or_truncate,
  };

  virtual ~file_system() = default;

  /// Creates `path` and any missing parents; true if `path` itself was created. The caller makes
  /// the new entry durable with `sync_directory` of the parent.
  virtual bool create_directories(const std::string& path) = 0;
  virtual std::unique_ptr<file> open(const std::string& path, open_mode mode) = 0;
  virtual std::string read_file(const std::string& path) = 0;
  /// fsync of a directory: its earlier creations, renames and deletions are durable on return.
  virtual void sync_directory(const std::string& path) = 0;
  /// Atomically replaces `to` (same directory).
  virtual void rename(const std::string& from, const std::string& to) = 0;
  virtual void remove(const std::string& path) = 0;
  /// Names (not paths) of the entries of a directory, in no particular order.
  virtual std::vector<std::string> list_directory(const std::string& path) = 0;
  /// Creates `path` if needed and locks it exclusively; null if someone else holds the lock.
  virtual std::unique_ptr<lock> try_lock(const std::string& path) = 0;
};

/// The real thing: POSIX calls on the local file system.
class posix_file_system final : public file_system {
 public:
  bool create_directories(const std::string& path) override;
  std::unique_ptr<file> open(const std::string& path, open_mode mode) override;
  std::string read_file(const std::string& path) override;
  void sync_directory(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  std::vector<std::string> list_directory(const std::string& path) override;
  std::unique_ptr<lock> try_lock(const std::string& path) override;
};

} // namespace infinity
