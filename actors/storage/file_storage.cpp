#include "actors/storage/file_storage.hpp"
#include "actors/storage/little_endian.hpp"

#include <algorithm>
#include <array>
#include <cassert>
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

// -- format
// ----------------------------------------------------------------------------------------

namespace {

constexpr const char* lock_file_name = "LOCK";
constexpr const char* hard_state_file_name = "hard_state";
constexpr const char* hard_state_temp_file_name = "hard_state.tmp";
constexpr const char* identity_file_name = "identity";
constexpr const char* identity_temp_file_name = "identity.tmp";

constexpr std::string_view segment_prefix = "log-";
constexpr std::string_view segment_suffix = ".seg";
constexpr std::size_t segment_index_digits = 20; // enough for any uint64_t

constexpr std::size_t record_header_bytes = 8;       // length, CRC
constexpr std::size_t entry_fixed_bytes = 8 + 8 + 1; // term, index, kind
constexpr std::size_t min_record_bytes = record_header_bytes + entry_fixed_bytes;
constexpr uint8_t marker_kind = 0xFF;
constexpr std::size_t marker_payload_bytes = entry_fixed_bytes + 8; // + its own offset
constexpr std::size_t marker_record_bytes = record_header_bytes + marker_payload_bytes;

constexpr std::string_view hard_state_magic = "IHS4";
/// Earlier formats: without the base and the flags; also without the repair term.
constexpr std::string_view hard_state_v3_magic = "IHS3";
constexpr std::string_view hard_state_v2_magic = "IHS2";
/// magic, term, repair, hint, repair term, base index, base term, flags
constexpr std::size_t hard_state_fixed_bytes = 4 + 8 + 8 + 8 + 8 + 8 + 8 + 1;
constexpr std::size_t hard_state_v3_fixed_bytes = 4 + 8 + 8 + 8 + 8;
constexpr std::size_t hard_state_v2_fixed_bytes = 4 + 8 + 8 + 8; // magic, term, repair, hint
constexpr std::size_t hard_state_v1_fixed_bytes = 8;             // term
/// Flags of the hard state file: a reset to the recorded base is under way.
constexpr uint8_t hard_state_reset_flag = 0x01;
constexpr std::string_view identity_magic = "IID1";

/// What an unsynced append leaves after a power cut can only be judged per sector: each one
/// either reached the disk or still holds what was there (zeros, for fresh space).
constexpr std::size_t sector_bytes = 512;

using little_endian::get_u32;
using little_endian::get_u64;
using little_endian::put_u32;
using little_endian::put_u64;

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08" PRIx32, value);
  return text;
}

