// A simulated file system that can lose power at any system call, after the crash models of
// ALICE (Pillai et al., OSDI 2014) and CrashMonkey (Mohan et al., OSDI 2018).
//
// Every call counts toward `fail_after`, reads (read_file, read_at, list_directory, size) too.
// Every mutating call (write, truncate, create, rename, remove, mkdir) is recorded in issue
// order. `file::sync_data` makes that file's earlier writes and truncations durable;
// `sync_directory` makes the earlier creations, renames and removals in that directory durable.
// A crash leaves every durable operation plus a prefix, in issue order, of the others, and may
// tear the last write it keeps (only its first bytes arrive, or some of its 512-byte sectors never
// do and read back as what was there before: zeros for fresh space) or corrupt one of its bytes.
//
// `fail_after(n)` kills the simulated process at its n-th next call: that call throws `crashed`
// without taking effect, and so does every later call until the test picks the crash outcome with
// `crash_keeping` or `crash`, which also starts a new "boot": files and locks opened before it
// are dead (their calls throw `crashed`) and everything on the simulated disk is durable.
//
// Cost: O(bytes written). Each write is copied once into the operation record, which is dropped
// when the write becomes durable; only a crash copies whole files. Copying the object snapshots
// the whole disk, so a test can try every crash outcome of one state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "actors/storage/file_system.hpp"

namespace infinity {

enum class sim_tear_kind : uint8_t {
  none,
  /// Only the first `keep_bytes` bytes of the write arrive.
  keep_prefix,
  /// The sectors listed in `lost_sectors` (0 = the sector holding the write's first byte) never
  /// arrive; the file is as long as if they had.
  lose_sectors,
  /// The write arrives with its byte at `byte` xor'ed with `mask` (a corruption, not a crash).
  flip_byte,
};

/// What happens to the last operation a crash keeps, if it is a write.
struct sim_tear_options {
  sim_tear_kind kind = sim_tear_kind::none;
  std::size_t keep_bytes = 0;
  std::vector<std::size_t> lost_sectors;
  std::size_t byte = 0;
  uint8_t mask = 0x5A;
};

struct sim_crash_options {
  /// Chance that a kept last write is torn (half prefix, half lost sectors).
  double tear_probability = 0.25;
  /// Chance that a kept last write has a byte flipped instead. Not something a power cut does:
  /// only for tests of corruption detection.
  double corrupt_probability = 0.0;
};

/// How a crash turned out, to report or replay it with `crash_keeping`.
struct sim_crash_outcome {
  std::size_t prefix = 0;
  std::size_t unsynced = 0;
  sim_tear_options tear;
  std::string describe() const;
};

class sim_file_system final : public file_system {
 public:
  /// The simulated process died at this call (or its machine lost power before it).
  struct crashed : std::exception {
    const char* what() const noexcept override { return "sim_file_system: crashed"; }
  };

  static constexpr std::size_t sector_bytes = 512;

  using tear_kind = sim_tear_kind;
  using tear_options = sim_tear_options;
  using crash_options = sim_crash_options;
  using crash_outcome = sim_crash_outcome;

  sim_file_system();
  sim_file_system(const sim_file_system& other);
  sim_file_system& operator=(const sim_file_system&) = delete;
  ~sim_file_system() override;

  // -- file_system ----------------------------------------------------------------------------

