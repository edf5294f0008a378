#include "actors/storage/snapshot_store.hpp"
#include "actors/storage/little_endian.hpp"

#include <algorithm>
#include <cassert>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "actors/storage/file_storage.hpp" // crc32c

namespace infinity {

// -- CRC32C of a concatenation
// ---------------------------------------------------------------------

namespace {

constexpr uint32_t crc32c_polynomial = 0x82F63B78u;

uint32_t gf2_matrix_times(const uint32_t* matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (; vector != 0; vector >>= 1, ++matrix)
    if (vector & 1u)
      sum ^= *matrix;
  return sum;
}

void gf2_matrix_square(uint32_t* square, const uint32_t* matrix) {
  for (int n = 0; n < 32; ++n)
    square[n] = gf2_matrix_times(matrix, matrix[n]);
}

} // namespace

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  // Appending length_b zero bytes to A is a linear map on its CRC register; apply it by repeated
  // squaring of the one-zero-bit operator (zlib's crc32_combine, with the Castagnoli polynomial).
  if (length_b == 0)
    return crc_a;
  uint32_t even[32];
  uint32_t odd[32];
  odd[0] = crc32c_polynomial;
  uint32_t row = 1;
  for (int n = 1; n < 32; ++n, row <<= 1)
    odd[n] = row;
  gf2_matrix_square(even, odd); // two zero bits
  gf2_matrix_square(odd, even); // four zero bits
  do {
    gf2_matrix_square(even, odd); // one zero byte, then 4, 16, ...
    if (length_b & 1u)
      crc_a = gf2_matrix_times(even, crc_a);
    length_b >>= 1;
    if (length_b == 0)
      break;
    gf2_matrix_square(odd, even);
    if (length_b & 1u)
      crc_a = gf2_matrix_times(odd, crc_a);
    length_b >>= 1;
  } while (length_b != 0);
  return crc_a ^ crc_b;
}

// -- format
// ----------------------------------------------------------------------------------------

namespace {

constexpr std::string_view snapshot_magic = "ISNP";
constexpr uint32_t snapshot_version = 1;
/// magic, version, index, term, membership length
constexpr std::size_t header_prefix_bytes = 4 + 4 + 8 + 8 + 4;
/// config index, body length
constexpr std::size_t header_suffix_bytes = 8 + 8;
constexpr std::size_t crc_bytes = 4;
constexpr uint64_t min_file_bytes = header_prefix_bytes + header_suffix_bytes + crc_bytes;
/// A membership is a few addresses; a length beyond this is damage, not a membership, and is
/// refused before anything that large is read.
constexpr uint32_t max_membership_bytes = 16u << 20;

constexpr std::string_view progress_magic = "IRP1";
constexpr std::size_t progress_record_bytes = 4 + 8 + 8 + 4;
/// The second slot sits in another sector, so a torn write of one never touches the other.
constexpr uint64_t progress_slot_offset = 512;

/// Reads and CRC checks go through memory in pieces this large, whatever the snapshot's size.
constexpr std::size_t stream_chunk_bytes = std::size_t{1} << 20;
/// A writer hands the body to the kernel in pieces at least this large (fewer system calls).
constexpr std::size_t writer_buffer_bytes = std::size_t{256} << 10;
/// A writer syncs its temp file every this many bytes, so the final fdatasync of a large snapshot
/// does not flush it all at once: one huge flush stalls the log's fsyncs on the same disk.
constexpr uint64_t writer_sync_bytes = uint64_t{16} << 20;

constexpr const char* lock_file_name = "LOCK";
constexpr std::string_view snapshot_suffix = ".snap";
constexpr std::string_view temp_suffix = ".snap.tmp";
constexpr std::string_view part_suffix = ".part";
constexpr std::string_view progress_suffix = ".prog";

using little_endian::get_u32;
using little_endian::get_u64;
using little_endian::put_u32;
using little_endian::put_u64;

std::string digits20(uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%020" PRIu64, value);
  return text;
}

std::string snapshot_name(uint64_t index, uint64_t term) {
  return "snap-" + digits20(index) + "-" + digits20(term) + std::string(snapshot_suffix);
}

std::string receive_name(uint64_t index, uint64_t term, uint64_t total_size,
                         std::string_view suffix) {
  return "recv-" + digits20(index) + "-" + digits20(term) + "-" + digits20(total_size) +
         std::string(suffix);
}

/// Parses `<prefix>` then `count` dash-separated 20-digit numbers then exactly `suffix`. Only
/// names we could have written count; anything else is left alone.
bool parse_numbers(std::string_view name, std::string_view prefix, std::string_view suffix,
                   uint64_t* values, std::size_t count) {
  const std::size_t expected = prefix.size() + count * 20 + (count - 1) + suffix.size();
  if (name.size() != expected || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix)
    return false;
  std::size_t position = prefix.size();
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0 && name[position++] != '-')
      return false;
    uint64_t value = 0;
    for (char digit : name.substr(position, 20)) {
      if (digit < '0' || digit > '9')
        return false;
      const auto digit_value = static_cast<uint64_t>(digit - '0');
      if (value > (std::numeric_limits<uint64_t>::max() - digit_value) / 10)
        return false;
      value = value * 10 + digit_value;
    }
    values[i] = value;
    position += 20;
  }
  return true;
}

