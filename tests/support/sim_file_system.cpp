#include "tests/support/sim_file_system.hpp"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace infinity {
namespace {

[[noreturn]] void fail(const std::string& action, const std::string& path, const char* reason) {
  throw std::runtime_error("file_storage: cannot " + action + " '" + path + "': " + reason);
}

} // namespace

// -- handles
// ---------------------------------------------------------------------------------------

class sim_file_system::sim_file final : public file_system::file {
 public:
  sim_file(sim_file_system& fs, uint64_t inode_id)
      : fs_(fs), inode_(inode_id), generation_(fs.generation_) {
    ++fs_.inodes_.at(inode_).open_handles;
  }
  ~sim_file() override {
    if (generation_ == fs_.generation_)
      --fs_.inodes_.at(inode_).open_handles;
  }

  void write_at(uint64_t offset, std::string_view bytes) override {
    enter();
    operation op;
    op.kind = op_kind::write;
    op.offset = offset;
    op.bytes.assign(bytes.data(), bytes.size());
    fs_.record_data(inode_, std::move(op));
  }

  std::string read_at(uint64_t offset, std::size_t max_bytes) override {
    enter();
    const std::string& data = fs_.inodes_.at(inode_).data;
    if (offset >= data.size())
      return {};
    return data.substr(static_cast<std::size_t>(offset), max_bytes);
  }

  uint64_t size() override {
    enter();
    return fs_.inodes_.at(inode_).data.size();
  }

  void truncate(uint64_t size) override {
    enter();
    operation op;
    op.kind = op_kind::truncate;
    op.offset = size;
    fs_.record_data(inode_, std::move(op));
  }

  void sync_data() override {
    enter();
    fs_.sync_inode(inode_);
  }

 private:
  void enter() {
    fs_.check_handle(generation_);
    fs_.enter_call();
  }

  sim_file_system& fs_;
  uint64_t inode_;
  uint64_t generation_;
};

class sim_file_system::sim_lock final : public file_system::lock {
 public:
  sim_lock(sim_file_system& fs, std::string path)
      : fs_(fs), path_(std::move(path)), generation_(fs.generation_) {}
  ~sim_lock() override {
    if (generation_ == fs_.generation_)
      fs_.locked_.erase(path_);
  }

 private:
  sim_file_system& fs_;
  std::string path_;
  uint64_t generation_;
};

// -- bookkeeping
// -----------------------------------------------------------------------------------

sim_file_system::sim_file_system() {
  for (const char* root : {"/", "."}) {
    current_.directories.insert(root);
    durable_.directories.insert(root);
  }
}

sim_file_system::sim_file_system(const sim_file_system& other)
    : file_system(), calls_(other.calls_), fail_at_(other.fail_at_), down_(other.down_),
      generation_(other.generation_), next_inode_(other.next_inode_), inodes_(other.inodes_),
      current_(other.current_), durable_(other.durable_), pending_(other.pending_),
      next_op_(other.next_op_), pending_by_directory_(other.pending_by_directory_), locked_() {
  // Handles and locks belong to the original; the copy starts with none.
  for (auto& [id, node] : inodes_)
    node.open_handles = 0;
  ++generation_;
}

sim_file_system::~sim_file_system() = default;

void sim_file_system::enter_call() {
  if (down_)
    throw crashed{};
  ++calls_;
  if (fail_at_ != 0 && calls_ == fail_at_) {
    fail_at_ = 0;
    down_ = true;
    throw crashed{};
  }
}

void sim_file_system::check_handle(uint64_t generation) const {
  if (generation != generation_)
    throw crashed{}; // opened by a process that died since
}

void sim_file_system::fail_after(uint64_t n) {
  fail_at_ = n == 0 ? 0 : calls_ + n;
}

std::string sim_file_system::normalize(const std::string& path) {
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/')
    normal.pop_back();
  return normal.empty() ? "." : normal;
}

std::string sim_file_system::parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void sim_file_system::require_directory(const std::string& directory,
                                        const std::string& path) const {
  if (current_.directories.count(directory) == 0)
    fail("open", path, "No such file or directory");
}

uint64_t sim_file_system::lookup(const std::string& path) const {
  auto it = current_.files.find(path);
  if (it == current_.files.end())
    fail("open", path, "No such file or directory");
  return it->second;
}

