#include "actors/storage/file_storage.hpp"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace infinity {

// -- CRC32C
// ----------------------------------------------------------------------------------------

namespace {

constexpr uint32_t crc32c_polynomial = 0x82F63B78u;

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1u) ? (crc >> 1) ^ crc32c_polynomial : crc >> 1;
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> crc32c_table = make_crc32c_table();

} // namespace

uint32_t crc32c(const void* data, std::size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i)
    crc = crc32c_table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

// -- helpers
// ---------------------------------------------------------------------------------------

namespace {

constexpr const char* lock_file_name = "LOCK";
constexpr const char* hard_state_file_name = "hard_state";
constexpr const char* hard_state_temp_file_name = "hard_state.tmp";

constexpr std::string_view segment_prefix = "log-";
constexpr std::string_view segment_suffix = ".seg";
constexpr std::size_t segment_index_digits = 20; // enough for any uint64_t

constexpr std::size_t record_header_bytes = 8;       // length, CRC
constexpr std::size_t entry_fixed_bytes = 8 + 8 + 1; // term, index, kind
constexpr std::size_t min_record_bytes = record_header_bytes + entry_fixed_bytes;
constexpr std::size_t hard_state_fixed_bytes = 8; // term

[[noreturn]] void throw_corrupt_log(const std::string& path, uint64_t offset,
                                    const std::string& problem) {
  throw std::runtime_error("file_storage: corrupt log segment '" + path + "' at offset " +
                           std::to_string(offset) + ": " + problem);
}

void put_u32(std::string& out, uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFFu));
}

void put_u64(std::string& out, uint64_t value) {
  for (int shift = 0; shift < 64; shift += 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFFu));
}

uint32_t get_u32(const char* in) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

uint64_t get_u64(const char* in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

void overwrite_u32(std::string& out, std::size_t position, uint32_t value) {
  for (int i = 0; i < 4; ++i)
    out[position + i] = static_cast<char>((value >> (8 * i)) & 0xFFu);
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08" PRIx32, value);
  return text;
}

bool is_known_kind(uint8_t kind) {
  return kind <= static_cast<uint8_t>(entry_kind::config);
}

std::string segment_file_name(uint64_t first_index) {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%020" PRIu64, first_index);
  return std::string(segment_prefix) + digits + std::string(segment_suffix);
}

/// Only names we could have written count as segments; anything else in the directory is left
/// alone rather than guessed at.
std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != segment_prefix.size() + segment_index_digits + segment_suffix.size() ||
      name.substr(0, segment_prefix.size()) != segment_prefix ||
      name.substr(name.size() - segment_suffix.size()) != segment_suffix)
    return std::nullopt;
  uint64_t value = 0;
  for (char digit : name.substr(segment_prefix.size(), segment_index_digits)) {
    if (digit < '0' || digit > '9')
      return std::nullopt;
    const uint64_t digit_value = static_cast<uint64_t>(digit - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit_value) / 10)
      return std::nullopt;
    value = value * 10 + digit_value;
  }
  return value;
}

void encode_entry(std::string& out, const log_entry& entry) {
  const std::size_t header_position = out.size();
  put_u32(out, static_cast<uint32_t>(entry_fixed_bytes + entry.data.size()));
  put_u32(out, 0); // CRC, filled in once the payload is in place
  const std::size_t payload_position = out.size();
  put_u64(out, entry.term);
  put_u64(out, entry.index);
  out.push_back(static_cast<char>(entry.kind));
  out.append(entry.data);
  overwrite_u32(out, header_position + 4,
                crc32c(out.data() + payload_position, out.size() - payload_position));
}

struct decoded_record {
  uint64_t term = 0;
  uint64_t index = 0;
  uint8_t kind = 0;
  std::string_view data;
  std::size_t total_bytes = 0;
};