std::string encode_header(const snapshot_meta& meta, uint64_t body_size) {
  std::string out(snapshot_magic);
  put_u32(out, snapshot_version);
  put_u64(out, meta.index);
  put_u64(out, meta.term);
  put_u32(out, static_cast<uint32_t>(meta.membership.size()));
  out += meta.membership;
  put_u64(out, meta.config_index);
  put_u64(out, body_size);
  return out;
}

struct parsed_header {
  snapshot_meta meta;
  uint64_t body_offset = 0;
  uint64_t body_size = 0;
};

/// Reads the header of a snapshot file of `file_size` bytes. Empty if it is well formed and
/// agrees with the file's size; else what is wrong.
std::optional<std::string> parse_header(file_system::file& file, uint64_t file_size,
                                        parsed_header& out) {
  if (file_size < min_file_bytes)
    return "only " + std::to_string(file_size) + " bytes, at least " +
           std::to_string(min_file_bytes) + " expected";
  const std::string prefix = file.read_at(0, header_prefix_bytes);
  if (prefix.size() != header_prefix_bytes)
    return std::string("the file shrank while it was read");
  if (std::string_view(prefix).substr(0, 4) != snapshot_magic)
    return std::string("not a snapshot file (bad magic)");
  const uint32_t version = get_u32(prefix.data() + 4);
  if (version != snapshot_version)
    return "unknown version " + std::to_string(version);
  out.meta.index = get_u64(prefix.data() + 8);
  out.meta.term = get_u64(prefix.data() + 16);
  const uint32_t membership_size = get_u32(prefix.data() + 24);
  if (membership_size > max_membership_bytes || membership_size > file_size - min_file_bytes)
    return "membership length " + std::to_string(membership_size) + " runs past the end";
  const std::string rest = file.read_at(header_prefix_bytes, membership_size + header_suffix_bytes);
  if (rest.size() != membership_size + header_suffix_bytes)
    return std::string("the file shrank while it was read");
  out.meta.membership = rest.substr(0, membership_size);
  out.meta.config_index = get_u64(rest.data() + membership_size);
  out.body_size = get_u64(rest.data() + membership_size + 8);
  out.body_offset = header_prefix_bytes + membership_size + header_suffix_bytes;
  if (out.body_size != file_size - out.body_offset - crc_bytes)
    return "body length " + std::to_string(out.body_size) + " disagrees with the file size " +
           std::to_string(file_size);
  return std::nullopt;
}