uint64_t sim_file_system::record(operation op) {
  const uint64_t id = next_op_++;
  pending_.emplace(id, std::move(op));
  return id;
}

void sim_file_system::record_data(uint64_t inode_id, operation op) {
  inode& node = inodes_.at(inode_id);
  op.inode = inode_id;
  apply_data(node.data, op, nullptr);
  node.pending.push_back(record(std::move(op)));
}

void sim_file_system::record_namespace(operation op) {
  apply_namespace(current_, op);
  const std::string directory = op.directory;
  pending_by_directory_[directory].push_back(record(std::move(op)));
}

void sim_file_system::apply_data(std::string& data, const operation& op, const tear_options* tear) {
  if (op.kind == op_kind::truncate) {
    data.resize(op.offset, '\0');
    return;
  }
  assert(op.kind == op_kind::write);
  const std::size_t offset = op.offset;
  std::size_t length = op.bytes.size();
  if (tear && tear->kind == tear_kind::keep_prefix)
    length = std::min(length, tear->keep_bytes);
  if (length == 0)
    return; // nothing arrived, not even a hole: a write past the end leaves the size alone
  if (data.size() < offset + length)
    data.resize(offset + length, '\0');
  if (!tear || tear->kind != tear_kind::lose_sectors) {
    data.replace(offset, length, op.bytes, 0, length);
  } else {
    // What was there before stays in the lost sectors: zeros where the file grew.
    const std::size_t first_sector = offset / sector_bytes;
    for (std::size_t i = 0; i < length; ++i) {
      const std::size_t sector = (offset + i) / sector_bytes - first_sector;
      if (std::find(tear->lost_sectors.begin(), tear->lost_sectors.end(), sector) ==
          tear->lost_sectors.end())
        data[offset + i] = op.bytes[i];
    }
  }
  if (tear && tear->kind == tear_kind::flip_byte && tear->byte < length)
    data[offset + tear->byte] = static_cast<char>(data[offset + tear->byte] ^ tear->mask);
}

void sim_file_system::apply_namespace(namespace_state& state, const operation& op) {
  switch (op.kind) {
  case op_kind::create:
    state.files[op.path] = op.inode;
    break;
  case op_kind::rename: {
    auto it = state.files.find(op.path);
    if (it == state.files.end())
      break; // cannot happen: the rename's source was created earlier in the same directory
    const uint64_t moved = it->second;
    state.files.erase(it);
    state.files[op.target] = moved;
    break;
  }
  case op_kind::remove:
    state.files.erase(op.path);
    break;
  case op_kind::mkdir:
    state.directories.insert(op.path);
    break;
  case op_kind::write:
  case op_kind::truncate:
    break;
  }
}

void sim_file_system::sync_inode(uint64_t inode_id) {
  inode& node = inodes_.at(inode_id);
  for (uint64_t id : node.pending) {
    auto it = pending_.find(id);
    apply_data(node.durable, it->second, nullptr);
    pending_.erase(it);
  }
  node.pending.clear();
}

void sim_file_system::collect_garbage() {
  std::set<uint64_t> reachable;
  for (const auto* state : {&current_, &durable_})
    for (const auto& [path, id] : state->files)
      reachable.insert(id);
  for (const auto& [id, op] : pending_)
    if (op.kind == op_kind::create)
      reachable.insert(op.inode);
  for (auto it = inodes_.begin(); it != inodes_.end();) {
    if (reachable.count(it->first) == 0 && it->second.open_handles == 0) {
      for (uint64_t op : it->second.pending)
        pending_.erase(op);
      it = inodes_.erase(it);
    } else {
      ++it;
    }
  }
}

// -- file_system
// -----------------------------------------------------------------------------------

bool sim_file_system::create_directories(const std::string& raw_path) {
  enter_call();
  const std::string path = normalize(raw_path);
  if (current_.files.count(path) != 0)
    fail("create data directory", raw_path, "Not a directory");
  if (current_.directories.count(path) != 0)
    return false;
  std::vector<std::string> missing;
  for (std::string dir = path; current_.directories.count(dir) == 0; dir = parent_of(dir)) {
    if (current_.files.count(dir) != 0)
      fail("create data directory", raw_path, "Not a directory");
    missing.push_back(dir);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    operation op;
    op.kind = op_kind::mkdir;
    op.path = *it;
    op.directory = parent_of(*it);
    record_namespace(std::move(op));
  }
  return true;
}