/// Decodes the framed log record at `offset`; on failure returns false and says why in `problem`.
bool decode_record(std::string_view bytes, std::size_t offset, decoded_record& record,
                   std::string& problem) {
  const std::size_t remaining = bytes.size() - offset;
  if (remaining < record_header_bytes) {
    problem = "only " + std::to_string(remaining) + " of the " +
              std::to_string(record_header_bytes) + " header bytes are present";
    return false;
  }
  const char* header = bytes.data() + offset;
  const uint32_t payload_size = get_u32(header);
  if (payload_size < entry_fixed_bytes) {
    problem = "length field " + std::to_string(payload_size) + " is below the " +
              std::to_string(entry_fixed_bytes) + "-byte minimum";
    return false;
  }
  if (payload_size > remaining - record_header_bytes) {
    problem = "length field " + std::to_string(payload_size) + " runs past the end of the file (" +
              std::to_string(remaining - record_header_bytes) + " bytes left)";
    return false;
  }
  const char* payload = header + record_header_bytes;
  const uint32_t stored_crc = get_u32(header + 4);
  const uint32_t actual_crc = crc32c(payload, payload_size);
  if (stored_crc != actual_crc) {
    problem = "CRC mismatch (stored " + hex32(stored_crc) + ", computed " + hex32(actual_crc) + ")";
    return false;
  }
  record.term = get_u64(payload);
  record.index = get_u64(payload + 8);
  record.kind = static_cast<uint8_t>(payload[16]);
  record.data = std::string_view(payload + entry_fixed_bytes, payload_size - entry_fixed_bytes);
  record.total_bytes = record_header_bytes + payload_size;
  return true;
}

/// Looks for an intact record after the bad one at `bad_offset`. Finding one means the damage is
/// not a torn tail, so cutting there would throw away entries that were durable.
///
/// Any offset is tried, since the bad record's own length cannot be trusted. To keep this linear
/// and to avoid mistaking bytes inside entry data for a record, a candidate must carry an index
/// that fits: the records between the last good entry and it need at least `min_record_bytes`
/// each.
std::optional<std::size_t> find_intact_record_after(std::string_view bytes, std::size_t bad_offset,
                                                    uint64_t last_good_index) {
  decoded_record record;
  std::string ignored;
  for (std::size_t offset = bad_offset + 1; offset + min_record_bytes <= bytes.size(); ++offset) {
    const char* header = bytes.data() + offset;
    const uint32_t payload_size = get_u32(header);
    if (payload_size < entry_fixed_bytes ||
        payload_size > bytes.size() - offset - record_header_bytes)
      continue;
    const uint64_t index = get_u64(header + record_header_bytes + 8);
    if (index <= last_good_index ||
        index - last_good_index - 1 > (offset - bad_offset) / min_record_bytes)
      continue;
    if (decode_record(bytes, offset, record, ignored))
      return offset;
  }
  return std::nullopt;
}

/// How many records the torn tail held, following its length fields for as long as they are
/// plausible. At least one whenever bytes are dropped.
uint64_t count_tail_records(std::string_view bytes, std::size_t offset) {
  uint64_t records = 0;
  while (offset < bytes.size()) {
    ++records;
    const std::size_t remaining = bytes.size() - offset;
    if (remaining < record_header_bytes)
      break;
    const uint32_t payload_size = get_u32(bytes.data() + offset);
    if (payload_size < entry_fixed_bytes || payload_size > remaining - record_header_bytes)
      break;
    offset += record_header_bytes + payload_size;
  }
  return records;
}

} // namespace

// -- file_storage
// ----------------------------------------------------------------------------------

file_storage::file_storage(std::string directory, file_storage_options options,
                           std::shared_ptr<file_system> fs)
    : directory_(std::move(directory)), options_(options),
      fs_(fs ? std::move(fs) : std::make_shared<posix_file_system>()) {
  if (directory_.empty())
    throw std::runtime_error("file_storage: the data directory path is empty");
  if (fs_->create_directories(directory_)) {
    // The new directory's own entry lives in its parent; without this a crash could lose the
    // whole directory along with everything later synced inside it.
    auto normalized = std::filesystem::path(directory_).lexically_normal();
    if (!normalized.has_filename()) // written with a trailing slash
      normalized = normalized.parent_path();
    std::string parent = normalized.parent_path().string();
    if (parent.empty())
      parent = ".";
    fs_->sync_directory(parent);
  }
  const std::string lock_path = path_of(lock_file_name);
  lock_ = fs_->try_lock(lock_path);
  if (!lock_)
    throw std::runtime_error("file_storage: data directory '" + directory_ +
                             "' is already in use (lock file '" + lock_path +
                             "' is held by another process or storage object)");
}