/// Streams through the first `file_size - 4` bytes and compares their CRC with the last four.
std::optional<std::string> check_crc(file_system::file& file, uint64_t file_size) {
  if (file_size < crc_bytes)
    return std::string("too short for a CRC");
  const uint64_t covered = file_size - crc_bytes;
  uint32_t crc = 0;
  for (uint64_t offset = 0; offset < covered;) {
    const auto want =
        static_cast<std::size_t>(std::min<uint64_t>(stream_chunk_bytes, covered - offset));
    const std::string chunk = file.read_at(offset, want);
    if (chunk.size() != want)
      return std::string("the file shrank while it was read");
    crc = crc32c(chunk.data(), chunk.size(), crc);
    offset += want;
  }
  const std::string trailer = file.read_at(covered, crc_bytes);
  if (trailer.size() != crc_bytes)
    return std::string("the file shrank while it was read");
  const uint32_t stored = get_u32(trailer.data());
  if (stored != crc) {
    char text[96];
    std::snprintf(text, sizeof(text),
                  "CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")", stored, crc);
    return std::string(text);
  }
  return std::nullopt;
}

std::string encode_progress(uint64_t sequence, uint64_t length) {
  std::string out(progress_magic);
  put_u64(out, sequence);
  put_u64(out, length);
  put_u32(out, crc32c(out.data(), out.size()));
  return out;
}

struct progress_slot {
  uint64_t sequence = 0;
  uint64_t length = 0;
};

std::optional<progress_slot> decode_progress(std::string_view bytes, std::size_t offset) {
  if (bytes.size() < offset + progress_record_bytes)
    return std::nullopt;
  const char* record = bytes.data() + offset;
  if (std::string_view(record, 4) != progress_magic ||
      get_u32(record + 20) != crc32c(record, progress_record_bytes - crc_bytes))
    return std::nullopt;
  return progress_slot{get_u64(record + 4), get_u64(record + 12)};
}

/// The newest intact slot of a progress file's bytes; none = nothing durable yet.
progress_slot newest_progress(std::string_view bytes) {
  progress_slot best;
  for (std::size_t offset : {std::size_t{0}, static_cast<std::size_t>(progress_slot_offset)})
    if (auto slot = decode_progress(bytes, offset); slot && slot->sequence >= best.sequence)
      best = *slot;
  return best;
}

std::string parent_of(const std::string& path) {
  auto normalized = std::filesystem::path(path).lexically_normal();
  if (!normalized.has_filename()) // written with a trailing slash
    normalized = normalized.parent_path();
  std::string parent = normalized.parent_path().string();
  return parent.empty() ? "." : parent;
}

} // namespace

// -- shared state
// ----------------------------------------------------------------------------------

namespace snapshot_detail {

/// What the store and every object it hands out share; kept alive by the last of them.
struct shared {
  std::shared_ptr<file_system> fs;
  std::string directory;
  std::mutex pins_mutex;
  /// Pinned paths and how many pins each has.
  std::map<std::string, unsigned> pins;

  std::string path_of(const std::string& name) const { return directory + "/" + name; }
  void sync_directory() { fs->sync_directory(directory); }
  bool pinned(const std::string& path) {
    std::lock_guard<std::mutex> guard(pins_mutex);
    return pins.count(path) != 0;
  }
};

} // namespace snapshot_detail

// -- snapshot_pin
// ----------------------------------------------------------------------------------

snapshot_pin::snapshot_pin(std::shared_ptr<snapshot_detail::shared> shared, std::string path)
    : shared_(std::move(shared)), path_(std::move(path)) {
  std::lock_guard<std::mutex> guard(shared_->pins_mutex);
  ++shared_->pins[path_];
}

snapshot_pin::snapshot_pin(snapshot_pin&& other) noexcept
    : shared_(std::move(other.shared_)), path_(std::move(other.path_)) {
  other.shared_.reset();
}