std::unique_ptr<file_system::file> sim_file_system::open(const std::string& raw_path,
                                                         open_mode mode) {
  enter_call();
  const std::string path = normalize(raw_path);
  const std::string directory = parent_of(path);
  require_directory(directory, raw_path);
  auto existing = current_.files.find(path);
  if (mode == open_mode::existing)
    return std::make_unique<sim_file>(*this, lookup(path));
  if (existing != current_.files.end()) {
    if (mode == open_mode::create_new)
      fail("create", raw_path, "File exists");
    operation op;
    op.kind = op_kind::truncate;
    op.offset = 0;
    record_data(existing->second, std::move(op));
    return std::make_unique<sim_file>(*this, existing->second);
  }
  const uint64_t id = next_inode_++;
  inodes_[id];
  operation op;
  op.kind = op_kind::create;
  op.inode = id;
  op.path = path;
  op.directory = directory;
  record_namespace(std::move(op));
  return std::make_unique<sim_file>(*this, id);
}

std::string sim_file_system::read_file(const std::string& path) {
  enter_call();
  return inodes_.at(lookup(normalize(path))).data;
}

void sim_file_system::sync_directory(const std::string& raw_path) {
  enter_call();
  const std::string path = normalize(raw_path);
  if (current_.directories.count(path) == 0)
    fail("sync directory", raw_path, "No such file or directory");
  auto it = pending_by_directory_.find(path);
  if (it == pending_by_directory_.end())
    return;
  for (uint64_t id : it->second) {
    auto op = pending_.find(id);
    if (op == pending_.end())
      continue; // its file was collected
    apply_namespace(durable_, op->second);
    pending_.erase(op);
  }
  pending_by_directory_.erase(it);
  collect_garbage();
}

void sim_file_system::rename(const std::string& raw_from, const std::string& raw_to) {
  enter_call();
  const std::string from = normalize(raw_from);
  const std::string to = normalize(raw_to);
  if (parent_of(from) != parent_of(to))
    throw std::logic_error("sim_file_system: rename across directories is not simulated");
  lookup(from);
  operation op;
  op.kind = op_kind::rename;
  op.path = from;
  op.target = to;
  op.directory = parent_of(from);
  record_namespace(std::move(op));
}

void sim_file_system::remove(const std::string& raw_path) {
  enter_call();
  const std::string path = normalize(raw_path);
  if (current_.files.count(path) == 0)
    fail("delete", raw_path, "No such file or directory");
  operation op;
  op.kind = op_kind::remove;
  op.path = path;
  op.directory = parent_of(path);
  record_namespace(std::move(op));
}

std::vector<std::string> sim_file_system::list_directory(const std::string& raw_path) {
  enter_call();
  const std::string path = normalize(raw_path);
  if (current_.directories.count(path) == 0)
    fail("list directory", raw_path, "No such file or directory");
  std::vector<std::string> names;
  const std::size_t skip = path == "/" ? 1 : path.size() + 1;
  for (const auto& [file, id] : current_.files)
    if (parent_of(file) == path)
      names.push_back(file.substr(skip));
  for (const auto& dir : current_.directories)
    if (dir != path && parent_of(dir) == path)
      names.push_back(dir.substr(skip));
  return names;
}

std::unique_ptr<file_system::lock> sim_file_system::try_lock(const std::string& raw_path) {
  const std::string path = normalize(raw_path);
  // Creating the lock file is a call of its own, as open(O_CREAT) is.
  if (current_.files.count(path) == 0)
    open(path, open_mode::create_or_truncate);
  enter_call();
  if (!locked_.insert(path).second)
    return nullptr;
  return std::make_unique<sim_lock>(*this, path);
}

// -- crashes
// ---------------------------------------------------------------------------------------

std::size_t sim_file_system::unsynced_write_size(std::size_t position) const {
  auto it = pending_.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(std::min(position, pending_.size())));
  if (it == pending_.end() || it->second.kind != op_kind::write)
    return 0;
  return it->second.bytes.size();
}