bool is_entry_kind(uint8_t kind) {
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

/// Appends `length | CRC | payload` for the payload that starts at `payload_position` of `out`,
/// whose header bytes were reserved before it.
void seal_record(std::string& out, std::size_t header_position) {
  const std::size_t payload_position = header_position + record_header_bytes;
  const std::size_t payload_size = out.size() - payload_position;
  const uint32_t crc = crc32c(out.data() + payload_position, payload_size);
  for (int i = 0; i < 4; ++i) {
    out[header_position + i] = static_cast<char>((payload_size >> (8 * i)) & 0xFFu);
    out[header_position + 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFFu);
  }
}

void encode_entry(std::string& out, const log_entry& entry) {
  const std::size_t header_position = out.size();
  out.append(record_header_bytes, '\0');
  put_u64(out, entry.term);
  put_u64(out, entry.index);
  out.push_back(static_cast<char>(entry.kind));
  out.append(entry.data);
  seal_record(out, header_position);
}

/// A marker says: the `synced_index` entries before `offset` of this segment were synced.
void encode_marker(std::string& out, uint64_t synced_index, uint64_t offset) {
  const std::size_t header_position = out.size();
  out.append(record_header_bytes, '\0');
  put_u64(out, 0);
  put_u64(out, synced_index);
  out.push_back(static_cast<char>(marker_kind));
  put_u64(out, offset);
  seal_record(out, header_position);
}

std::string framed(const std::string& payload) {
  std::string out(record_header_bytes, '\0');
  out += payload;
  seal_record(out, 0);
  return out;
}

struct decoded_record {
  uint64_t term = 0;
  uint64_t index = 0;
  uint8_t kind = 0;
  std::string_view data;
  std::size_t total_bytes = 0;

  bool is_marker() const { return kind == marker_kind; }
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

bool is_intact_marker_at(std::string_view bytes, std::size_t offset) {
  if (bytes.size() - offset < marker_record_bytes)
    return false;
  const char* header = bytes.data() + offset;
  const char* payload = header + record_header_bytes;
  // Cheap tests first: a marker names its own offset, so a false match needs a CRC collision.
  return get_u32(header) == marker_payload_bytes &&
         static_cast<uint8_t>(payload[16]) == marker_kind &&
         get_u64(payload + entry_fixed_bytes) == offset &&
         get_u32(header + 4) == crc32c(payload, marker_payload_bytes);
}

// -- torn write or corruption ---------------------------------------------------------------------

/// Evidence that the bad record at `offset` of the last segment was synced: an intact sync marker
/// after it.
std::optional<std::size_t> find_marker_after(std::string_view bytes, std::size_t offset) {
  for (std::size_t candidate = offset + 1; candidate + marker_record_bytes <= bytes.size();
       ++candidate)
    if (is_intact_marker_at(bytes, candidate))
      return candidate;
  return std::nullopt;
}

/// Evidence that the bad record at `offset` is complete and only its length field is damaged:
/// its checksum matches a payload of another length, which starts with the expected index (an
/// entry) or is a marker at this offset. One pass of CRC over the rest of the file.
std::optional<std::size_t> length_that_matches_crc(std::string_view bytes, std::size_t offset,
                                                   uint64_t expected_index) {
  if (bytes.size() - offset < min_record_bytes)
    return std::nullopt;
  const char* header = bytes.data() + offset;
  const char* payload = header + record_header_bytes;
  const uint32_t stated = get_u32(header);
  const uint32_t stored_crc = get_u32(header + 4);
  const std::size_t available = bytes.size() - offset - record_header_bytes;
  const bool entry_shaped =
      is_entry_kind(static_cast<uint8_t>(payload[16])) && get_u64(payload + 8) == expected_index;
  const bool marker_shaped = static_cast<uint8_t>(payload[16]) == marker_kind;
  if (!entry_shaped && !marker_shaped)
    return std::nullopt;
  uint32_t crc = crc32c(payload, entry_fixed_bytes - 1);
  for (std::size_t length = entry_fixed_bytes; length <= available; ++length) {
    crc = crc32c(payload + length - 1, 1, crc);
    if (crc == stored_crc && length != stated &&
        (entry_shaped ||
         (length == marker_payload_bytes && get_u64(payload + entry_fixed_bytes) == offset)))
      return length;
  }
  return std::nullopt;
}

/// If the bytes in [begin, end) touch a sector whose part from `begin` on (up to the sector's end
/// or the end of the file) is all zeros, returns that range: an unsynced write whose sector never
/// reached the disk.
std::optional<std::pair<std::size_t, std::size_t>>
zeroed_sector(std::string_view bytes, std::size_t begin, std::size_t end) {
  for (std::size_t sector = begin / sector_bytes * sector_bytes; sector < end;
       sector += sector_bytes) {
    const std::size_t from = std::max(begin, sector);
    const std::size_t to = std::min(sector + sector_bytes, bytes.size());
    if (from < to && std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(from),
                                 bytes.begin() + static_cast<std::ptrdiff_t>(to),
                                 [](char c) { return c == '\0'; }))
      return std::make_pair(from, to);
  }
  return std::nullopt;
}

/// If the bad record at `offset` has the shape of a torn append, says which.
std::optional<std::string> torn_shape(std::string_view bytes, std::size_t offset) {
  const std::size_t remaining = bytes.size() - offset;
  if (remaining < record_header_bytes)
    return "a header cut short by the end of the file";
  const uint32_t payload_size = get_u32(bytes.data() + offset);
  // With an implausible length only the header itself can be judged.
  std::size_t end = offset + record_header_bytes;
  if (payload_size >= entry_fixed_bytes) {
    if (payload_size > remaining - record_header_bytes)
      return "a record cut short by the end of the file";
    end = offset + record_header_bytes + payload_size;
  }
  if (auto zeros = zeroed_sector(bytes, offset, end))
    return "bytes " + std::to_string(zeros->first) + " to " + std::to_string(zeros->second) +
           " read back as zeros";
  return std::nullopt;
}

/// Highest index named by an intact record at or after `start` (an entry's index, a marker's
/// synced index), trying every offset since lengths after damage cannot be trusted. An entry
/// counts only if its index fits: the records between the last good entry (`base_index`) and it
/// need `min_record_bytes` each. That keeps this linear and ignores entry data that looks like a
/// record.
uint64_t highest_intact_index(std::string_view bytes, std::size_t start, uint64_t base_index) {
  uint64_t highest = 0;
  std::size_t offset = start;
  while (offset + min_record_bytes <= bytes.size()) {
    const char* header = bytes.data() + offset;
    const uint32_t payload_size = get_u32(header);
    if (payload_size >= entry_fixed_bytes &&
        payload_size <= bytes.size() - offset - record_header_bytes) {
      const uint64_t index = get_u64(header + record_header_bytes + 8);
      const uint8_t kind = static_cast<uint8_t>(header[record_header_bytes + 16]);
      const bool plausible =
          kind == marker_kind ? is_intact_marker_at(bytes, offset)
                              : is_entry_kind(kind) && index > base_index &&
                                    index - base_index - 1 <= (offset - start) / min_record_bytes;
      if (plausible && get_u32(header + 4) == crc32c(header + record_header_bytes, payload_size)) {
        highest = std::max(highest, index);
        offset += record_header_bytes + payload_size;
        continue;
      }
    }
    ++offset;
  }
  return highest;
}

/// How many records a torn tail held, following its length fields for as long as they are
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

/// What `scan_log` found beyond the entries it loaded into `segments_` and `entry_locations_`.
struct file_storage::scan_result {
  std::vector<log_entry> entries;
  /// A torn tail to cut silently.
  std::optional<log_cut> torn_cut;
  std::string torn_report;
  /// Where and why it looked torn, should the commit hint prove otherwise.
  std::string torn_place;
  uint64_t torn_records = 0;
  uint64_t torn_bytes = 0;
  /// Corruption: the cut that would repair it.
  std::optional<log_cut> damage_cut;
  std::string damage_description;
  /// Upper bound of the indexes lost with the damage, from what survives after it.
  uint64_t highest_lost_index = 0;
};

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
  // Not a promise of durability (only `sync` gives that), but a clean shutdown should neither
  // lose appends still in our buffer nor the evidence that the last batch was synced. Only
  // through the open segment: a pending hard state would have to go first, and a handle of a
  // process that (in simulation) died since cannot write into the next one's files.
  if (failed_ || !recovered_ || damage_ || !current_file_ ||
      (pending_hard_state_ && !(*pending_hard_state_ == persisted_.state)))
    return;
  try {
    if (marker_pending_) {
      append_marker();
      --stats_.markers_in_batches;
      ++stats_.markers_alone;
    }
    flush_write_buffer();
    if (current_segment_unsynced_)
      sync_file(*current_file_);
  } catch (...) {
    // Nothing was promised for these bytes; recovery copes with whatever reached the disk.
  }
}

std::string file_storage::path_of(const std::string& file_name) const {
  return directory_ + "/" + file_name;
}

std::string file_storage::segment_path(std::size_t position) const {
  return path_of(segment_file_name(segments_[position].first_index));
}

uint64_t file_storage::term_at(uint64_t index) const {
  assert(index >= base_.index && index <= last_index());
  return index == base_.index ? base_.term : entry_locations_[index - base_.index - 1].term;
}

uint64_t file_storage::wanted_commit_hint() const {
  return std::max(persisted_.commit_hint, std::min(requested_commit_index_, synced_last_index_));
}

