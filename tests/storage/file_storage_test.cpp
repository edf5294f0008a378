#define BOOST_TEST_MODULE file_storage
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/storage/file_storage.hpp"

namespace fs = std::filesystem;
using namespace infinity;

namespace {

// -- scratch directories and raw file surgery
// ------------------------------------------------------

/// A fresh directory under /tmp for each test, removed afterwards. The storage gets a
/// subdirectory that does not exist yet, so every test also exercises directory creation.
struct scratch_dir {
  std::string root;
  std::string data;

  scratch_dir() {
    char name_template[] = "/tmp/file_storage_test.XXXXXX";
    if (::mkdtemp(name_template) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    root = name_template;
    data = root + "/data";
  }
  ~scratch_dir() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }

  std::string file(const std::string& name) const { return data + "/" + name; }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  BOOST_REQUIRE_MESSAGE(out, "cannot write " << path);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void chop_bytes(const std::string& path, std::size_t count) {
  fs::resize_file(path, fs::file_size(path) - count);
}

void flip_byte(const std::string& path, std::size_t offset) {
  std::string bytes = read_bytes(path);
  BOOST_REQUIRE_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5A);
  write_bytes(path, bytes);
}

std::vector<std::string> segment_files(const scratch_dir& dir) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir.data)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("log-", 0) == 0)
      names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// -- an independent encoder, so the on-disk format is checked against the spec, not the code ------

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::string framed(const std::string& payload) {
  std::string out;
  put_le(out, payload.size(), 4);
  put_le(out, crc32c(payload.data(), payload.size()), 4);
  return out + payload;
}

std::string encoded_record(const log_entry& entry) {
  std::string payload;
  put_le(payload, entry.term, 8);
  put_le(payload, entry.index, 8);
  put_le(payload, static_cast<uint8_t>(entry.kind), 1);
  return framed(payload + entry.data);
}

std::size_t record_size(const log_entry& entry) {
  return 8 + 17 + entry.data.size();
}

// -- log helpers
// -----------------------------------------------------------------------------------

log_entry make_entry(uint64_t index, uint64_t term, entry_kind kind = entry_kind::command) {
  return log_entry{term, index, kind, "value-" + std::to_string(index)};
}

std::vector<log_entry> make_entries(uint64_t first, uint64_t last, uint64_t term) {
  std::vector<log_entry> entries;
  for (uint64_t index = first; index <= last; ++index)
    entries.push_back(make_entry(index, term));
  return entries;
}

persist_request append_request(std::vector<log_entry> entries, uint64_t truncate_from = 0,
                               std::optional<hard_state> state = std::nullopt) {
  persist_request request;
  request.entries = std::move(entries);
  request.truncate_from = truncate_from;
  if (state) {
    request.has_hard_state = true;
    request.state = *state;
  }
  return request;
}

/// Opens, recovers, applies `request`, syncs and closes: one node lifetime.
void write_and_sync(const scratch_dir& dir, const persist_request& request,
                    file_storage_options options = {}) {
  file_storage storage(dir.data, options);
  storage.recover();
  storage.write(request);
  storage.sync();
}

recovered_state recover_from(const scratch_dir& dir, file_storage_options options = {}) {
  file_storage storage(dir.data, options);
  return storage.recover();
}

void check_entries(const std::vector<log_entry>& actual, const std::vector<log_entry>& expected) {
  BOOST_REQUIRE_EQUAL(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i)
    BOOST_CHECK_MESSAGE(actual[i] == expected[i], "entry at position " << i << " differs");
}

std::vector<log_entry> concat(std::vector<log_entry> a, const std::vector<log_entry>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Passes if recovery throws std::runtime_error whose message contains every one of `needles`.
void check_recover_throws(const scratch_dir& dir, const std::vector<std::string>& needles,
                          file_storage_options options = {}) {
  file_storage storage(dir.data, options);
  try {
    storage.recover();
    BOOST_ERROR("recover() accepted a damaged directory");
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    BOOST_TEST_MESSAGE("recover() refused: " << message);
    for (const auto& needle : needles)
      BOOST_CHECK_MESSAGE(message.find(needle) != std::string::npos,
                          "message '" << message << "' lacks '" << needle << "'");
  }
}

const std::string first_segment = "log-00000000000000000001.seg";

/// Small enough that a few dozen entries span many segments.
file_storage_options small_segments() {
  file_storage_options options;
  options.max_segment_bytes = 200;
  return options;
}

} // namespace