snapshot_pin& snapshot_pin::operator=(snapshot_pin&& other) noexcept {
  if (this != &other) {
    release();
    shared_ = std::move(other.shared_);
    path_ = std::move(other.path_);
    other.shared_.reset();
  }
  return *this;
}

snapshot_pin::~snapshot_pin() {
  release();
}

void snapshot_pin::release() {
  if (!shared_)
    return;
  std::lock_guard<std::mutex> guard(shared_->pins_mutex);
  auto it = shared_->pins.find(path_);
  assert(it != shared_->pins.end() && it->second > 0);
  if (--it->second == 0)
    shared_->pins.erase(it);
  shared_.reset();
}

// -- snapshot_writer
// -------------------------------------------------------------------------------

snapshot_writer::snapshot_writer(std::shared_ptr<snapshot_detail::shared> shared,
                                 const snapshot_meta& meta)
    : shared_(std::move(shared)), meta_(meta) {
  const std::string name = snapshot_name(meta.index, meta.term);
  final_path_ = shared_->path_of(name);
  temp_path_ = shared_->path_of(name.substr(0, name.size() - snapshot_suffix.size()) +
                                std::string(temp_suffix));
  // The body length is not known yet: written as 0 now, completed by `finish`.
  header_ = encode_header(meta_, 0);
  file_ = shared_->fs->open(temp_path_, file_system::open_mode::create_or_truncate);
  file_->write_at(0, header_);
}

snapshot_writer::snapshot_writer(snapshot_writer&&) noexcept = default;
snapshot_writer& snapshot_writer::operator=(snapshot_writer&& other) noexcept {
  if (this != &other) {
    try {
      abort();
    } catch (...) {
    }
    shared_ = std::move(other.shared_);
    meta_ = std::move(other.meta_);
    temp_path_ = std::move(other.temp_path_);
    final_path_ = std::move(other.final_path_);
    file_ = std::move(other.file_);
    header_ = std::move(other.header_);
    buffer_ = std::move(other.buffer_);
    body_size_ = other.body_size_;
    unsynced_bytes_ = other.unsynced_bytes_;
    body_crc_ = other.body_crc_;
    done_ = other.done_;
    other.done_ = true;
  }
  return *this;
}

snapshot_writer::~snapshot_writer() {
  try {
    abort();
  } catch (...) {
    // A leftover temp file is removed when the store is next opened.
  }
}

void snapshot_writer::append(std::string_view bytes) {
  if (done_ || !shared_)
    throw std::logic_error("snapshot_writer::append after finish or abort");
  body_crc_ = crc32c(bytes.data(), bytes.size(), body_crc_);
  body_size_ += bytes.size();
  buffer_.append(bytes.data(), bytes.size());
  if (buffer_.size() >= writer_buffer_bytes)
    flush();
}

void snapshot_writer::flush() {
  if (buffer_.empty())
    return;
  file_->write_at(header_.size() + body_size_ - buffer_.size(), buffer_);
  unsynced_bytes_ += buffer_.size();
  buffer_.clear();
  if (unsynced_bytes_ >= writer_sync_bytes) {
    file_->sync_data();
    unsynced_bytes_ = 0;
  }
}

snapshot_file snapshot_writer::finish() {
  if (done_ || !shared_)
    throw std::logic_error("snapshot_writer::finish after finish or abort");
  flush();
  std::string length;
  put_u64(length, body_size_);
  header_.replace(header_.size() - 8, 8, length);
  file_->write_at(header_.size() - 8, length);
  std::string trailer;
  put_u32(trailer, crc32c_combine(crc32c(header_.data(), header_.size()), body_crc_, body_size_));
  file_->write_at(header_.size() + body_size_, trailer);
  // Whole and durable before it gets its name: a visible snapshot is never partial.
  file_->sync_data();
  file_.reset();
  shared_->fs->rename(temp_path_, final_path_);
  done_ = true;
  shared_->sync_directory();
  return snapshot_file{meta_.index, meta_.term, final_path_};
}