void file_storage::require_usable(const char* operation) const {
  if (!recovered_)
    throw std::logic_error(std::string("file_storage::") + operation + " called before recover()");
  if (damage_)
    throw std::logic_error(std::string("file_storage::") + operation +
                           " called while recover() found damage that accept_repair() has not "
                           "repaired: " +
                           damage_->description);
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
  std::vector<std::string> temp_files;
  bool has_hard_state = false;
  bool has_identity = false;
  for (const std::string& name : fs_->list_directory(directory_)) {
    if (name == hard_state_file_name)
      has_hard_state = true;
    else if (name == identity_file_name)
      has_identity = true;
    else if (name == hard_state_temp_file_name || name == identity_temp_file_name)
      temp_files.push_back(name); // a crash before the rename: never became the real file
    else if (auto first_index = parse_segment_file_name(name))
      segment_first_indexes.push_back(*first_index);
  }
  std::sort(segment_first_indexes.begin(), segment_first_indexes.end());

  if (has_identity)
    identity_ = read_identity_file();
  if (has_hard_state) {
    persisted_ = read_hard_state_file();
  } else if (!segment_first_indexes.empty() || has_identity) {
    throw std::runtime_error(
        "file_storage: hard state file '" + path_of(hard_state_file_name) + "' is missing but " +
        (segment_first_indexes.empty()
             ? "the identity file '" + path_of(identity_file_name) + "' exists"
             : "the log has " + std::to_string(segment_first_indexes.size()) +
                   " segment(s) starting with '" +
                   path_of(segment_file_name(segment_first_indexes.front())) + "'") +
        "; refusing to start without the term and vote");
  }
  result.state = persisted_.state;
  base_ = persisted_.base;

  if (persisted_.reset_in_progress) {
    // A reset was interrupted: nothing of the old log may survive, whatever its indexes.
    doomed_segments_ = std::move(segment_first_indexes);
    segment_first_indexes.clear();
  } else {
    // Segments entirely at or below the base are what an interrupted compaction left: the base
    // is always recorded before they go, and always the last index of one of them. One that
    // reaches above the base (no next segment starts right after it) is no such leftover.
    while (!segment_first_indexes.empty() && segment_first_indexes.front() <= base_.index) {
      if (segment_first_indexes.size() < 2 || segment_first_indexes[1] > base_.index + 1)
        throw std::runtime_error(
            "file_storage: log segment '" + path_of(segment_file_name(segment_first_indexes[0])) +
            "' starts at index " + std::to_string(segment_first_indexes[0]) +
            ", at or below the base " + std::to_string(base_.index) + " recorded in '" +
            path_of(hard_state_file_name) + "', but no segment starts right after the base");
      doomed_segments_.push_back(segment_first_indexes.front());
      segment_first_indexes.erase(segment_first_indexes.begin());
    }
  }

  scan_result scan = scan_log(segment_first_indexes);
  const uint64_t hint = persisted_.commit_hint;
  if (!scan.damage_cut && last_index() < hint) {
    if (!scan.torn_cut || scan.torn_bytes == 0)
      throw std::runtime_error(
          "file_storage: the log in '" + directory_ + "' ends at index " +
          std::to_string(last_index()) + " but hard state file '" + path_of(hard_state_file_name) +
          "' records that index " + std::to_string(hint) +
          " was committed and synced, so log segments were deleted, emptied or truncated");
    // The commit hint proves the "torn" records were synced: corruption after all.
    scan.damage_cut = scan.torn_cut;
    scan.damage_description = "corrupt " + scan.torn_place + ": it looks torn, but the commit " +
                              "hint in '" + path_of(hard_state_file_name) + "' says index " +
                              std::to_string(hint) + " was synced";
    scan.highest_lost_index = last_index() + scan.torn_records;
    scan.torn_cut.reset();
  }

  if (scan.damage_cut) {
    // Nothing changes on disk until the caller accepts the repair.
    damage_ = storage_damage{
        "file_storage: " + scan.damage_description + "; repairing would cut the log after index " +
            std::to_string(last_index()),
        last_index(), std::max({last_index() + 1, scan.highest_lost_index, hint})};
    repair_cut_ = scan.damage_cut;
    leftover_temp_files_ = std::move(temp_files);
    result.base = base_;
    result.entries = std::move(scan.entries);
    result.damage = damage_;
    recovered_ = true;
    return result;
  }

  if (scan.torn_cut) {
    recovery_report_ += scan.torn_report + "\n";
    entries_dropped_ += scan.torn_records;
    bytes_dropped_ += scan.torn_bytes;
  }
  if (!doomed_segments_.empty())
    recovery_report_ += "removed " + std::to_string(doomed_segments_.size()) +
                        " log segment(s) at or below the base " + std::to_string(base_.index) +
                        (persisted_.reset_in_progress ? " (finishing an interrupted reset)\n"
                                                      : " (finishing an interrupted compaction)\n");
  leftover_temp_files_ = std::move(temp_files);
  finish_recovery(scan.torn_cut, !has_hard_state);
  result.base = base_;
  result.entries = std::move(scan.entries);
  return result;
}