BOOST_AUTO_TEST_SUITE(checksum)

BOOST_AUTO_TEST_CASE(crc32c_known_answers) {
  BOOST_CHECK_EQUAL(crc32c("123456789", 9), 0xE3069283u);
  BOOST_CHECK_EQUAL(crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) test vectors.
  const std::string zeros(32, '\0');
  const std::string ones(32, '\xFF');
  BOOST_CHECK_EQUAL(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  BOOST_CHECK_EQUAL(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

BOOST_AUTO_TEST_CASE(crc32c_can_be_computed_piecewise) {
  const uint32_t head = crc32c("1234", 4);
  BOOST_CHECK_EQUAL(crc32c("56789", 5, head), 0xE3069283u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(file_storage_tests, scratch_dir)

// -- clean round trips
// -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(empty_directory_recovers_empty_state) {
  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.state == hard_state{});
  BOOST_CHECK(state.entries.empty());
  BOOST_CHECK(storage.recovery_report().empty());
  BOOST_CHECK_EQUAL(storage.entries_dropped(), 0u);
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), 0u);
  BOOST_CHECK(fs::is_regular_file(file("hard_state")));
  BOOST_CHECK(fs::is_regular_file(file("LOCK")));
  BOOST_CHECK(segment_files(*this).empty());
}

BOOST_AUTO_TEST_CASE(empty_directory_created_by_hand_recovers_empty_state) {
  fs::create_directory(data);
  const recovered_state state = recover_from(*this);
  BOOST_CHECK(state.entries.empty());
  BOOST_CHECK_EQUAL(state.state.term, 0u);
}

BOOST_AUTO_TEST_CASE(hard_state_and_entries_survive_reopen) {
  std::vector<log_entry> entries{
      log_entry{1, 1, entry_kind::noop, ""},
      log_entry{1, 2, entry_kind::command, "set a=1"},
      log_entry{2, 3, entry_kind::config, std::string("n1\0n2\0n3", 8)},
      log_entry{5, 4, entry_kind::command, std::string(3000, 'x')},
  };
  write_and_sync(*this, append_request(entries, 0, hard_state{5, "node-2"}));

  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.state == (hard_state{5, "node-2"}));
  check_entries(state.entries, entries);
  BOOST_CHECK(storage.recovery_report().empty());
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{first_segment});
}

BOOST_AUTO_TEST_CASE(on_disk_format_matches_the_spec) {
  const std::vector<log_entry> entries{make_entry(1, 7), log_entry{7, 2, entry_kind::noop, ""}};
  write_and_sync(*this, append_request(entries, 0, hard_state{7, "n3"}));

  BOOST_CHECK(read_bytes(file(first_segment)) ==
              encoded_record(entries[0]) + encoded_record(entries[1]));
  std::string hard_state_payload;
  put_le(hard_state_payload, 7, 8);
  BOOST_CHECK(read_bytes(file("hard_state")) == framed(hard_state_payload + "n3"));
}

BOOST_AUTO_TEST_CASE(latest_hard_state_wins_and_voted_for_can_be_cleared) {
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request({}, 0, hard_state{1, "a"}));
    storage.write(append_request({}, 0, hard_state{2, "b"}));
    storage.sync();
    storage.write(append_request({}, 0, hard_state{3, ""}));
    storage.sync();
  }
  BOOST_CHECK(recover_from(*this).state == (hard_state{3, ""}));
  BOOST_CHECK(!fs::exists(file("hard_state.tmp")));
}