void snapshot_writer::abort() {
  if (done_ || !shared_)
    return;
  done_ = true;
  file_.reset();
  shared_->fs->remove(temp_path_);
}

// -- snapshot_reader
// -------------------------------------------------------------------------------

std::optional<std::string> snapshot_reader::verify() {
  const uint64_t size = handle_->size();
  if (size != file_size_)
    return "the file changed size from " + std::to_string(file_size_) + " to " +
           std::to_string(size) + " bytes";
  return check_crc(*handle_, file_size_);
}

std::string snapshot_reader::read(uint64_t offset, std::size_t max_bytes) {
  if (offset > file_size_)
    throw std::logic_error("snapshot_reader::read at " + std::to_string(offset) +
                           ", beyond the end " + std::to_string(file_size_));
  return handle_->read_at(
      offset, static_cast<std::size_t>(std::min<uint64_t>(max_bytes, file_size_ - offset)));
}

std::string snapshot_reader::read_body(uint64_t offset, std::size_t max_bytes) {
  if (offset > body_size_)
    throw std::logic_error("snapshot_reader::read_body at " + std::to_string(offset) +
                           ", beyond the end " + std::to_string(body_size_));
  return handle_->read_at(body_offset_ + offset, static_cast<std::size_t>(std::min<uint64_t>(
                                                     max_bytes, body_size_ - offset)));
}

// -- snapshot_receiver
// -----------------------------------------------------------------------------

snapshot_receiver::snapshot_receiver(snapshot_receiver&&) noexcept = default;
snapshot_receiver& snapshot_receiver::operator=(snapshot_receiver&&) noexcept = default;
snapshot_receiver::~snapshot_receiver() = default;

snapshot_receiver::write_result snapshot_receiver::write(uint64_t offset, std::string_view bytes) {
  if (done_ || !shared_)
    throw std::logic_error("snapshot_receiver::write after finish or abort");
  // Remote input: refused, not thrown, so the sender learns where to resume.
  if (offset != size_ || bytes.size() > total_size_ - size_)
    return write_result{false, size_};
  part_->write_at(offset, bytes);
  size_ += bytes.size();
  return write_result{true, size_};
}

void snapshot_receiver::sync() {
  if (done_ || !shared_)
    throw std::logic_error("snapshot_receiver::sync after finish or abort");
  if (size_ == durable_size_)
    return;
  part_->sync_data(); // the data first: progress never claims bytes a crash could lose
  write_progress(size_);
  progress_->sync_data();
  durable_size_ = size_;
}

void snapshot_receiver::write_progress(uint64_t length) {
  const uint64_t sequence = ++progress_sequence_;
  // Alternate slots: a torn write damages only the one being written.
  progress_->write_at((sequence % 2) * progress_slot_offset, encode_progress(sequence, length));
}

snapshot_receiver::finish_result snapshot_receiver::finish() {
  if (done_ || !shared_)
    throw std::logic_error("snapshot_receiver::finish after finish or abort");
  if (size_ != total_size_)
    throw std::logic_error("snapshot_receiver::finish with " + std::to_string(size_) + " of " +
                           std::to_string(total_size_) + " bytes");
  if (durable_size_ != size_) {
    part_->sync_data(); // before the rename; the progress no longer matters
    durable_size_ = size_;
  }
  parsed_header header;
  std::optional<std::string> problem = parse_header(*part_, total_size_, header);
  if (!problem && (header.meta.index != index_ || header.meta.term != term_))
    problem = "its header is of index " + std::to_string(header.meta.index) + " term " +
              std::to_string(header.meta.term) + ", not the expected index " +
              std::to_string(index_) + " term " + std::to_string(term_);
  if (!problem)
    problem = check_crc(*part_, total_size_);
  part_.reset();
  progress_.reset();
  done_ = true;
  auto& fs = *shared_->fs;
  if (problem) {
    fs.remove(part_path_);
    fs.remove(progress_path_);
    shared_->sync_directory();
    return finish_result{std::nullopt, "snapshot_store: received snapshot '" + part_path_ +
                                           "' is corrupt: " + *problem + "; discarded"};
  }
  const std::string final_path = shared_->path_of(snapshot_name(index_, term_));
  fs.rename(part_path_, final_path);
  fs.remove(progress_path_);
  shared_->sync_directory();
  return finish_result{snapshot_file{index_, term_, final_path}, {}};
}