void file_storage::accept_repair() {
  if (!recovered_ || !damage_)
    throw std::logic_error("file_storage::accept_repair() called without damage to repair");
  if (failed_)
    throw std::runtime_error("file_storage: an earlier I/O error left '" + directory_ +
                             "' in an unknown state; restart the node to recover from disk");
  try {
    remove_leftover_temp_files(); // before write_hard_state_file reuses the name
    // Repair mode is durable before anything is cut, so a crash during the cut restarts in it.
    hard_state state = persisted_.state;
    state.repair_until_index =
        std::max(state.repair_until_index, damage_->possibly_acknowledged_up_to);
    // Every lost entry was written in this term or an earlier one.
    state.repair_term = std::max(state.repair_term, state.term);
    write_hard_state_file(state, std::min(persisted_.commit_hint, damage_->keep_last_index));
    recovery_report_ += "repaired: " + damage_->description + "; entries up to index " +
                        std::to_string(damage_->possibly_acknowledged_up_to) +
                        " must be caught up from a leader\n";
    const std::optional<log_cut> cut = repair_cut_;
    damage_.reset();
    repair_cut_.reset();
    recovered_ = false; // finish_recovery sets it once everything is durable
    finish_recovery(cut, false);
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void file_storage::remove_leftover_temp_files() {
  for (const std::string& name : leftover_temp_files_) {
    fs_->remove(path_of(name));
    directory_unsynced_ = true;
  }
  leftover_temp_files_.clear();
}

void file_storage::finish_recovery(const std::optional<log_cut>& cut, bool fresh) {
  remove_leftover_temp_files(); // before write_hard_state_file reuses the name
  if (fresh)
    // A fresh directory gets a hard state file before any segment can exist, so that later a
    // missing file can only mean damage, never "not written yet".
    write_hard_state_file(persisted_.state, 0);
  // Oldest first, as compact_log removes them; their entries are all in a snapshot.
  for (uint64_t first_index : doomed_segments_) {
    fs_->remove(path_of(segment_file_name(first_index)));
    ++stats_.segments_deleted;
  }
  if (!doomed_segments_.empty())
    sync_directory(); // before the reset flag is cleared: no old segment may come back after
  doomed_segments_.clear();
  if (persisted_.reset_in_progress)
    write_hard_state_file(persisted_.state, persisted_.commit_hint, persisted_.base, false);
  std::optional<uint64_t> synced_by_cut;
  if (cut)
    synced_by_cut = apply_cut(*cut);
  // What we read may exist only in the page cache of a process that crashed before its sync;
  // once recovered, the node treats it as durable (acting on a vote a power loss could still
  // undo would allow voting twice in one term), so make it so.
  for (std::size_t position = 0; position < segments_.size(); ++position)
    if (segments_[position].first_index != synced_by_cut)
      sync_file(*fs_->open(segment_path(position), file_system::open_mode::existing));
  sync_file(*fs_->open(path_of(hard_state_file_name), file_system::open_mode::existing));
  if (identity_)
    sync_file(*fs_->open(path_of(identity_file_name), file_system::open_mode::existing));
  // Also covers renames and segment creations a crashed predecessor never synced.
  sync_directory();

  flushed_size_ = segments_.empty() ? 0 : segments_.back().size;
  synced_last_index_ = last_index();
  marker_pending_ = flushed_size_ > 0;
  requested_commit_index_ = persisted_.commit_hint;
  assert(persisted_.commit_hint <= last_index());
  recovered_ = true;
}

file_storage::scan_result file_storage::scan_log(const std::vector<uint64_t>& first_indexes) {
  scan_result result;
  // The first entry follows the base, so its term is at least the base's.
  uint64_t last_term = base_.term;
  for (std::size_t position = 0; position < first_indexes.size(); ++position) {
    const uint64_t first_index = first_indexes[position];
    const std::string path = path_of(segment_file_name(first_index));
    const bool is_last = position + 1 == first_indexes.size();

    if (result.damage_cut) {
      // Lost with the damage before it: only an upper bound of what it held matters.
      const std::string bytes = fs_->read_file(path);
      if (!bytes.empty())
        result.highest_lost_index = std::max({result.highest_lost_index, first_index,
                                              highest_intact_index(bytes, 0, first_index - 1)});
      result.damage_cut->later_first_indexes.push_back(first_index);
      continue;
    }

    const uint64_t expected_index = last_index() + 1;
    if (first_index != expected_index)
      throw std::runtime_error("file_storage: log segment '" + path + "' starts at index " +
                               std::to_string(first_index) +
                               " but the log before it ends at index " +
                               std::to_string(expected_index - 1) +
                               (position == 0 ? " (no earlier segment; the base recorded in '" +
                                                    path_of(hard_state_file_name) + "' is " +
                                                    std::to_string(base_.index) + ")"
                                              : "") +
                               "; a segment is missing or misnamed");
    const std::string bytes = fs_->read_file(path);
    if (bytes.empty() && !is_last)
      throw std::runtime_error("file_storage: log segment '" + path +
                               "' is empty but later segments exist; it was emptied");
    segments_.push_back(segment{first_index, 0});
    const std::size_t entries_before = entry_locations_.size();

    std::size_t offset = 0;
    while (offset < bytes.size()) {
      decoded_record record;
      std::string problem;
      if (decode_record(bytes, offset, record, problem)) {
        if (record.is_marker()) {
          if (record.total_bytes != marker_record_bytes || record.term != 0 ||
              get_u64(record.data.data()) != offset || record.index != last_index())
            throw std::runtime_error("file_storage: log segment '" + path + "' has at offset " +
                                     std::to_string(offset) +
                                     " a sync marker that does not match its place in the log");
          offset += record.total_bytes;
          continue;
        }
        const auto refuse = [&](const std::string& what) {
          throw std::runtime_error("file_storage: log segment '" + path + "' at offset " +
                                   std::to_string(offset) + " holds a valid record that " + what);
        };
        if (record.index != last_index() + 1)
          refuse("has index " + std::to_string(record.index) + ", expected " +
                 std::to_string(last_index() + 1));
        if (record.term < last_term)
          refuse("has term " + std::to_string(record.term) + ", below the term " +
                 std::to_string(last_term) + " of the entry before it");
        if (!is_entry_kind(record.kind))
          refuse("has unknown kind " + std::to_string(record.kind));
        entry_locations_.push_back(entry_location{segments_.size() - 1, offset, record.term});
        result.entries.push_back(log_entry{record.term, record.index,
                                           static_cast<entry_kind>(record.kind),
                                           std::string(record.data)});
        last_term = record.term;
        offset += record.total_bytes;
        continue;
      }

      // A bad record: a torn write only if nothing proves it was synced and it looks torn.
      std::string evidence;
      if (!is_last)
        evidence = "it is not in the last segment, and a segment is synced before the next starts";
      else if (auto marker = find_marker_after(bytes, offset))
        evidence =
            "an intact sync marker at offset " + std::to_string(*marker) + " proves it was synced";
      else if (auto length = length_that_matches_crc(bytes, offset, last_index() + 1))
        evidence = "its checksum matches at length " + std::to_string(*length) +
                   ", so the record is complete and its length field damaged";
      const std::optional<std::string> torn =
          evidence.empty() ? torn_shape(bytes, offset) : std::nullopt;
      const log_cut cut{first_index, offset, false, {}};
      if (torn) {
        result.torn_cut = cut;
        result.torn_records = count_tail_records(bytes, offset);
        result.torn_bytes = bytes.size() - offset;
        result.torn_place = "log segment '" + path + "' at offset " + std::to_string(offset) +
                            " (" + problem + "; " + *torn + ")";
        result.torn_report = "cut torn tail of " + result.torn_place + ": dropped " +
                             std::to_string(result.torn_records) + " partial record(s), " +
                             std::to_string(result.torn_bytes) +
                             " byte(s); the log now ends at index " + std::to_string(last_index());
      } else {
        result.damage_cut = cut;
        result.damage_description =
            "corrupt log segment '" + path + "' at offset " + std::to_string(offset) + ": " +
            problem + "; " +
            (evidence.empty() ? "a complete record of non-zero bytes is no torn write" : evidence);
        result.highest_lost_index = highest_intact_index(bytes, offset, last_index());
      }
      break;
    }
    segments_.back().size = offset;
    if (entry_locations_.size() == entries_before && !is_last && !result.damage_cut)
      throw std::runtime_error("file_storage: log segment '" + path +
                               "' holds no entries but later segments exist");
    if (entry_locations_.size() == entries_before) {
      // No entry left in it: the cut (or the trace of a rollover interrupted before its first
      // record reached the disk) removes the file.
      segments_.pop_back();
      if (result.damage_cut) {
        result.damage_cut->remove_file = true;
      } else if (result.torn_cut) {
        result.torn_cut->remove_file = true;
      } else {
        result.torn_cut = log_cut{first_index, 0, true, {}};
        result.torn_report = "removed empty log segment '" + path + "'";
      }
    }
  }
  return result;
}

std::optional<uint64_t> file_storage::apply_cut(const log_cut& cut) {
  // Newest first, each removal durable before the next: whatever a crash leaves behind is still
  // a contiguous run of segments.
  for (auto it = cut.later_first_indexes.rbegin(); it != cut.later_first_indexes.rend(); ++it) {
    fs_->remove(path_of(segment_file_name(*it)));
    ++stats_.segments_deleted;
    sync_directory();
  }
  const std::string path = path_of(segment_file_name(cut.first_index));
  if (cut.remove_file) {
    fs_->remove(path);
    ++stats_.segments_deleted;
    sync_directory();
    return std::nullopt;
  }
  // Durable now, so new appends can never sit behind the old bytes.
  auto file = fs_->open(path, file_system::open_mode::existing);
  file->truncate(cut.offset);
  sync_file(*file);
  return cut.first_index;
}

// -- hard state and identity files
// ---------------------------------------------------------

file_storage::hard_state_record file_storage::read_hard_state_file() {
  const std::string path = path_of(hard_state_file_name);
  const std::string bytes = fs_->read_file(path);
  auto corrupt = [&](const std::string& problem) {
    return std::runtime_error("file_storage: corrupt hard state file '" + path + "': " + problem);
  };
  if (bytes.size() < record_header_bytes + hard_state_v1_fixed_bytes)
    throw corrupt("only " + std::to_string(bytes.size()) + " bytes, at least " +
                  std::to_string(record_header_bytes + hard_state_v1_fixed_bytes) + " expected");
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
  const std::string_view payload(bytes.data() + record_header_bytes, payload_size);
  hard_state_record record;
  if (payload.size() >= hard_state_fixed_bytes && payload.substr(0, 4) == hard_state_magic) {
    record.state.term = get_u64(payload.data() + 4);
    record.state.repair_until_index = get_u64(payload.data() + 12);
    record.commit_hint = get_u64(payload.data() + 20);
    record.state.repair_term = get_u64(payload.data() + 28);
    record.base.index = get_u64(payload.data() + 36);
    record.base.term = get_u64(payload.data() + 44);
    const auto flags = static_cast<uint8_t>(payload[52]);
    if ((flags & ~hard_state_reset_flag) != 0)
      throw corrupt("unknown flags " + std::to_string(flags));
    record.reset_in_progress = (flags & hard_state_reset_flag) != 0;
    record.state.voted_for = std::string(payload.substr(hard_state_fixed_bytes));
    // An invariant every write keeps; a file that breaks it was not written by us.
    if (record.base.index == 0 && record.base.term != 0)
      throw corrupt("base index 0 with term " + std::to_string(record.base.term));
  } else if (payload.size() >= hard_state_v3_fixed_bytes &&
             payload.substr(0, 4) == hard_state_v3_magic) {
    // No base (the log starts at 1) and no reset.
    record.state.term = get_u64(payload.data() + 4);
    record.state.repair_until_index = get_u64(payload.data() + 12);
    record.commit_hint = get_u64(payload.data() + 20);
    record.state.repair_term = get_u64(payload.data() + 28);
    record.state.voted_for = std::string(payload.substr(hard_state_v3_fixed_bytes));
  } else if (payload.size() >= hard_state_v2_fixed_bytes &&
             payload.substr(0, 4) == hard_state_v2_magic) {
    record.state.term = get_u64(payload.data() + 4);
    record.state.repair_until_index = get_u64(payload.data() + 12);
    record.commit_hint = get_u64(payload.data() + 20);
    // Lost entries have no term above the one recorded then; the current one bounds it.
    record.state.repair_term = record.state.repair_until_index > 0 ? record.state.term : 0;
    record.state.voted_for = std::string(payload.substr(hard_state_v2_fixed_bytes));
  } else {
    // The first format: no repair mode, no commit hint.
    record.state.term = get_u64(payload.data());
    record.state.voted_for = std::string(payload.substr(hard_state_v1_fixed_bytes));
  }
  return record;
}

void file_storage::write_hard_state_file(const hard_state& state, uint64_t commit_hint) {
  assert(!persisted_.reset_in_progress);
  write_hard_state_file(state, commit_hint, persisted_.base, false);
}

void file_storage::write_hard_state_file(const hard_state& state, uint64_t commit_hint,
                                         const log_base& base, bool reset_in_progress) {
  assert(commit_hint <= std::max(last_index(), persisted_.commit_hint));
  assert(commit_hint <= std::max(base.index, last_index()));
  assert(base.index != 0 || base.term == 0);
  std::string payload(hard_state_magic);
  put_u64(payload, state.term);
  put_u64(payload, state.repair_until_index);
  put_u64(payload, commit_hint);
  put_u64(payload, state.repair_term);
  put_u64(payload, base.index);
  put_u64(payload, base.term);
  payload.push_back(static_cast<char>(reset_in_progress ? hard_state_reset_flag : 0));
  payload += state.voted_for;
  write_atomically(hard_state_file_name, hard_state_temp_file_name, framed(payload));
  persisted_ = hard_state_record{state, commit_hint, base, reset_in_progress};
  ++stats_.hard_state_writes;
}

std::optional<node_identity> file_storage::read_identity_file() {
  const std::string path = path_of(identity_file_name);
  const std::string bytes = fs_->read_file(path);
  auto corrupt = [&](const std::string& problem) {
    return std::runtime_error("file_storage: corrupt identity file '" + path + "': " + problem);
  };
  const std::size_t fixed = record_header_bytes + identity_magic.size() + 4;
  if (bytes.size() < fixed)
    throw corrupt("only " + std::to_string(bytes.size()) + " bytes, at least " +
                  std::to_string(fixed) + " expected");
  if (get_u32(bytes.data()) != bytes.size() - record_header_bytes ||
      get_u32(bytes.data() + 4) !=
          crc32c(bytes.data() + record_header_bytes, bytes.size() - record_header_bytes))
    throw corrupt("length or CRC mismatch");
  const std::string_view payload(bytes.data() + record_header_bytes,
                                 bytes.size() - record_header_bytes);
  if (payload.substr(0, identity_magic.size()) != identity_magic)
    throw corrupt("unknown format");
  const uint32_t node_id_size = get_u32(payload.data() + identity_magic.size());
  const std::size_t ids = identity_magic.size() + 4;
  if (node_id_size > payload.size() - ids)
    throw corrupt("node id length " + std::to_string(node_id_size) + " runs past the end");
  return node_identity{std::string(payload.substr(ids, node_id_size)),
                       std::string(payload.substr(ids + node_id_size))};
}

void file_storage::write_identity_file(const node_identity& id) {
  std::string payload(identity_magic);
  put_u32(payload, static_cast<uint32_t>(id.node_id.size()));
  payload += id.node_id;
  payload += id.cluster_id;
  write_atomically(identity_file_name, identity_temp_file_name, framed(payload));
  identity_ = id;
}

void file_storage::write_atomically(const std::string& name, const std::string& temp_name,
                                    const std::string& bytes) {
  // Write-then-rename: a crash leaves either the old file or the new one, never a mix.
  const std::string temp_path = path_of(temp_name);
  {
    auto file = fs_->open(temp_path, file_system::open_mode::create_or_truncate);
    file->write_at(0, bytes);
    sync_file(*file);
  }
  fs_->rename(temp_path, path_of(name));
  sync_directory();
}

void file_storage::record_identity(const node_identity& id) {
  if (!recovered_)
    throw std::logic_error("file_storage::record_identity() called before recover()");
  if (failed_)
    throw std::runtime_error("file_storage: an earlier I/O error left '" + directory_ +
                             "' in an unknown state; restart the node to recover from disk");
  node_identity merged = identity_.value_or(node_identity{});
  auto merge = [&](std::string& recorded, const std::string& wanted, const char* what) {
    if (wanted.empty())
      return;
    if (!recorded.empty() && recorded != wanted)
      throw std::logic_error("file_storage: data directory '" + directory_ + "' belongs to " +
                             what + " '" + recorded + "', not '" + wanted + "'");
    recorded = wanted;
  };
  merge(merged.node_id, id.node_id, "node");
  merge(merged.cluster_id, id.cluster_id, "cluster");
  if (identity_ ? merged == *identity_ : merged == node_identity{})
    return;
  try {
    write_identity_file(merged);
  } catch (...) {
    failed_ = true;
    throw;
  }
}

// -- writing
// ---------------------------------------------------------------------------------------

void file_storage::validate(const persist_request& request) const {
  if (request.has_hard_state) {
    const hard_state& latest = pending_hard_state_ ? *pending_hard_state_ : persisted_.state;
    if (request.state.term < latest.term)
      throw std::logic_error("file_storage: term would go back from " +
                             std::to_string(latest.term) + " to " +
                             std::to_string(request.state.term));
    if (request.state.voted_for.size() >
        std::numeric_limits<uint32_t>::max() - hard_state_fixed_bytes)
      throw std::logic_error("file_storage: voted_for is too long");
  }
  // A node that discards its whole log (it joins another cluster) may change its cluster.
  if (!request.cluster_id.empty() && identity_ && !identity_->cluster_id.empty() &&
      identity_->cluster_id != request.cluster_id && request.truncate_from != 1)
    throw std::logic_error("file_storage: data directory '" + directory_ +
                           "' belongs to cluster '" + identity_->cluster_id + "', not '" +
                           request.cluster_id + "'");
  // The log as the request's reset and truncation leave it: entries after `base` up to `end`.
  const log_base base = request.has_reset ? request.reset_to : base_;
  uint64_t end = request.has_reset ? base.index : last_index();
  if (request.has_reset) {
    const hard_state& latest = request.has_hard_state ? request.state
                               : pending_hard_state_  ? *pending_hard_state_
                                                      : persisted_.state;
    if (base.index == 0 && base.term != 0)
      throw std::logic_error("file_storage: reset to index 0 with term " +
                             std::to_string(base.term));
    // Recorded with the request's hard state: a crash must not leave a base of a term the node
    // never knew.
    if (base.term > latest.term)
      throw std::logic_error("file_storage: reset to a snapshot of term " +
                             std::to_string(base.term) + ", above the node's term " +
                             std::to_string(latest.term));
  }
  if (request.truncate_from != 0) {
    if (request.truncate_from <= base.index)
      throw std::logic_error("file_storage: truncation from index " +
                             std::to_string(request.truncate_from) + " reaches below the base " +
                             std::to_string(base.index) + " (entries in a snapshot)");
    if (request.truncate_from <= end)
      end = request.truncate_from - 1;
  }
  uint64_t previous_term = request.has_reset ? base.term : term_at(end);
  for (const log_entry& entry : request.entries) {
    if (entry.index != end + 1)
      throw std::logic_error("file_storage: non-contiguous append of index " +
                             std::to_string(entry.index) + " after " + std::to_string(end));
    if (entry.term < previous_term)
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) + " has term " +
                             std::to_string(entry.term) + ", below the term " +
                             std::to_string(previous_term) + " of the entry before it");
    if (!is_entry_kind(static_cast<uint8_t>(entry.kind)))
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) +
                             " has unknown kind " +
                             std::to_string(static_cast<unsigned>(entry.kind)));
    if (entry.data.size() > std::numeric_limits<uint32_t>::max() - entry_fixed_bytes)
      throw std::logic_error("file_storage: entry " + std::to_string(entry.index) +
                             " is too large for one record");
    end = entry.index;
    previous_term = entry.term;
  }
  if (request.commit_index > end)
    throw std::logic_error("file_storage: commit index " + std::to_string(request.commit_index) +
                           " is beyond the last log index " + std::to_string(end));
  if (request.compact_through > end)
    throw std::logic_error("file_storage: compaction through index " +
                           std::to_string(request.compact_through) +
                           " is beyond the last log index " + std::to_string(end) +
                           " (a snapshot ahead of the log is installed with a reset)");
}