file_storage::~file_storage() {
  // Not a promise of durability (only `sync` gives that), but a clean shutdown should not lose
  // appends just because they were still in our buffer.
  if (!failed_ && current_file_ && !write_buffer_.empty()) {
    try {
      flush_write_buffer();
    } catch (...) {
      // Nothing was promised for these bytes; recovery copes with whatever reached the disk.
    }
  }
}

std::string file_storage::path_of(const std::string& file_name) const {
  return directory_ + "/" + file_name;
}

std::string file_storage::segment_path(std::size_t position) const {
  return path_of(segment_file_name(segments_[position].first_index));
}

void file_storage::require_usable(const char* operation) const {
  if (!recovered_)
    throw std::logic_error(std::string("file_storage::") + operation + " called before recover()");
  if (failed_)
    throw std::runtime_error("file_storage: an earlier I/O error left '" + directory_ +
                             "' in an unknown state; restart the node to recover from disk");
}

// -- recovery
// --------------------------------------------------------------------------------------

recovered_state file_storage::recover() {
  if (recovered_)
    throw std::logic_error("file_storage::recover() called twice");
  recovered_state result;

  std::vector<uint64_t> segment_first_indexes;
  bool has_hard_state = false;
  bool has_hard_state_temp = false;
  for (const std::string& name : fs_->list_directory(directory_)) {
    if (name == hard_state_file_name)
      has_hard_state = true;
    else if (name == hard_state_temp_file_name)
      has_hard_state_temp = true;
    else if (auto first_index = parse_segment_file_name(name))
      segment_first_indexes.push_back(*first_index);
  }
  std::sort(segment_first_indexes.begin(), segment_first_indexes.end());

  if (has_hard_state_temp) {
    // Left by a crash before the rename, so it never became the hard state.
    fs_->remove(path_of(hard_state_temp_file_name));
    directory_unsynced_ = true;
  }

  if (has_hard_state) {
    result.state = read_hard_state_file();
  } else if (!segment_first_indexes.empty()) {
    throw std::runtime_error(
        "file_storage: hard state file '" + path_of(hard_state_file_name) +
        "' is missing but the log has " + std::to_string(segment_first_indexes.size()) +
        " segment(s) starting with '" + path_of(segment_file_name(segment_first_indexes.front())) +
        "'; refusing to start without the term and vote");
  } else {
    // A fresh directory gets a hard state file before any segment can exist, so that later a
    // missing file can only mean damage, never "not written yet".
    write_hard_state_file(result.state);
  }
  persisted_hard_state_ = result.state;

  load_segments(segment_first_indexes, result);

  // Also covers renames and segment creations a crashed predecessor never synced.
  sync_directory();
  recovered_ = true;
  return result;
}

hard_state file_storage::read_hard_state_file() {
  const std::string path = path_of(hard_state_file_name);
  const std::string bytes = fs_->read_file(path);
  // A crashed predecessor may have left this only in the page cache; acting on a vote that a
  // power loss could still undo would allow voting twice in one term.
  sync_file(*fs_->open(path, file_system::open_mode::existing));
  auto corrupt = [&](const std::string& problem) {
    return std::runtime_error("file_storage: corrupt hard state file '" + path + "': " + problem);
  };
  if (bytes.size() < record_header_bytes + hard_state_fixed_bytes)
    throw corrupt("only " + std::to_string(bytes.size()) + " bytes, at least " +
                  std::to_string(record_header_bytes + hard_state_fixed_bytes) + " expected");
  const uint32_t payload_size = get_u32(bytes.data());
  if (payload_size != bytes.size() - record_header_bytes)
    throw corrupt("length field says " + std::to_string(payload_size) +
                  " payload bytes but the file holds " +
                  std::to_string(bytes.size() - record_header_bytes));
  const uint32_t stored_crc = get_u32(bytes.data() + 4);
  const uint32_t actual_crc = crc32c(bytes.data() + record_header_bytes, payload_size);
  if (stored_crc != actual_crc)
    throw corrupt("CRC mismatch (stored " + hex32(stored_crc) + ", computed " + hex32(actual_crc) +
                  ")");
  hard_state state;
  state.term = get_u64(bytes.data() + record_header_bytes);
  state.voted_for = bytes.substr(record_header_bytes + hard_state_fixed_bytes);
  return state;
}