BOOST_AUTO_TEST_CASE(leftover_hard_state_temp_file_is_ignored_and_removed) {
  write_and_sync(*this, append_request(make_entries(1, 2, 1), 0, hard_state{1, "a"}));
  write_bytes(file("hard_state.tmp"), "half-written garbage");
  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.state == (hard_state{1, "a"}));
  BOOST_CHECK_EQUAL(state.entries.size(), 2u);
  BOOST_CHECK(!fs::exists(file("hard_state.tmp")));
}

// -- truncation and segments
// -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(truncate_then_append_survives_reopen) {
  write_and_sync(*this, append_request(make_entries(1, 10, 1), 0, hard_state{1, "a"}));
  write_and_sync(*this, append_request(make_entries(6, 8, 2), 6, hard_state{2, "b"}));

  recovered_state state = recover_from(*this);
  BOOST_CHECK(state.state == (hard_state{2, "b"}));
  check_entries(state.entries, concat(make_entries(1, 5, 1), make_entries(6, 8, 2)));

  // Truncation alone, with nothing appended.
  write_and_sync(*this, append_request({}, 4));
  check_entries(recover_from(*this).entries, make_entries(1, 3, 1));
}

BOOST_AUTO_TEST_CASE(truncation_of_unsynced_entries_in_one_session) {
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request(make_entries(1, 10, 1)));
    storage.write(append_request(make_entries(4, 5, 2), 4)); // cuts inside the write buffer
    storage.sync();
    storage.write(append_request(make_entries(6, 7, 2)));
    storage.sync();
    storage.write(append_request(make_entries(2, 2, 3), 2)); // cuts bytes already flushed
    storage.sync();
  }
  check_entries(recover_from(*this).entries, concat(make_entries(1, 1, 1), make_entries(2, 2, 3)));
}

BOOST_AUTO_TEST_CASE(segments_roll_over_and_truncation_crosses_them) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 60, 1), 0, hard_state{1, "a"}), options);

  std::vector<std::string> names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 5u);
  BOOST_CHECK_EQUAL(names.front(), first_segment);
  for (const auto& name : names)
    BOOST_CHECK_LE(fs::file_size(file(name)),
                   options.max_segment_bytes + record_size(make_entry(60, 1)));
  check_entries(recover_from(*this, options).entries, make_entries(1, 60, 1));

  // Cut in the middle of an early segment: every later segment must go.
  write_and_sync(*this, append_request(make_entries(12, 30, 2), 12), options);
  check_entries(recover_from(*this, options).entries,
                concat(make_entries(1, 11, 1), make_entries(12, 30, 2)));

  // Cut exactly at the first entry of a segment: that segment goes too.
  names = segment_files(*this);
  const uint64_t third_segment_start = std::stoull(names.at(2).substr(4, 20));
  write_and_sync(*this, append_request({}, third_segment_start), options);
  BOOST_CHECK_EQUAL(segment_files(*this).size(), 2u);
  check_entries(recover_from(*this, options).entries,
                concat(make_entries(1, 11, 1), make_entries(12, third_segment_start - 1, 2)));

  // And everything, back to an empty log that can grow again from index 1.
  write_and_sync(*this, append_request(make_entries(1, 3, 4), 1), options);
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{first_segment});
  check_entries(recover_from(*this, options).entries, make_entries(1, 3, 4));
}

BOOST_AUTO_TEST_CASE(truncation_across_segments_within_one_session) {
  const auto options = small_segments();
  {
    file_storage storage(data, options);
    storage.recover();
    storage.write(append_request(make_entries(1, 40, 1)));
    storage.write(append_request(make_entries(3, 50, 2), 3)); // before any sync
    storage.sync();
  }
  check_entries(recover_from(*this, options).entries,
                concat(make_entries(1, 2, 1), make_entries(3, 50, 2)));
}