void file_storage::write(const persist_request& request) {
  require_usable("write");
  validate(request);
  try {
    const bool new_cluster =
        !request.cluster_id.empty() && (!identity_ || identity_->cluster_id != request.cluster_id);
    const bool first_cluster = new_cluster && (!identity_ || identity_->cluster_id.empty());
    auto record_cluster = [&] {
      node_identity id = identity_.value_or(node_identity{});
      id.cluster_id = request.cluster_id;
      write_identity_file(id); // durable before the request is acknowledged
    };
    if (first_cluster)
      record_cluster();
    if (request.has_hard_state)
      pending_hard_state_ = request.state;
    if (request.has_reset)
      reset_log(request.reset_to); // durable, with the request's hard state
    if (request.truncate_from != 0 && request.truncate_from <= last_index()) {
      if (request.truncate_from <= persisted_.commit_hint) {
        // A deliberate reset (the node discards its state on purpose): lower the hint first, so
        // no crash can leave a log shorter than the hint says.
        write_hard_state_file(pending_hard_state_ ? *pending_hard_state_ : persisted_.state,
                              request.truncate_from - 1);
        pending_hard_state_.reset();
      }
      requested_commit_index_ = std::min(requested_commit_index_, request.truncate_from - 1);
      truncate_log_from(request.truncate_from);
    }
    // Changing clusters comes with discarding the whole log (validated above); the identity
    // changes only after the log is gone, so no crash leaves the old log under the new cluster.
    if (new_cluster && !first_cluster)
      record_cluster();
    for (const log_entry& entry : request.entries)
      append_entry(entry);
    requested_commit_index_ = std::max(requested_commit_index_, request.commit_index);
    if (request.compact_through > base_.index)
      compact_log(request.compact_through);
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
    const bool synced_log = current_segment_unsynced_;
    if (current_segment_unsynced_) {
      sync_file(*current_file_);
      current_segment_unsynced_ = false;
    }
    if (directory_unsynced_)
      sync_directory();
    synced_last_index_ = last_index();
    if (synced_log)
      marker_pending_ = true;
  } catch (...) {
    failed_ = true;
    throw;
  }
}