void snapshot_receiver::abort() {
  if (done_ || !shared_)
    return;
  done_ = true;
  part_.reset();
  progress_.reset();
  shared_->fs->remove(part_path_);
  shared_->fs->remove(progress_path_);
}

// -- snapshot_store
// --------------------------------------------------------------------------------

snapshot_store::snapshot_store(const std::string& data_directory, std::shared_ptr<file_system> fs)
    : shared_(std::make_shared<snapshot_detail::shared>()) {
  shared_->fs = fs ? std::move(fs) : std::make_shared<posix_file_system>();
  if (data_directory.empty())
    throw std::runtime_error("snapshot_store: the data directory path is empty");
  shared_->directory = data_directory + "/snapshots";
  auto& files = *shared_->fs;
  // Each new directory's entry lives in its parent: without the parent's fsync a crash could
  // lose it along with everything synced inside.
  if (files.create_directories(data_directory))
    files.sync_directory(parent_of(data_directory));
  if (files.create_directories(shared_->directory))
    files.sync_directory(data_directory);
  const std::string lock_path = shared_->path_of(lock_file_name);
  lock_ = files.try_lock(lock_path);
  if (!lock_)
    throw std::runtime_error("snapshot_store: snapshot directory '" + shared_->directory +
                             "' is already in use (lock file '" + lock_path +
                             "' is held by another process or store)");

  // What a crash left that can never become a snapshot.
  const std::vector<std::string> names = files.list_directory(shared_->directory);
  std::vector<std::string> leftovers;
  for (const std::string& name : names) {
    uint64_t numbers[3];
    if (parse_numbers(name, "snap-", temp_suffix, numbers, 2)) {
      leftovers.push_back(name);
    } else if (parse_numbers(name, "recv-", progress_suffix, numbers, 3)) {
      const std::string part = receive_name(numbers[0], numbers[1], numbers[2], part_suffix);
      if (std::find(names.begin(), names.end(), part) == names.end())
        leftovers.push_back(name); // its .part was renamed into a snapshot, or discarded
    }
  }
  for (const std::string& name : leftovers) {
    files.remove(shared_->path_of(name));
    open_report_ += "removed leftover '" + shared_->path_of(name) + "'\n";
  }
  if (!leftovers.empty())
    shared_->sync_directory();
}

snapshot_store::~snapshot_store() = default;

const std::string& snapshot_store::directory() const {
  return shared_->directory;
}

std::vector<snapshot_file> snapshot_store::list() {
  std::vector<snapshot_file> files;
  for (const std::string& name : shared_->fs->list_directory(shared_->directory)) {
    uint64_t numbers[2];
    if (parse_numbers(name, "snap-", snapshot_suffix, numbers, 2))
      files.push_back(snapshot_file{numbers[0], numbers[1], shared_->path_of(name)});
  }
  std::sort(files.begin(), files.end(), [](const snapshot_file& a, const snapshot_file& b) {
    return std::tie(a.index, a.term) > std::tie(b.index, b.term);
  });
  return files;
}