BOOST_AUTO_TEST_CASE(large_batch_costs_one_data_sync) {
  std::vector<log_entry> expected;
  file_storage_stats before;
  file_storage_stats after;
  {
    file_storage storage(data);
    storage.recover();
    before = storage.stats();
    for (uint64_t index = 1; index <= 10000; ++index) {
      expected.push_back(make_entry(index, 1 + index / 5000));
      storage.write(append_request({expected.back()}, 0, hard_state{1 + index / 5000, "me"}));
    }
    storage.sync();
    after = storage.stats();

    // Nothing left to do: a second sync must not touch the disk.
    storage.sync();
    BOOST_CHECK_EQUAL(storage.stats().file_syncs, after.file_syncs);
    BOOST_CHECK_EQUAL(storage.stats().directory_syncs, after.directory_syncs);
  }
  // One fdatasync for the segment, one for the hard state's temp file; one directory sync covers
  // both the new segment and the rename.
  BOOST_CHECK_EQUAL(after.file_syncs - before.file_syncs, 2u);
  BOOST_CHECK_EQUAL(after.directory_syncs - before.directory_syncs, 1u);
  BOOST_CHECK_EQUAL(after.segments_created - before.segments_created, 1u);

  const recovered_state state = recover_from(*this);
  BOOST_CHECK(state.state == (hard_state{3, "me"}));
  check_entries(state.entries, expected);
}

BOOST_AUTO_TEST_CASE(unsynced_writes_at_shutdown_leave_a_valid_prefix) {
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request(make_entries(1, 3, 1), 0, hard_state{1, "a"}));
    storage.sync();
    storage.write(append_request(make_entries(4, 5, 1)));
  }
  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.state == (hard_state{1, "a"}));
  BOOST_CHECK(state.entries.size() == 3 || state.entries.size() == 5);
  check_entries(state.entries, make_entries(1, state.entries.size(), 1));
  BOOST_CHECK(storage.recovery_report().empty());
}

// -- damage at the tail: a crash in the middle of a write
// ------------------------------------------

BOOST_AUTO_TEST_CASE(torn_tail_is_cut_reported_and_appends_continue) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  chop_bytes(file(first_segment), 5);

  {
    file_storage storage(data);
    const recovered_state state = storage.recover();
    check_entries(state.entries, make_entries(1, 9, 1));
    BOOST_CHECK_EQUAL(storage.entries_dropped(), 1u);
    BOOST_CHECK_EQUAL(storage.bytes_dropped(), record_size(entries.back()) - 5);
    BOOST_TEST_MESSAGE("report: " << storage.recovery_report());
    BOOST_CHECK(storage.recovery_report().find(first_segment) != std::string::npos);
    BOOST_CHECK(storage.recovery_report().find("index 9") != std::string::npos);

    storage.write(append_request(make_entries(10, 11, 2)));
    storage.sync();
  }
  file_storage storage(data);
  check_entries(storage.recover().entries, concat(make_entries(1, 9, 1), make_entries(10, 11, 2)));
  BOOST_CHECK(storage.recovery_report().empty());
}

BOOST_AUTO_TEST_CASE(torn_first_record_of_last_segment_removes_the_segment) {
  file_storage_options one_entry_per_segment;
  one_entry_per_segment.max_segment_bytes = 1;
  write_and_sync(*this, append_request(make_entries(1, 3, 1), 0, hard_state{1, "a"}),
                 one_entry_per_segment);
  BOOST_REQUIRE_EQUAL(segment_files(*this).size(), 3u);
  const std::string last_segment = "log-00000000000000000003.seg";
  chop_bytes(file(last_segment), 3);

  {
    file_storage storage(data, one_entry_per_segment);
    check_entries(storage.recover().entries, make_entries(1, 2, 1));
    BOOST_CHECK_EQUAL(storage.entries_dropped(), 1u);
    BOOST_CHECK(!fs::exists(file(last_segment)));
    storage.write(append_request(make_entries(3, 4, 2)));
    storage.sync();
  }
  check_entries(recover_from(*this, one_entry_per_segment).entries,
                concat(make_entries(1, 2, 1), make_entries(3, 4, 2)));
}