maintenance_need file_storage::maintenance_needed() const {
  if (!recovered_ || failed_ || damage_)
    return maintenance_need::none;
  if (wanted_commit_hint() > persisted_.commit_hint)
    return commit_hint_urgent_ ? maintenance_need::now : maintenance_need::within_a_second;
  return marker_pending_ ? maintenance_need::when_idle : maintenance_need::none;
}

void file_storage::maintain(bool idle) {
  if (!recovered_ || failed_ || damage_)
    return;
  try {
    if (idle && marker_pending_) {
      if (!current_file_)
        open_current_segment();
      append_marker();
      flush_write_buffer();
      sync_file(*current_file_);
      current_segment_unsynced_ = false;
      ++stats_.markers_alone;
      --stats_.markers_in_batches;
    }
    const uint64_t hint = wanted_commit_hint();
    if (hint > persisted_.commit_hint) {
      write_hard_state_file(pending_hard_state_ ? *pending_hard_state_ : persisted_.state, hint);
      pending_hard_state_.reset();
      ++stats_.commit_hint_writes;
    }
    commit_hint_urgent_ = false;
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void file_storage::persist_pending_hard_state() {
  if (pending_hard_state_ && !(*pending_hard_state_ == persisted_.state))
    write_hard_state_file(*pending_hard_state_, wanted_commit_hint()); // durable on return
  pending_hard_state_.reset();
}

void file_storage::truncate_log_from(uint64_t index) {
  assert(index > base_.index && index <= last_index());
  const entry_location cut = entry_locations_[index - base_.index - 1];
  const std::size_t last_position = segments_.size() - 1;
  // Cutting at a segment's first entry removes the segment: recovery accepts a segment without
  // entries only at the very end, and only as the trace of an interrupted rollover.
  const bool cut_whole_segment = index == segments_[cut.segment].first_index;
  const std::size_t first_removed = cut_whole_segment ? cut.segment : cut.segment + 1;
  entry_locations_.resize(index - base_.index - 1);
  synced_last_index_ = std::min(synced_last_index_, index - 1);

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
    marker_pending_ = false;
    // Newest first, each removal durable before the next: whatever a crash leaves behind is
    // still a contiguous run of segments.
    for (std::size_t position = last_position + 1; position-- > first_removed;) {
      fs_->remove(segment_path(position));
      ++stats_.segments_deleted;
      segments_.pop_back();
      sync_directory();
    }
    // The segment now last, if any, was synced whole when the next one was started.
    flushed_size_ = segments_.empty() ? 0 : segments_.back().size;
  }
  if (cut_whole_segment)
    return;
  if (!current_file_)
    open_current_segment();
  // Durable before any new entry is written behind it: otherwise a crash could bring the old
  // entries back after the new ones, and recovery would read a log that never existed.
  current_file_->truncate(cut.offset);
  sync_file(*current_file_);
  current_segment_unsynced_ = false;
  segments_.back().size = cut.offset;
  flushed_size_ = cut.offset;
  marker_pending_ = true; // everything before the cut is synced now
}

void file_storage::compact_log(uint64_t through) {
  // Whole segments only, and never the last one (it may be open, buffered and unsynced): every
  // segment dropped is then synced whole, since a segment is synced before the next starts.
  std::size_t dropped = 0;
  while (dropped + 1 < segments_.size() && segments_[dropped + 1].first_index - 1 <= through)
    ++dropped;
  if (dropped == 0)
    return;
  const uint64_t new_index = segments_[dropped].first_index - 1;
  const log_base new_base{new_index, term_at(new_index)};
  // The base first, durably (with the pending hard state, which may always go early): whatever
  // a crash leaves of the removals below, recovery knows these segments are garbage. The
  // directory sync in it also makes the creation of every remaining segment durable.
  write_hard_state_file(pending_hard_state_ ? *pending_hard_state_ : persisted_.state,
                        wanted_commit_hint(), new_base, false);
  pending_hard_state_.reset();
  // Oldest first, so a crash leaves a contiguous run; synced before anything later can remove or
  // create a segment (a truncation to the base, a reset), so no leftover outlives the session.
  for (std::size_t position = 0; position < dropped; ++position) {
    fs_->remove(segment_path(position));
    ++stats_.segments_deleted;
  }
  sync_directory();
  entry_locations_.erase(entry_locations_.begin(),
                         entry_locations_.begin() +
                             static_cast<std::ptrdiff_t>(new_index - base_.index));
  for (entry_location& location : entry_locations_)
    location.segment -= dropped;
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(dropped));
  base_ = new_base;
  assert(segments_.front().first_index == base_.index + 1);
  ++stats_.compactions;
}