void file_storage::write_hard_state_file(const hard_state& state) {
  std::string bytes;
  put_u32(bytes, static_cast<uint32_t>(hard_state_fixed_bytes + state.voted_for.size()));
  put_u32(bytes, 0);
  put_u64(bytes, state.term);
  bytes.append(state.voted_for);
  overwrite_u32(bytes, 4,
                crc32c(bytes.data() + record_header_bytes, bytes.size() - record_header_bytes));

  // Write-then-rename: a crash leaves either the old file or the new one, never a mix.
  const std::string temp_path = path_of(hard_state_temp_file_name);
  const std::string final_path = path_of(hard_state_file_name);
  {
    auto file = fs_->open(temp_path, file_system::open_mode::create_or_truncate);
    file->write_at(0, bytes);
    sync_file(*file);
  }
  fs_->rename(temp_path, final_path);
  sync_directory();
  persisted_hard_state_ = state;
}

void file_storage::load_segments(const std::vector<uint64_t>& first_indexes,
                                 recovered_state& result) {
  uint64_t last_term = 0;
  for (std::size_t position = 0; position < first_indexes.size(); ++position) {
    const bool is_last = position + 1 == first_indexes.size();
    const uint64_t expected_index = last_index() + 1;
    segments_.push_back(segment{first_indexes[position], 0});
    const std::string path = segment_path(position);
    if (first_indexes[position] != expected_index)
      throw std::runtime_error(
          "file_storage: log segment '" + path + "' starts at index " +
          std::to_string(first_indexes[position]) + " but the log before it ends at index " +
          std::to_string(expected_index - 1) + (position == 0 ? " (no earlier segment)" : "") +
          "; a segment is missing or misnamed");

    const std::string bytes = fs_->read_file(path);
    // What we read may exist only in the page cache of a process that crashed before its sync;
    // once recovered, the node treats these entries as durable, so make them so.
    sync_file(*fs_->open(path, file_system::open_mode::existing));

    std::size_t offset = 0;
    while (offset < bytes.size()) {
      decoded_record record;
      std::string problem;
      if (!decode_record(bytes, offset, record, problem)) {
        if (!is_last)
          throw_corrupt_log(path, offset,
                            problem + "; this is not the last segment, so it is not a torn write");
        if (auto intact = find_intact_record_after(bytes, offset, last_index()))
          throw_corrupt_log(path, offset,
                            problem + "; an intact record follows at offset " +
                                std::to_string(*intact) + ", so this is not a torn tail");
        cut_torn_tail(path, bytes, offset, problem);
        break;
      }
      if (record.index != last_index() + 1)
        throw_corrupt_log(path, offset,
                          "record has index " + std::to_string(record.index) + ", expected " +
                              std::to_string(last_index() + 1));
      if (record.term < last_term)
        throw_corrupt_log(path, offset,
                          "record " + std::to_string(record.index) + " has term " +
                              std::to_string(record.term) + ", below the term " +
                              std::to_string(last_term) + " of the entry before it");
      if (!is_known_kind(record.kind))
        throw_corrupt_log(path, offset,
                          "record " + std::to_string(record.index) + " has unknown kind " +
                              std::to_string(record.kind));
      entry_locations_.push_back(entry_location{position, offset, record.term});
      result.entries.push_back(log_entry{record.term, record.index,
                                         static_cast<entry_kind>(record.kind),
                                         std::string(record.data)});
      last_term = record.term;
      offset += record.total_bytes;
    }
    segments_.back().size = offset;

    if (offset == 0) {
      if (!is_last)
        throw_corrupt_log(path, 0, "segment is empty but later segments exist");
      // A rollover interrupted before its first record reached the disk.
      if (bytes.empty()) {
        recovery_report_ += "removed empty log segment '" + path + "'\n";
      }
      fs_->remove(path);
      segments_.pop_back();
      directory_unsynced_ = true;
      ++stats_.segments_deleted;
    }
  }
  flushed_size_ = segments_.empty() ? 0 : segments_.back().size;
}