BOOST_AUTO_TEST_CASE(empty_last_segment_from_an_interrupted_rollover_is_removed) {
  write_and_sync(*this, append_request(make_entries(1, 3, 1), 0, hard_state{1, "a"}));
  write_bytes(file("log-00000000000000000004.seg"), "");
  file_storage storage(data);
  check_entries(storage.recover().entries, make_entries(1, 3, 1));
  BOOST_CHECK(!storage.recovery_report().empty());
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), 0u);
  BOOST_CHECK(!fs::exists(file("log-00000000000000000004.seg")));
}

BOOST_AUTO_TEST_CASE(flipped_byte_in_last_record_is_cut) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  const std::size_t size = fs::file_size(file(first_segment));
  flip_byte(file(first_segment), size - 3); // inside the last entry's data

  file_storage storage(data);
  check_entries(storage.recover().entries, make_entries(1, 9, 1));
  BOOST_CHECK_EQUAL(storage.entries_dropped(), 1u);
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), record_size(entries.back()));
  BOOST_CHECK(storage.recovery_report().find("CRC") != std::string::npos);
  BOOST_CHECK_EQUAL(fs::file_size(file(first_segment)), size - record_size(entries.back()));
}

BOOST_AUTO_TEST_CASE(implausible_length_in_last_record_is_cut) {
  const auto entries = make_entries(1, 4, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  std::string bytes = read_bytes(file(first_segment));
  const std::size_t last_offset = bytes.size() - record_size(entries.back());
  bytes.replace(last_offset, 4, "\xFF\xFF\xFF\xFF");
  write_bytes(file(first_segment), bytes);

  file_storage storage(data);
  check_entries(storage.recover().entries, make_entries(1, 3, 1));
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), record_size(entries.back()));
  BOOST_CHECK(storage.recovery_report().find("length") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(zero_filled_tail_is_cut) {
  // What a file system may leave when the size was extended but the data never landed.
  write_and_sync(*this, append_request(make_entries(1, 4, 1), 0, hard_state{1, "a"}));
  write_bytes(file(first_segment), read_bytes(file(first_segment)) + std::string(4096, '\0'));

  file_storage storage(data);
  check_entries(storage.recover().entries, make_entries(1, 4, 1));
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), 4096u);
  BOOST_CHECK_EQUAL(storage.entries_dropped(), 1u);
}

// -- damage anywhere else: recovery must refuse
// ----------------------------------------------------

BOOST_AUTO_TEST_CASE(flipped_byte_followed_by_valid_records_throws) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  const std::size_t fifth_offset = 4 * record_size(entries[0]); // entries 1..9 have equal sizes
  flip_byte(file(first_segment), fifth_offset + 20);
  check_recover_throws(*this, {first_segment, "offset " + std::to_string(fifth_offset), "CRC"});
}

BOOST_AUTO_TEST_CASE(corrupt_length_followed_by_valid_records_throws) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  const std::size_t fifth_offset = 4 * record_size(entries[0]);
  flip_byte(file(first_segment), fifth_offset + 1);
  check_recover_throws(*this, {first_segment, "offset " + std::to_string(fifth_offset)});
}

BOOST_AUTO_TEST_CASE(zeroed_records_followed_by_valid_records_throw) {
  const auto entries = make_entries(1, 9, 1); // all of one size
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  std::string bytes = read_bytes(file(first_segment));
  const std::size_t fourth_offset = 3 * record_size(entries[0]);
  bytes.replace(fourth_offset, 2 * record_size(entries[0]), 2 * record_size(entries[0]), '\0');
  write_bytes(file(first_segment), bytes);
  check_recover_throws(*this, {first_segment, "offset " + std::to_string(fourth_offset)});
}

BOOST_AUTO_TEST_CASE(torn_record_in_a_non_last_segment_throws) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, "a"}), options);
  BOOST_REQUIRE_GT(segment_files(*this).size(), 1u);
  chop_bytes(file(first_segment), 2);
  check_recover_throws(*this, {first_segment, "not the last segment"}, options);
}