void file_storage::reset_log(const log_base& to) {
  const hard_state state = pending_hard_state_ ? *pending_hard_state_ : persisted_.state;
  // The log becomes shorter than the hint says only on purpose: lower it with the base.
  const uint64_t hint = std::min(persisted_.commit_hint, to.index);
  write_buffer_.clear();
  current_file_.reset();
  if (segments_.empty()) {
    // No segment file exists (every one is in `segments_`), so nothing old can come back.
    write_hard_state_file(state, hint, to, false);
  } else {
    // The flag makes recovery finish the job: the old log's indexes may be anything relative to
    // the new base, so "at or below the base" cannot tell which segments are stale.
    write_hard_state_file(state, hint, to, true);
    for (std::size_t position = segments_.size(); position-- > 0;) {
      fs_->remove(segment_path(position));
      ++stats_.segments_deleted;
    }
    // Durable before the flag is cleared: no old segment may reappear behind the new log.
    sync_directory();
    write_hard_state_file(state, hint, to, false);
  }
  pending_hard_state_.reset();
  segments_.clear();
  entry_locations_.clear();
  base_ = to;
  flushed_size_ = 0;
  current_segment_unsynced_ = false;
  marker_pending_ = false;
  synced_last_index_ = to.index; // the base is durable
  requested_commit_index_ = std::min(requested_commit_index_, to.index);
  ++stats_.resets;
}