void file_storage::cut_torn_tail(const std::string& path, const std::string& bytes, uint64_t offset,
                                 const std::string& problem) {
  const uint64_t dropped_bytes = bytes.size() - offset;
  const uint64_t dropped_records = count_tail_records(bytes, offset);
  entries_dropped_ += dropped_records;
  bytes_dropped_ += dropped_bytes;
  recovery_report_ += "cut torn tail of log segment '" + path + "' at offset " +
                      std::to_string(offset) + " (" + problem + "): dropped " +
                      std::to_string(dropped_records) + " partial record(s), " +
                      std::to_string(dropped_bytes) + " byte(s); the log now ends at index " +
                      std::to_string(last_index()) + "\n";
  if (offset == 0)
    return; // the caller removes the then empty segment
  // The cut is made durable now, so new appends can never sit behind the old torn bytes.
  auto file = fs_->open(path, file_system::open_mode::existing);
  file->truncate(offset);
  sync_file(*file);
}

// -- writing
// ---------------------------------------------------------------------------------------

void file_storage::validate(const persist_request& request) const {
  if (request.has_hard_state) {
    const hard_state& latest = pending_hard_state_ ? *pending_hard_state_ : persisted_hard_state_;
    if (request.state.term < latest.term)
      throw std::logic_error("file_storage: term would go back from " +
                             std::to_string(latest.term) + " to " +
                             std::to_string(request.state.term));
    if (request.state.voted_for.size() >
        std::numeric_limits<uint32_t>::max() - hard_state_fixed_bytes)
      throw std::logic_error("file_storage: voted_for is too long");
  }
  uint64_t end = last_index();
  if (request.truncate_from != 0 && request.truncate_from <= end)
    end = request.truncate_from - 1;
  uint64_t previous_term = end == 0 ? 0 : entry_locations_[end - 1].term;
  for (const log_entry& entry : request.entries) {
    if (entry.index != end + 1)
      throw std::logic_error("file_storage: non-contiguous append of index " +
                             std::to_string(entry.index) + " after " + std::to_string(end));
    if (entry.term < previous_term)
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) + " has term " +
                             std::to_string(entry.term) + ", below the term " +
                             std::to_string(previous_term) + " of the entry before it");
    if (!is_known_kind(static_cast<uint8_t>(entry.kind)))
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) +
                             " has unknown kind " +
                             std::to_string(static_cast<unsigned>(entry.kind)));
    if (entry.data.size() > std::numeric_limits<uint32_t>::max() - entry_fixed_bytes)
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) +
                             " is too large for one record");
    end = entry.index;
    previous_term = entry.term;
  }
}