std::size_t sim_file_system::unsynced_write_sectors(std::size_t position) const {
  auto it = pending_.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(std::min(position, pending_.size())));
  if (it == pending_.end() || it->second.kind != op_kind::write || it->second.bytes.empty())
    return 0;
  const operation& op = it->second;
  return (op.offset + op.bytes.size() - 1) / sector_bytes - op.offset / sector_bytes + 1;
}

std::string sim_file_system::describe_unsynced() const {
  static const char* const names[] = {"write", "truncate", "create", "rename", "remove", "mkdir"};
  std::string text;
  std::size_t position = 0;
  for (const auto& [id, op] : pending_) {
    text += "  #" + std::to_string(position++) + " " + names[static_cast<int>(op.kind)];
    switch (op.kind) {
    case op_kind::write:
      text += " inode " + std::to_string(op.inode) + " @" + std::to_string(op.offset) + " +" +
              std::to_string(op.bytes.size());
      break;
    case op_kind::truncate:
      text += " inode " + std::to_string(op.inode) + " to " + std::to_string(op.offset);
      break;
    case op_kind::rename:
      text += " " + op.path + " -> " + op.target;
      break;
    default:
      text += " " + op.path;
    }
    text += "\n";
  }
  return text;
}

void sim_file_system::crash_keeping(std::size_t prefix, const tear_options& tear) {
  if (prefix > pending_.size())
    throw std::invalid_argument("sim_file_system: crash prefix beyond the unsynced operations");
  std::size_t position = 0;
  for (const auto& [id, op] : pending_) {
    if (position++ == prefix)
      break;
    const bool last = position == prefix;
    if (last && tear.kind != tear_kind::none && op.kind != op_kind::write)
      throw std::invalid_argument("sim_file_system: only a write can be torn");
    if (op.kind == op_kind::write || op.kind == op_kind::truncate)
      apply_data(inodes_.at(op.inode).durable, op, last ? &tear : nullptr);
    else
      apply_namespace(durable_, op);
  }
  pending_.clear();
  pending_by_directory_.clear();
  current_ = durable_;
  for (auto& [id, node] : inodes_) {
    node.data = node.durable;
    node.pending.clear();
    node.open_handles = 0;
  }
  locked_.clear();
  ++generation_;
  down_ = false;
  fail_at_ = 0;
  collect_garbage();
}

sim_file_system::crash_outcome sim_file_system::crash(std::mt19937_64& rng,
                                                      const crash_options& options) {
  crash_outcome outcome;
  outcome.unsynced = pending_.size();
  outcome.prefix = std::uniform_int_distribution<std::size_t>(0, pending_.size())(rng);
  const std::size_t size = outcome.prefix == 0 ? 0 : unsynced_write_size(outcome.prefix - 1);
  std::uniform_real_distribution<double> chance(0.0, 1.0);
  if (size > 0) {
    const double draw = chance(rng);
    if (draw < options.corrupt_probability) {
      outcome.tear.kind = tear_kind::flip_byte;
      outcome.tear.byte = std::uniform_int_distribution<std::size_t>(0, size - 1)(rng);
      outcome.tear.mask =
          static_cast<uint8_t>(std::uniform_int_distribution<unsigned>(1, 255)(rng));
    } else if (draw < options.corrupt_probability + options.tear_probability) {
      if (chance(rng) < 0.5) {
        outcome.tear.kind = tear_kind::keep_prefix;
        outcome.tear.keep_bytes = std::uniform_int_distribution<std::size_t>(0, size - 1)(rng);
      } else {
        const std::size_t sectors = unsynced_write_sectors(outcome.prefix - 1);
        outcome.tear.kind = tear_kind::lose_sectors;
        for (std::size_t sector = 0; sector < sectors; ++sector)
          if (chance(rng) < 0.5)
            outcome.tear.lost_sectors.push_back(sector);
        if (outcome.tear.lost_sectors.empty())
          outcome.tear.lost_sectors.push_back(
              std::uniform_int_distribution<std::size_t>(0, sectors - 1)(rng));
      }
    }
  }
  crash_keeping(outcome.prefix, outcome.tear);
  return outcome;
}