void file_storage::append_entry(const log_entry& entry) {
  if (segments_.empty() || segments_.back().size >= options_.max_segment_bytes)
    start_segment(entry.index);
  else if (!current_file_)
    open_current_segment();
  if (marker_pending_)
    append_marker();
  segment& current = segments_.back();
  const uint64_t offset = current.size;
  const std::size_t buffered_before = write_buffer_.size();
  encode_entry(write_buffer_, entry);
  current.size += write_buffer_.size() - buffered_before;
  entry_locations_.push_back(entry_location{segments_.size() - 1, offset, entry.term});
}

void file_storage::append_marker() {
  // Set only after everything in the segment was synced, and the first append consumes it.
  assert(marker_pending_ && write_buffer_.empty() && flushed_size_ == segments_.back().size);
  encode_marker(write_buffer_, last_index(), flushed_size_);
  segments_.back().size += marker_record_bytes;
  marker_pending_ = false;
  ++stats_.markers_in_batches;
}

void file_storage::start_segment(uint64_t first_index) {
  if (current_file_) {
    flush_write_buffer();
    // The old segment must be complete on disk before the new one can hold anything: damage
    // in a segment followed by a later one is then always corruption, never a torn write.
    if (current_segment_unsynced_)
      sync_file(*current_file_);
    current_segment_unsynced_ = false;
    current_file_.reset();
  }
  // A rollover bounds what lost segments could hide: the hint trails by at most about one.
  commit_hint_urgent_ = !segments_.empty();
  const std::string path = path_of(segment_file_name(first_index));
  current_file_ = fs_->open(path, file_system::open_mode::create_new);
  segments_.push_back(segment{first_index, 0});
  flushed_size_ = 0;
  directory_unsynced_ = true;
  marker_pending_ = false; // the old segment is synced whole; the new one has nothing synced
  ++stats_.segments_created;
}

void file_storage::open_current_segment() {
  current_file_ = fs_->open(segment_path(segments_.size() - 1), file_system::open_mode::existing);
  if (current_file_->size() != flushed_size_)
    throw std::runtime_error("file_storage: log segment '" + segment_path(segments_.size() - 1) +
                             "' changed size behind our back");
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