snapshot_writer snapshot_store::begin(const snapshot_meta& meta) {
  if (meta.index == 0 || meta.term == 0)
    throw std::logic_error("snapshot_store::begin: a snapshot needs an index and a term above 0");
  if (meta.membership.size() > max_membership_bytes)
    throw std::logic_error("snapshot_store::begin: membership of " +
                           std::to_string(meta.membership.size()) + " bytes is too large");
  return snapshot_writer(shared_, meta);
}

snapshot_reader snapshot_store::open(const snapshot_file& file) {
  snapshot_reader reader;
  reader.pin_ = pin(file); // before opening: retain must not race the open
  reader.file_ = file;
  reader.handle_ = shared_->fs->open(file.path, file_system::open_mode::existing);
  reader.file_size_ = reader.handle_->size();
  parsed_header header;
  std::optional<std::string> problem = parse_header(*reader.handle_, reader.file_size_, header);
  if (!problem && (header.meta.index != file.index || header.meta.term != file.term))
    problem = "its header is of index " + std::to_string(header.meta.index) + " term " +
              std::to_string(header.meta.term) + ", its name says index " +
              std::to_string(file.index) + " term " + std::to_string(file.term);
  if (problem)
    throw std::runtime_error("snapshot_store: corrupt snapshot '" + file.path + "': " + *problem);
  reader.meta_ = std::move(header.meta);
  reader.body_offset_ = header.body_offset;
  reader.body_size_ = header.body_size;
  return reader;
}

snapshot_pin snapshot_store::pin(const snapshot_file& file) {
  return snapshot_pin(shared_, file.path);
}

std::vector<snapshot_file> snapshot_store::retain(std::size_t keep) {
  if (keep == 0)
    throw std::logic_error("snapshot_store::retain(0) would delete every snapshot");
  std::vector<snapshot_file> removed;
  const std::vector<snapshot_file> files = list();
  for (std::size_t position = keep; position < files.size(); ++position) {
    std::lock_guard<std::mutex> guard(shared_->pins_mutex); // no pin taken while it goes
    if (shared_->pins.count(files[position].path) != 0)
      continue;
    shared_->fs->remove(files[position].path);
    removed.push_back(files[position]);
  }
  if (!removed.empty())
    shared_->sync_directory();
  return removed;
}

void snapshot_store::remove(const snapshot_file& file) {
  {
    std::lock_guard<std::mutex> guard(shared_->pins_mutex);
    if (shared_->pins.count(file.path) != 0)
      throw std::logic_error("snapshot_store::remove: snapshot '" + file.path + "' is pinned");
    shared_->fs->remove(file.path);
  }
  shared_->sync_directory();
}

snapshot_choice snapshot_store::newest_valid(uint64_t log_first_index) {
  snapshot_choice choice;
  for (const snapshot_file& file : list()) {
    if (file.index + 1 < log_first_index) {
      // It and every older one: the entries between it and the log are in no snapshot.
      choice.rejected.push_back(rejected_snapshot{
          file, "too old: the log starts at index " + std::to_string(log_first_index) +
                    ", so entries " + std::to_string(file.index + 1) + " to " +
                    std::to_string(log_first_index - 1) + " would be missing"});
      continue;
    }
    try {
      snapshot_reader reader = open(file);
      if (auto problem = reader.verify()) {
        choice.rejected.push_back(
            rejected_snapshot{file, "corrupt snapshot '" + file.path + "': " + *problem});
        continue;
      }
      choice.file = file;
      choice.meta = reader.meta();
      return choice;
    } catch (const std::runtime_error& error) {
      choice.rejected.push_back(rejected_snapshot{file, error.what()});
    }
  }
  return choice;
}