void file_storage::write(const persist_request& request) {
  require_usable("write");
  validate(request);
  try {
    if (request.has_hard_state)
      pending_hard_state_ = request.state;
    if (request.truncate_from != 0 && request.truncate_from <= last_index())
      truncate_log_from(request.truncate_from);
    for (const log_entry& entry : request.entries)
      append_entry(entry);
    if (write_buffer_.size() >= options_.write_buffer_bytes)
      flush_write_buffer();
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void file_storage::sync() {
  require_usable("sync");
  try {
    persist_pending_hard_state();
    flush_write_buffer();
    if (current_segment_unsynced_) {
      sync_file(*current_file_);
      current_segment_unsynced_ = false;
    }
    if (directory_unsynced_)
      sync_directory();
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void file_storage::persist_pending_hard_state() {
  if (pending_hard_state_ && !(*pending_hard_state_ == persisted_hard_state_))
    write_hard_state_file(*pending_hard_state_); // durable on return
  pending_hard_state_.reset();
}

void file_storage::truncate_log_from(uint64_t index) {
  const entry_location cut = entry_locations_[index - 1];
  const std::size_t last_position = segments_.size() - 1;
  // Cutting at a segment's first entry removes the segment: recovery accepts an empty segment
  // only at the very end, and only as the trace of an interrupted rollover.
  const bool cut_whole_segment = cut.offset == 0;
  const std::size_t first_removed = cut_whole_segment ? cut.segment : cut.segment + 1;
  entry_locations_.resize(index - 1);

  if (cut.segment == last_position && !cut_whole_segment && cut.offset >= flushed_size_) {
    // None of the removed entries has left our buffer yet.
    write_buffer_.resize(cut.offset - flushed_size_);
    segments_.back().size = cut.offset;
    return;
  }

  // The request's hard state first: a crash must never leave entries removed (maybe entries this
  // node acknowledged) under a term that does not explain why.
  persist_pending_hard_state();
  write_buffer_.clear();
  if (first_removed <= last_position) {
    current_file_.reset();
    current_segment_unsynced_ = false;
    // Newest first, each removal durable before the next: whatever a crash leaves behind is
    // still a contiguous run of segments.
    for (std::size_t position = last_position + 1; position-- > first_removed;) {
      fs_->remove(segment_path(position));
      ++stats_.segments_deleted;
      segments_.pop_back();
      sync_directory();
    }
  }
  if (cut_whole_segment) {
    // The segment before, if any, was synced when the removed one was started.
    flushed_size_ = segments_.empty() ? 0 : segments_.back().size;
    return;
  }
  if (!current_file_)
    open_current_segment();
  // Durable before any new entry is written behind it: otherwise a crash could bring the old
  // entries back after the new ones, and recovery would read a log that never existed.
  current_file_->truncate(cut.offset);
  sync_file(*current_file_);
  current_segment_unsynced_ = false;
  segments_.back().size = cut.offset;
  flushed_size_ = cut.offset;
}

void file_storage::append_entry(const log_entry& entry) {
  if (segments_.empty() || segments_.back().size >= options_.max_segment_bytes)
    start_segment(entry.index);
  else if (!current_file_)
    open_current_segment();
  segment& current = segments_.back();
  const uint64_t offset = current.size;
  const std::size_t buffered_before = write_buffer_.size();
  encode_entry(write_buffer_, entry);
  current.size += write_buffer_.size() - buffered_before;
  entry_locations_.push_back(entry_location{segments_.size() - 1, offset, entry.term});
}

void file_storage::start_segment(uint64_t first_index) {
  if (current_file_) {
    flush_write_buffer();
    // The old segment must be complete on disk before the new one can hold anything: a torn
    // record followed by a later segment would look like lost data, not like a crash.
    if (current_segment_unsynced_)
      sync_file(*current_file_);
    current_segment_unsynced_ = false;
    current_file_.reset();
  }
  const std::string path = path_of(segment_file_name(first_index));
  current_file_ = fs_->open(path, file_system::open_mode::create_new);
  segments_.push_back(segment{first_index, 0});
  flushed_size_ = 0;
  directory_unsynced_ = true;
  ++stats_.segments_created;
}

void file_storage::open_current_segment() {
  current_file_ = fs_->open(segment_path(segments_.size() - 1), file_system::open_mode::existing);
}

void file_storage::flush_write_buffer() {
  if (write_buffer_.empty())
    return;
  // Not even the kernel may see an entry before a hard state with its term is durable: it may
  // write dirty pages back at any moment, and a log ahead of the term cannot be recovered.
  persist_pending_hard_state();
  current_file_->write_at(flushed_size_, write_buffer_);
  flushed_size_ += write_buffer_.size();
  write_buffer_.clear();
  current_segment_unsynced_ = true;
}

void file_storage::sync_file(file_system::file& file) {
  file.sync_data();
  ++stats_.file_syncs;
}

void file_storage::sync_directory() {
  fs_->sync_directory(directory_);
  directory_unsynced_ = false;
  ++stats_.directory_syncs;
}

} // namespace infinity