std::string sim_crash_outcome::describe() const {
  std::string text =
      "kept " + std::to_string(prefix) + " of " + std::to_string(unsynced) + " unsynced operations";
  switch (tear.kind) {
  case sim_tear_kind::none:
    break;
  case sim_tear_kind::keep_prefix:
    text += ", last write torn after " + std::to_string(tear.keep_bytes) + " bytes";
    break;
  case sim_tear_kind::lose_sectors:
    text += ", last write lost sector(s)";
    for (std::size_t sector : tear.lost_sectors)
      text += " " + std::to_string(sector);
    break;
  case sim_tear_kind::flip_byte:
    text += ", last write corrupted at byte " + std::to_string(tear.byte);
    break;
  }
  return text;
}

void for_each_crash_outcome(const sim_file_system& crashed,
                            const std::function<void(sim_file_system&, const std::string&)>& check,
                            bool with_tears) {
  using tear_kind = sim_tear_kind;
  const std::size_t unsynced = crashed.unsynced_operation_count();
  std::mt19937_64 rng(unsynced);
  for (std::size_t prefix = 0; prefix <= unsynced; ++prefix) {
    std::vector<sim_tear_options> tears{sim_tear_options{}};
    const std::size_t size = prefix == 0 ? 0 : crashed.unsynced_write_size(prefix - 1);
    if (with_tears && size > 0) {
      for (std::size_t keep :
           {std::size_t{0}, std::size_t{1}, std::size_t{9}, size / 2, size - 1}) {
        sim_tear_options tear;
        tear.kind = tear_kind::keep_prefix;
        tear.keep_bytes = std::min(keep, size - 1);
        tears.push_back(tear);
      }
      const std::size_t sectors = crashed.unsynced_write_sectors(prefix - 1);
      std::vector<std::vector<std::size_t>> losses{{0}, {sectors - 1}};
      if (sectors > 2) {
        losses.push_back({1});
        std::vector<std::size_t> random;
        for (std::size_t sector = 0; sector < sectors; ++sector)
          if (rng() % 2 == 0)
            random.push_back(sector);
        losses.push_back(random);
      }
      for (auto& lost : losses) {
        sim_tear_options tear;
        tear.kind = tear_kind::lose_sectors;
        tear.lost_sectors = lost;
        tears.push_back(tear);
      }
    }
    for (const auto& tear : tears) {
      sim_file_system image(crashed);
      image.crash_keeping(prefix, tear);
      sim_crash_outcome outcome;
      outcome.prefix = prefix;
      outcome.unsynced = unsynced;
      outcome.tear = tear;
      check(image, outcome.describe());
    }
  }
}

// -- inspection and surgery
// ------------------------------------------------------------------------

bool sim_file_system::exists(const std::string& path) const {
  return current_.files.count(normalize(path)) != 0;
}

std::string sim_file_system::contents(const std::string& path) const {
  return inodes_.at(current_.files.at(normalize(path))).data;
}

void sim_file_system::set_contents(const std::string& raw_path, const std::string& bytes) {
  const std::string path = normalize(raw_path);
  if (current_.directories.count(parent_of(path)) == 0)
    throw std::invalid_argument("sim_file_system: no directory for " + raw_path);
  auto it = current_.files.find(path);
  uint64_t id = 0;
  if (it != current_.files.end()) {
    id = it->second;
  } else {
    id = next_inode_++;
    current_.files[path] = id;
  }
  durable_.files[path] = id;
  inode& node = inodes_[id];
  node.data = node.durable = bytes;
}

void sim_file_system::flip_byte(const std::string& path, std::size_t offset, uint8_t mask) {
  inode& node = inodes_.at(current_.files.at(normalize(path)));
  if (offset >= node.data.size() || offset >= node.durable.size())
    throw std::out_of_range("sim_file_system: flip_byte beyond the end of " + path);
  node.data[offset] = static_cast<char>(node.data[offset] ^ mask);
  node.durable[offset] = static_cast<char>(node.durable[offset] ^ mask);
}

void sim_file_system::delete_file(const std::string& raw_path) {
  const std::string path = normalize(raw_path);
  current_.files.erase(path);
  durable_.files.erase(path);
  collect_garbage();
}

std::vector<std::string> sim_file_system::file_names(const std::string& directory) const {
  const std::string path = normalize(directory);
  std::vector<std::string> names;
  const std::size_t skip = path == "/" ? 1 : path.size() + 1;
  for (const auto& [file, id] : current_.files)
    if (parent_of(file) == path)
      names.push_back(file.substr(skip));
  return names;
}

} // namespace infinity