  bool create_directories(const std::string& path) override;
  std::unique_ptr<file> open(const std::string& path, open_mode mode) override;
  std::string read_file(const std::string& path) override;
  void sync_directory(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  std::vector<std::string> list_directory(const std::string& path) override;
  std::unique_ptr<lock> try_lock(const std::string& path) override;

  // -- faults ---------------------------------------------------------------------------------

  /// The `n`-th next call (n >= 1) throws `crashed` and does nothing; 0 cancels.
  void fail_after(uint64_t n);
  /// Calls made so far, failed ones included.
  uint64_t call_count() const { return calls_; }
  /// True once a call threw `crashed`, until the next `crash_keeping` or `crash`.
  bool is_down() const { return down_; }

  /// Mutating operations a crash could still lose, in issue order.
  std::size_t unsynced_operation_count() const { return pending_.size(); }
  /// Size of the `position`-th unsynced operation if it is a write (0-based), else 0.
  std::size_t unsynced_write_size(std::size_t position) const;
  /// How many sectors that write touches (what `lost_sectors` counts in), 0 if it is none.
  std::size_t unsynced_write_sectors(std::size_t position) const;
  /// One line per unsynced operation, for failure messages.
  std::string describe_unsynced() const;

  /// Power cut: keeps every durable operation and the first `prefix` unsynced ones, with `tear`
  /// applied to the last kept one (which must then be a write), then boots again.
  void crash_keeping(std::size_t prefix, const tear_options& tear = {});
  /// Power cut with the prefix and the tear drawn from `rng`.
  crash_outcome crash(std::mt19937_64& rng, const crash_options& options = {});

  // -- inspection and surgery (as if done while the node was down: durable at once) -------------

  bool exists(const std::string& path) const;
  /// Current contents of a file; throws std::out_of_range if there is none.
  std::string contents(const std::string& path) const;
  void set_contents(const std::string& path, const std::string& bytes);
  void flip_byte(const std::string& path, std::size_t offset, uint8_t mask = 0x5A);
  void delete_file(const std::string& path);
  /// Names of the files in a directory, sorted.
  std::vector<std::string> file_names(const std::string& directory) const;

 private:
  class sim_file;
  class sim_lock;

  struct inode {
    std::string data;
    std::string durable;
    /// Unsynced data operations on it (ids into `pending_`), in issue order.
    std::vector<uint64_t> pending;
    unsigned open_handles = 0;
  };

  enum class op_kind : uint8_t { write, truncate, create, rename, remove, mkdir };

  struct operation {
    op_kind kind = op_kind::write;
    uint64_t inode = 0;
    uint64_t offset = 0; // write position, or the size a truncation leaves
    std::string bytes;
    std::string path;   // create, rename (source), remove, mkdir
    std::string target; // rename
    std::string directory;
  };

  struct namespace_state {
    std::map<std::string, uint64_t> files;
    std::set<std::string> directories;
  };

  void enter_call();
  void check_handle(uint64_t generation) const;
  static std::string normalize(const std::string& path);
  static std::string parent_of(const std::string& path);
  void require_directory(const std::string& directory, const std::string& path) const;
  uint64_t lookup(const std::string& path) const;

  uint64_t record(operation op);
  void record_data(uint64_t inode_id, operation op);
  void record_namespace(operation op);
  static void apply_data(std::string& data, const operation& op, const tear_options* tear);
  static void apply_namespace(namespace_state& state, const operation& op);
  void sync_inode(uint64_t inode_id);
  void collect_garbage();

  uint64_t calls_ = 0;
  uint64_t fail_at_ = 0;
  bool down_ = false;
  uint64_t generation_ = 1;

  uint64_t next_inode_ = 1;
  std::map<uint64_t, inode> inodes_;
  namespace_state current_;
  namespace_state durable_;
  /// Unsynced operations by id (= issue order).
  std::map<uint64_t, operation> pending_;
  uint64_t next_op_ = 1;
  /// Unsynced namespace operations per directory.
  std::map<std::string, std::vector<uint64_t>> pending_by_directory_;
  std::set<std::string> locked_;
};

/// Every crash outcome of the unsynced operations of `crashed`, each on its own copy: each prefix,
/// and with `with_tears`, for a kept last write also its tears (a few prefixes of it, its first,
/// second and last sector lost, and a random set of lost sectors). `check` gets the copy after
/// the crash and a description of the outcome.
void for_each_crash_outcome(const sim_file_system& crashed,
                            const std::function<void(sim_file_system&, const std::string&)>& check,
                            bool with_tears = true);

} // namespace infinity