namespace {

/// The partial receives in the directory, with how much of each is durable.
std::vector<pending_receive> find_partial_receives(file_system& fs, const std::string& directory) {
  const std::vector<std::string> names = fs.list_directory(directory);
  std::vector<pending_receive> found;
  for (const std::string& name : names) {
    uint64_t numbers[3];
    if (!parse_numbers(name, "recv-", part_suffix, numbers, 3))
      continue;
    pending_receive partial{numbers[0], numbers[1], numbers[2], 0};
    const std::string progress = receive_name(numbers[0], numbers[1], numbers[2], progress_suffix);
    if (std::find(names.begin(), names.end(), progress) != names.end()) {
      const uint64_t length = newest_progress(fs.read_file(directory + "/" + progress)).length;
      // Never more than the .part holds (it cannot, given the order of the syncs; if the disk
      // says otherwise, starting over is what is safe).
      if (length <= partial.total_size &&
          length <= fs.open(directory + "/" + name, file_system::open_mode::existing)->size())
        partial.durable_size = length;
    }
    found.push_back(partial);
  }
  return found;
}

} // namespace

std::optional<pending_receive> snapshot_store::pending() {
  std::optional<pending_receive> newest;
  for (const pending_receive& partial : find_partial_receives(*shared_->fs, shared_->directory))
    if (!newest || std::tie(partial.index, partial.term) > std::tie(newest->index, newest->term))
      newest = partial;
  return newest;
}

snapshot_receiver snapshot_store::receive(uint64_t index, uint64_t term, uint64_t total_size) {
  if (index == 0 || term == 0 || total_size < min_file_bytes)
    throw std::logic_error("snapshot_store::receive: index " + std::to_string(index) + " term " +
                           std::to_string(term) + " size " + std::to_string(total_size) +
                           " cannot be a snapshot");
  auto& fs = *shared_->fs;
  std::optional<pending_receive> resume;
  for (const pending_receive& partial : find_partial_receives(fs, shared_->directory))
    if (partial.index == index && partial.term == term && partial.total_size == total_size)
      resume = partial;
  snapshot_receiver receiver;
  receiver.shared_ = shared_;
  receiver.index_ = index;
  receiver.term_ = term;
  receiver.total_size_ = total_size;
  receiver.part_path_ = shared_->path_of(receive_name(index, term, total_size, part_suffix));
  receiver.progress_path_ =
      shared_->path_of(receive_name(index, term, total_size, progress_suffix));
  // Every other partial receive goes: the install under way supersedes it.
  bool progress_exists = false;
  bool changed = false;
  for (const std::string& name : fs.list_directory(shared_->directory)) {
    uint64_t numbers[3];
    const bool part = parse_numbers(name, "recv-", part_suffix, numbers, 3);
    if (!part && !parse_numbers(name, "recv-", progress_suffix, numbers, 3))
      continue;
    if (resume && shared_->path_of(name) == receiver.part_path_)
      continue;
    if (resume && shared_->path_of(name) == receiver.progress_path_) {
      progress_exists = true;
      continue;
    }
    fs.remove(shared_->path_of(name));
    changed = true;
  }
  if (resume) {
    receiver.part_ = fs.open(receiver.part_path_, file_system::open_mode::existing);
    receiver.size_ = receiver.durable_size_ = resume->durable_size;
    // Bytes after the durable length may be torn: cut them (they are written again anyway).
    if (receiver.part_->size() != receiver.size_)
      receiver.part_->truncate(receiver.size_);
    if (progress_exists) {
      receiver.progress_ = fs.open(receiver.progress_path_, file_system::open_mode::existing);
      receiver.progress_sequence_ = newest_progress(fs.read_file(receiver.progress_path_)).sequence;
    } else {
      receiver.progress_ = fs.open(receiver.progress_path_, file_system::open_mode::create_new);
      changed = true;
    }
  } else {
    receiver.part_ = fs.open(receiver.part_path_, file_system::open_mode::create_or_truncate);
    receiver.progress_ =
        fs.open(receiver.progress_path_, file_system::open_mode::create_or_truncate);
    changed = true;
  }
  // The partial files' names durable before any chunk is acknowledged, so a restart finds them.
  if (changed)
    shared_->sync_directory();
  return receiver;
}

} // namespace infinity