BOOST_AUTO_TEST_CASE(missing_middle_segment_throws) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, "a"}), options);
  const auto names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 2u);
  fs::remove(file(names[1]));
  check_recover_throws(*this, {names[2], "missing"}, options);
}

BOOST_AUTO_TEST_CASE(missing_first_segment_throws) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, "a"}), options);
  fs::remove(file(first_segment));
  check_recover_throws(*this, {"missing"}, options);
}

BOOST_AUTO_TEST_CASE(valid_records_with_wrong_index_or_term_throw) {
  write_and_sync(*this, append_request({}, 0, hard_state{2, "a"}));
  write_bytes(file(first_segment),
              encoded_record(make_entry(1, 1)) + encoded_record(make_entry(3, 1)));
  check_recover_throws(*this, {first_segment, "index 3, expected 2"});

  write_bytes(file(first_segment),
              encoded_record(make_entry(1, 2)) + encoded_record(make_entry(2, 1)));
  check_recover_throws(*this, {first_segment, "term"});
}

BOOST_AUTO_TEST_CASE(missing_hard_state_with_log_throws) {
  write_and_sync(*this, append_request(make_entries(1, 3, 1), 0, hard_state{1, "a"}));
  fs::remove(file("hard_state"));
  check_recover_throws(*this, {"hard_state", "missing"});
}

BOOST_AUTO_TEST_CASE(corrupt_hard_state_throws) {
  write_and_sync(*this, append_request(make_entries(1, 3, 1), 0, hard_state{1, "node-a"}));
  flip_byte(file("hard_state"), 10);
  check_recover_throws(*this, {"hard_state", "CRC"});

  write_bytes(file("hard_state"), "abc");
  check_recover_throws(*this, {"hard_state"});
}

// -- the directory itself
// --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(second_instance_on_a_locked_directory_throws) {
  {
    file_storage first(data);
    first.recover();
    try {
      file_storage second(data);
      BOOST_ERROR("a second storage object locked the same directory");
    } catch (const std::runtime_error& error) {
      BOOST_CHECK(std::string(error.what()).find(data) != std::string::npos);
      BOOST_CHECK(std::string(error.what()).find("in use") != std::string::npos);
    }
  }
  file_storage reopened(data); // the lock dies with its owner
  reopened.recover();
}

BOOST_AUTO_TEST_CASE(uncreatable_directory_throws) {
  const std::string regular_file = root + "/not-a-directory";
  write_bytes(regular_file, "x");
  const std::string path = regular_file + "/data";
  try {
    file_storage storage(path);
    BOOST_ERROR("storage accepted a directory below a regular file");
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    BOOST_TEST_MESSAGE(message);
    BOOST_CHECK(message.find(path) != std::string::npos);
    BOOST_CHECK(message.find("Not a directory") != std::string::npos);
  }
}

// -- contract violations
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(write_before_recover_is_a_logic_error) {
  file_storage storage(data);
  BOOST_CHECK_THROW(storage.write(append_request(make_entries(1, 1, 1))), std::logic_error);
  BOOST_CHECK_THROW(storage.sync(), std::logic_error);
}

BOOST_AUTO_TEST_CASE(invalid_requests_are_rejected_without_effect) {
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request(make_entries(1, 3, 2), 0, hard_state{2, "a"}));
    BOOST_CHECK_THROW(storage.write(append_request(make_entries(5, 5, 2))), std::logic_error);
    BOOST_CHECK_THROW(storage.write(append_request(make_entries(4, 4, 1))), std::logic_error);
    BOOST_CHECK_THROW(storage.write(append_request({}, 0, hard_state{1, "b"})), std::logic_error);
    BOOST_CHECK_THROW(storage.recover(), std::logic_error);
    // A rejected request must not poison the object.
    storage.write(append_request(make_entries(4, 4, 2)));
    storage.sync();
  }
  const recovered_state state = recover_from(*this);
  BOOST_CHECK(state.state == (hard_state{2, "a"}));
  check_entries(state.entries, make_entries(1, 4, 2));
}

BOOST_AUTO_TEST_SUITE_END()
