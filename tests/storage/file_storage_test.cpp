#define BOOST_TEST_MODULE file_storage
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/storage/file_storage.hpp"
#include "actors/storage/memory_storage.hpp"

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

/// Written after each sync before the next batch (or on its own when idle or at shutdown): the
/// entries before `offset` of this segment, up to `synced_index`, were synced.
std::string encoded_marker(uint64_t synced_index, uint64_t offset) {
  std::string payload;
  put_le(payload, 0, 8);
  put_le(payload, synced_index, 8);
  put_le(payload, 0xFF, 1);
  put_le(payload, offset, 8);
  return framed(payload);
}

constexpr std::size_t marker_size = 8 + 25;

std::string hard_state_payload(uint64_t term, const std::string& voted_for,
                               uint64_t repair_until_index = 0, uint64_t commit_hint = 0,
                               uint64_t repair_term = 0, log_base base = {},
                               bool reset_in_progress = false) {
  std::string payload = "IHS4";
  put_le(payload, term, 8);
  put_le(payload, repair_until_index, 8);
  put_le(payload, commit_hint, 8);
  put_le(payload, repair_term, 8);
  put_le(payload, base.index, 8);
  put_le(payload, base.term, 8);
  put_le(payload, reset_in_progress ? 1 : 0, 1);
  return payload + voted_for;
}

/// The third format, before the base: what a directory written by an earlier version holds.
std::string hard_state_v3_payload(uint64_t term, const std::string& voted_for,
                                  uint64_t repair_until_index = 0, uint64_t commit_hint = 0,
                                  uint64_t repair_term = 0) {
  std::string payload = "IHS3";
  put_le(payload, term, 8);
  put_le(payload, repair_until_index, 8);
  put_le(payload, commit_hint, 8);
  put_le(payload, repair_term, 8);
  return payload + voted_for;
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

/// Passes if recovery reports repairable damage whose description contains every one of
/// `needles`, and returns it; the directory is left as it was.
recovered_state recover_damaged(const scratch_dir& dir, const std::vector<std::string>& needles,
                                file_storage_options options = {}) {
  file_storage storage(dir.data, options);
  recovered_state state = storage.recover();
  BOOST_REQUIRE_MESSAGE(state.damage, "recover() found no damage");
  BOOST_TEST_MESSAGE("damage: " << state.damage->description);
  for (const auto& needle : needles)
    BOOST_CHECK_MESSAGE(state.damage->description.find(needle) != std::string::npos,
                        "'" << state.damage->description << "' lacks '" << needle << "'");
  BOOST_CHECK_EQUAL(state.damage->keep_last_index, state.entries.size());
  BOOST_CHECK_GT(state.damage->possibly_acknowledged_up_to, state.damage->keep_last_index);
  BOOST_CHECK_THROW(storage.write(persist_request{}), std::logic_error);
  return state;
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
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request(entries, 0, hard_state{7, "n3"}));
    storage.sync();
    storage.write(append_request({make_entry(3, 7)}));
    storage.sync();
  } // the last sync's marker is written at destruction

  const std::string first_batch = encoded_record(entries[0]) + encoded_record(entries[1]);
  const std::string second_batch =
      encoded_marker(2, first_batch.size()) + encoded_record(make_entry(3, 7));
  BOOST_CHECK(read_bytes(file(first_segment)) ==
              first_batch + second_batch +
                  encoded_marker(3, first_batch.size() + second_batch.size()));
  BOOST_CHECK(read_bytes(file("hard_state")) == framed(hard_state_payload(7, "n3")));
  BOOST_CHECK(!fs::exists(file("identity")));
}

BOOST_AUTO_TEST_CASE(hard_state_file_of_the_first_format_is_read) {
  // term u64 | voted_for, before repair_until_index and the commit hint existed.
  std::string payload;
  put_le(payload, 4, 8);
  fs::create_directory(data);
  write_bytes(file("hard_state"), framed(payload + "n2"));
  write_bytes(file(first_segment), encoded_record(make_entry(1, 3)));
  const recovered_state state = recover_from(*this);
  BOOST_CHECK(state.state == (hard_state{4, "n2"}));
  check_entries(state.entries, {make_entry(1, 3)});
}

BOOST_AUTO_TEST_CASE(hard_state_file_of_the_third_format_is_read_with_base_zero) {
  fs::create_directory(data);
  write_bytes(file("hard_state"), framed(hard_state_v3_payload(6, "n1", 9, 2, 5)));
  write_bytes(file(first_segment),
              encoded_record(make_entry(1, 3)) + encoded_record(make_entry(2, 3)));
  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.state == (hard_state{6, "n1", 9, 5}));
  BOOST_CHECK(state.base == log_base{});
  BOOST_CHECK_EQUAL(storage.commit_hint(), 2u);
  check_entries(state.entries, {make_entry(1, 3), make_entry(2, 3)});
  // Recovery does not rewrite it; the next hard state write uses the current format.
  BOOST_CHECK(read_bytes(file("hard_state")) == framed(hard_state_v3_payload(6, "n1", 9, 2, 5)));
}

BOOST_AUTO_TEST_CASE(hard_state_file_with_unknown_flags_is_refused) {
  fs::create_directory(data);
  std::string payload = hard_state_payload(2, "");
  payload[52] = 0x02;
  write_bytes(file("hard_state"), framed(payload));
  check_recover_throws(*this, {"hard_state", "unknown flags"});
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

// A clean shutdown ends the segment with a sync marker; chopping it off as well leaves what a
// crash before the marker reached the disk leaves, so only the shape of the record can judge it.

BOOST_AUTO_TEST_CASE(torn_tail_is_cut_reported_and_appends_continue) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  chop_bytes(file(first_segment), marker_size + 5);

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
  chop_bytes(file(last_segment), marker_size + 3);

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

BOOST_AUTO_TEST_CASE(flipped_byte_in_a_torn_last_record_is_cut) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  chop_bytes(file(first_segment), marker_size + 2);
  const std::size_t size = fs::file_size(file(first_segment));
  flip_byte(file(first_segment), size - 4); // garbage in a record that runs past the end anyway

  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK(!state.damage);
  check_entries(state.entries, make_entries(1, 9, 1));
  BOOST_CHECK_EQUAL(storage.bytes_dropped(), record_size(entries.back()) - 2);
  BOOST_CHECK(storage.recovery_report().find("past the end") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(damaged_length_of_a_complete_last_record_is_corruption) {
  // No marker after it, but the checksum matches the record's real length: it is complete, so
  // it was written whole, and may have been synced.
  const auto entries = make_entries(1, 4, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  chop_bytes(file(first_segment), marker_size);
  std::string bytes = read_bytes(file(first_segment));
  const std::size_t last_offset = bytes.size() - record_size(entries.back());
  bytes.replace(last_offset, 4, "\xFF\xFF\xFF\xFF");
  write_bytes(file(first_segment), bytes);

  const recovered_state state = recover_damaged(
      *this, {first_segment, "offset " + std::to_string(last_offset), "checksum matches"});
  check_entries(state.entries, make_entries(1, 3, 1));
  BOOST_CHECK_EQUAL(read_bytes(file(first_segment)), bytes); // nothing changed
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

// -- damage to synced records: repairable, but never silently
// ----------------------------------------

BOOST_AUTO_TEST_CASE(flipped_byte_in_synced_last_record_is_damage_not_a_cut) {
  // The reviewer's case: the last record was synced and acknowledged, so cutting it silently
  // would lose an acknowledged entry. The marker after it is the evidence.
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{3, "a"}));
  const std::size_t last_offset =
      fs::file_size(file(first_segment)) - marker_size - record_size(entries.back());
  flip_byte(file(first_segment), last_offset + 30); // inside the last entry's data
  const std::string damaged = read_bytes(file(first_segment));

  const recovered_state state = recover_damaged(
      *this, {first_segment, "offset " + std::to_string(last_offset), "CRC", "sync marker"});
  check_entries(state.entries, make_entries(1, 9, 1));
  BOOST_CHECK_EQUAL(state.damage->keep_last_index, 9u);
  BOOST_CHECK_EQUAL(state.damage->possibly_acknowledged_up_to, 10u);
  BOOST_CHECK_EQUAL(state.state.repair_until_index, 0u);
  BOOST_CHECK_EQUAL(read_bytes(file(first_segment)), damaged); // recover() changed nothing
  BOOST_CHECK_EQUAL(recover_from(*this).damage->possibly_acknowledged_up_to, 10u); // same again

  {
    file_storage storage(data);
    storage.recover();
    storage.accept_repair();
    BOOST_CHECK_EQUAL(storage.durable_hard_state().repair_until_index, 10u);
    BOOST_CHECK(storage.recovery_report().find("repaired") != std::string::npos);
    storage.write(append_request({make_entry(10, 3)}));
    storage.sync();
  }
  const recovered_state repaired = recover_from(*this);
  BOOST_CHECK(!repaired.damage);
  BOOST_CHECK(repaired.state == (hard_state{3, "a", 10, 3}));
  check_entries(repaired.entries, concat(make_entries(1, 9, 1), {make_entry(10, 3)}));
}

BOOST_AUTO_TEST_CASE(repair_mode_is_never_lowered_by_a_repair) {
  write_and_sync(*this, append_request(make_entries(1, 10, 1), 0, hard_state{1, "a", 50}));
  flip_byte(file(first_segment), fs::file_size(file(first_segment)) - marker_size - 3);
  const recovered_state state = recover_damaged(*this, {first_segment});
  BOOST_CHECK_EQUAL(state.state.repair_until_index, 50u); // what the disk says
  file_storage storage(data);
  storage.recover();
  storage.accept_repair();
  BOOST_CHECK_EQUAL(storage.durable_hard_state().repair_until_index, 50u);
}

BOOST_AUTO_TEST_CASE(flipped_byte_followed_by_valid_records_is_damage) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  const std::size_t fifth_offset = 4 * record_size(entries[0]); // entries 1..9 have equal sizes
  flip_byte(file(first_segment), fifth_offset + 20);
  const recovered_state state =
      recover_damaged(*this, {first_segment, "offset " + std::to_string(fifth_offset), "CRC"});
  check_entries(state.entries, make_entries(1, 4, 1));
  // Every intact entry after the damage may have been acknowledged.
  BOOST_CHECK_EQUAL(state.damage->possibly_acknowledged_up_to, 10u);
}

BOOST_AUTO_TEST_CASE(corrupt_length_followed_by_valid_records_is_damage) {
  const auto entries = make_entries(1, 10, 1);
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  const std::size_t fifth_offset = 4 * record_size(entries[0]);
  flip_byte(file(first_segment), fifth_offset + 1);
  recover_damaged(*this, {first_segment, "offset " + std::to_string(fifth_offset)});
}

BOOST_AUTO_TEST_CASE(zeroed_records_before_a_sync_marker_are_damage) {
  const auto entries = make_entries(1, 9, 1); // all of one size
  write_and_sync(*this, append_request(entries, 0, hard_state{1, "a"}));
  std::string bytes = read_bytes(file(first_segment));
  const std::size_t fourth_offset = 3 * record_size(entries[0]);
  bytes.replace(fourth_offset, 2 * record_size(entries[0]), 2 * record_size(entries[0]), '\0');
  write_bytes(file(first_segment), bytes);
  recover_damaged(*this, {first_segment, "offset " + std::to_string(fourth_offset), "marker"});
}

BOOST_AUTO_TEST_CASE(torn_record_in_a_non_last_segment_is_damage) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, "a"}), options);
  const auto names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 1u);
  chop_bytes(file(first_segment), 2);
  const recovered_state state =
      recover_damaged(*this, {first_segment, "not in the last segment"}, options);
  BOOST_CHECK_EQUAL(state.damage->possibly_acknowledged_up_to, 30u);

  file_storage storage(data, options);
  storage.recover();
  storage.accept_repair();
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{first_segment});
}

BOOST_AUTO_TEST_CASE(corrupt_first_record_of_a_segment_is_damage_that_removes_it) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, "a"}), options);
  const auto names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 2u);
  flip_byte(file(names[1]), 12);
  const recovered_state state = recover_damaged(*this, {names[1], "offset 0"}, options);
  const uint64_t second_start = std::stoull(names[1].substr(4, 20));
  BOOST_CHECK_EQUAL(state.entries.size(), second_start - 1);
  {
    file_storage storage(data, options);
    storage.recover();
    storage.accept_repair();
  }
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{first_segment});
  check_entries(recover_from(*this, options).entries, make_entries(1, second_start - 1, 1));
}

// -- damage that cutting the tail cannot repair: recovery refuses
// --------------------------------------

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

// -- the commit hint: evidence of how long the log must be
// ----------------------------------------

/// Entries 1..20 synced with commit index 15, and the hint recorded by an idle maintenance call.
void write_log_with_hint(const scratch_dir& dir, file_storage_options options = {}) {
  file_storage storage(dir.data, options);
  storage.recover();
  persist_request request = append_request(make_entries(1, 20, 1), 0, hard_state{1, "a"});
  request.commit_index = 15;
  storage.write(request);
  storage.sync();
  // Not in the hard state written by that sync: the entries were not synced yet then.
  BOOST_CHECK_EQUAL(storage.commit_hint(), 0u);
  BOOST_CHECK(storage.maintenance_needed() >= maintenance_need::within_a_second);
  storage.maintain(false);
  BOOST_CHECK_EQUAL(storage.commit_hint(), 15u);
}

BOOST_AUTO_TEST_CASE(commit_hint_is_recorded_lazily_and_survives) {
  write_log_with_hint(*this);
  file_storage storage(data);
  storage.recover();
  BOOST_CHECK_EQUAL(storage.commit_hint(), 15u);
  // A restarted node's commit index starts low again; the hint never goes back for that.
  persist_request request = append_request({make_entry(21, 1)}, 0, hard_state{2, ""});
  request.commit_index = 3;
  storage.write(request);
  storage.sync();
  BOOST_CHECK_EQUAL(storage.commit_hint(), 15u);
  BOOST_CHECK(storage.maintenance_needed() == maintenance_need::when_idle); // only the marker
}

BOOST_AUTO_TEST_CASE(deleted_segments_under_a_commit_hint_are_refused) {
  write_log_with_hint(*this, small_segments());
  for (const auto& name : segment_files(*this))
    fs::remove(file(name));
  check_recover_throws(*this, {"ends at index 0", "index 15", "hard_state", "deleted"},
                       small_segments());
}

BOOST_AUTO_TEST_CASE(emptied_segment_under_a_commit_hint_is_refused) {
  write_log_with_hint(*this);
  write_bytes(file(first_segment), "");
  check_recover_throws(*this, {"ends at index 0", "index 15", "emptied"});
}

BOOST_AUTO_TEST_CASE(log_cut_below_the_commit_hint_at_a_record_boundary_is_refused) {
  write_log_with_hint(*this);
  chop_bytes(file(first_segment), marker_size + 6 * record_size(make_entry(20, 1)));
  check_recover_throws(*this, {"ends at index 14", "index 15"});
}

BOOST_AUTO_TEST_CASE(torn_looking_tail_below_the_commit_hint_is_damage) {
  // Shaped like a torn write, but the hint proves those entries were synced.
  write_log_with_hint(*this);
  chop_bytes(file(first_segment), marker_size + 6 * record_size(make_entry(20, 1)) - 3);
  const recovered_state state = recover_damaged(*this, {first_segment, "commit hint"});
  BOOST_CHECK_EQUAL(state.damage->keep_last_index, 14u);
  BOOST_CHECK_EQUAL(state.damage->possibly_acknowledged_up_to, 15u);
}

BOOST_AUTO_TEST_CASE(truncation_at_or_below_the_hint_is_a_deliberate_reset) {
  write_log_with_hint(*this);
  {
    file_storage storage(data);
    storage.recover();
    storage.write(append_request(make_entries(1, 2, 5), 1, hard_state{5, ""}));
    BOOST_CHECK_EQUAL(storage.commit_hint(), 0u); // durably lowered before the truncation
    storage.sync();
  }
  file_storage storage(data);
  const recovered_state state = storage.recover();
  BOOST_CHECK_EQUAL(storage.commit_hint(), 0u);
  check_entries(state.entries, make_entries(1, 2, 5));
}

BOOST_AUTO_TEST_CASE(commit_index_beyond_the_log_is_a_logic_error) {
  file_storage storage(data);
  storage.recover();
  persist_request request = append_request(make_entries(1, 3, 1));
  request.commit_index = 4;
  BOOST_CHECK_THROW(storage.write(request), std::logic_error);
}

// -- the base: compaction and resets (snapshots)
// -----------------------------------------------------

uint64_t first_index_of(const std::string& segment_name) {
  return std::stoull(segment_name.substr(4, 20));
}

std::vector<log_entry> slice(const std::vector<log_entry>& entries, uint64_t from, uint64_t to) {
  std::vector<log_entry> out;
  for (const auto& entry : entries)
    if (entry.index >= from && entry.index <= to)
      out.push_back(entry);
  return out;
}

BOOST_AUTO_TEST_CASE(compaction_drops_whole_segments_below_it_and_records_the_base) {
  const auto options = small_segments();
  // Every entry of its own term, so the base's term can only be the base entry's.
  std::vector<log_entry> entries;
  for (uint64_t index = 1; index <= 60; ++index)
    entries.push_back(make_entry(index, index));
  write_and_sync(*this, append_request(entries, 0, hard_state{60, "a"}), options);
  const std::vector<std::string> before = segment_files(*this);
  BOOST_REQUIRE_GT(before.size(), 6u);
  // Through an index inside a segment: that segment stays, with the entries up to it.
  const uint64_t inside = first_index_of(before.at(4)) + 1;
  const uint64_t expected_base = first_index_of(before.at(4)) - 1;
  {
    file_storage storage(data, options);
    storage.recover();
    persist_request request = append_request({make_entry(61, 60)});
    request.compact_through = inside;
    storage.write(request);
    // Durable at once, and the log keeps every entry after the new base.
    BOOST_CHECK_EQUAL(storage.base().index, expected_base);
    BOOST_CHECK_EQUAL(storage.base().term, expected_base);
    BOOST_CHECK_EQUAL(storage.first_index(), expected_base + 1);
    BOOST_CHECK_EQUAL(storage.last_index(), 61u);
    BOOST_CHECK_EQUAL(storage.stats().compactions, 1u);
    BOOST_CHECK_EQUAL(storage.stats().segments_deleted, 4u);
    storage.sync();
  }
  BOOST_CHECK(segment_files(*this) ==
              std::vector<std::string>(before.begin() + 4, before.end())); // names unchanged
  BOOST_CHECK(read_bytes(file("hard_state")) ==
              framed(hard_state_payload(60, "a", 0, 0, 0, log_base{expected_base, expected_base})));
  file_storage storage(data, options);
  const recovered_state state = storage.recover();
  BOOST_CHECK(storage.recovery_report().empty());
  BOOST_CHECK_EQUAL(state.base.index, expected_base);
  BOOST_CHECK_EQUAL(state.base.term, expected_base);
  check_entries(state.entries, slice(concat(entries, {make_entry(61, 60)}), expected_base + 1, 61));
  // Appends and truncations above the base go on as before.
  storage.write(append_request(make_entries(59, 62, 61), 59, hard_state{61, ""}));
  storage.sync();
}

BOOST_AUTO_TEST_CASE(compaction_never_drops_the_last_segment_nor_a_segment_holding_later_entries) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, ""}), options);
  const std::vector<std::string> names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 2u);
  file_storage storage(data, options);
  storage.recover();
  // Through the entry before the second segment's first: only the first segment goes.
  persist_request request;
  request.compact_through = first_index_of(names.at(1)) - 2;
  storage.write(request);
  BOOST_CHECK_EQUAL(storage.stats().compactions, 0u);
  BOOST_CHECK_EQUAL(storage.base().index, 0u);
  request.compact_through = first_index_of(names.at(1)) - 1;
  storage.write(request);
  BOOST_CHECK_EQUAL(storage.base().index, first_index_of(names.at(1)) - 1);
  // Through the last index: every segment but the last.
  request.compact_through = 30;
  storage.write(request);
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{names.back()});
  BOOST_CHECK_EQUAL(storage.base().index, first_index_of(names.back()) - 1);
  BOOST_CHECK_EQUAL(storage.last_index(), 30u);
  // Below the base: nothing to do, nothing written.
  const uint64_t writes = storage.stats().hard_state_writes;
  request.compact_through = 3;
  storage.write(request);
  BOOST_CHECK_EQUAL(storage.stats().hard_state_writes, writes);
}

BOOST_AUTO_TEST_CASE(requests_below_the_base_or_compaction_beyond_the_log_are_logic_errors) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, ""}), options);
  file_storage storage(data, options);
  storage.recover();
  persist_request compact;
  compact.compact_through = 20;
  storage.write(compact);
  const uint64_t base = storage.base().index;
  BOOST_REQUIRE_GT(base, 2u);
  BOOST_CHECK_THROW(storage.write(append_request({}, base)), std::logic_error);
  BOOST_CHECK_THROW(storage.write(append_request({}, 1)), std::logic_error);
  BOOST_CHECK_THROW(storage.write(append_request({make_entry(base, 1)}, base)), std::logic_error);
  persist_request beyond;
  beyond.compact_through = 31;
  BOOST_CHECK_THROW(storage.write(beyond), std::logic_error);
  beyond.entries = {make_entry(31, 1)}; // the request's own appends count
  storage.write(beyond);
  BOOST_CHECK_EQUAL(storage.last_index(), 31u);
  BOOST_CHECK_GT(storage.base().index, base); // through the last index: all but the last segment
  // Truncating to just after the base is allowed: the log becomes empty.
  storage.write(append_request({}, storage.base().index + 1));
  BOOST_CHECK_EQUAL(storage.last_index(), storage.base().index);
}

BOOST_AUTO_TEST_CASE(a_log_truncated_to_its_base_is_empty_and_grows_from_there) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 30, 1), 0, hard_state{1, ""}), options);
  uint64_t base = 0;
  {
    file_storage storage(data, options);
    storage.recover();
    persist_request request;
    request.compact_through = 30;
    storage.write(request);
    base = storage.base().index;
    storage.write(append_request({}, base + 1, hard_state{2, ""}));
    storage.sync();
  }
  BOOST_CHECK(segment_files(*this).empty());
  {
    file_storage storage(data, options);
    const recovered_state state = storage.recover();
    BOOST_CHECK(state.entries.empty());
    BOOST_CHECK(state.base == (log_base{base, 1}));
    storage.write(append_request(make_entries(base + 1, base + 2, 2)));
    storage.sync();
  }
  char name[64];
  std::snprintf(name, sizeof(name), "log-%020llu.seg", static_cast<unsigned long long>(base + 1));
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>{name});
  check_entries(recover_from(*this, options).entries, make_entries(base + 1, base + 2, 2));
}

BOOST_AUTO_TEST_CASE(segments_left_below_the_base_by_a_crash_are_removed_by_recovery) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, ""}), options);
  const std::vector<std::string> names = segment_files(*this);
  BOOST_REQUIRE_GT(names.size(), 4u);
  // What a crash right after the new base became durable leaves: every old segment.
  const uint64_t base = first_index_of(names.at(3)) - 1;
  write_bytes(file("hard_state"), framed(hard_state_payload(1, "", 0, 0, 0, log_base{base, 1})));
  file_storage storage(data, options);
  const recovered_state state = storage.recover();
  BOOST_CHECK(state.base == (log_base{base, 1}));
  check_entries(state.entries, make_entries(base + 1, 40, 1));
  BOOST_CHECK(segment_files(*this) == std::vector<std::string>(names.begin() + 3, names.end()));
  BOOST_CHECK(storage.recovery_report().find("interrupted compaction") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_segment_reaching_above_the_base_without_a_successor_is_refused) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, ""}), options);
  const std::vector<std::string> names = segment_files(*this);
  // A base inside the third segment: no segment starts right after it.
  const uint64_t base = first_index_of(names.at(2)) + 1;
  write_bytes(file("hard_state"), framed(hard_state_payload(1, "", 0, 0, 0, log_base{base, 1})));
  check_recover_throws(*this, {names.at(2), "no segment starts right after the base"}, options);
}

BOOST_AUTO_TEST_CASE(a_missing_first_segment_after_the_base_is_refused) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, ""}), options);
  const std::vector<std::string> names = segment_files(*this);
  // A finished compaction, and then the segment right after the base is lost.
  const uint64_t base = first_index_of(names.at(2)) - 1;
  write_bytes(file("hard_state"), framed(hard_state_payload(1, "", 0, 0, 0, log_base{base, 1})));
  for (std::size_t i = 0; i <= 2; ++i)
    fs::remove(file(names.at(i)));
  check_recover_throws(*this, {names.at(3), "missing", "base"}, options);
}

BOOST_AUTO_TEST_CASE(an_empty_log_below_the_commit_hint_is_refused_at_its_base) {
  fs::create_directory(data);
  write_bytes(file("hard_state"), framed(hard_state_payload(3, "", 0, 12, 0, log_base{10, 2})));
  check_recover_throws(*this, {"ends at index 10", "index 12"});
  write_bytes(file("hard_state"), framed(hard_state_payload(3, "", 0, 10, 0, log_base{10, 2})));
  const recovered_state state = recover_from(*this);
  BOOST_CHECK(state.base == (log_base{10, 2}));
  BOOST_CHECK(state.entries.empty());
}

BOOST_AUTO_TEST_CASE(the_first_entry_after_the_base_may_not_have_a_lower_term) {
  fs::create_directory(data);
  write_bytes(file("hard_state"), framed(hard_state_payload(3, "", 0, 0, 0, log_base{10, 3})));
  write_bytes(file("log-00000000000000000011.seg"), encoded_record(make_entry(11, 2)));
  check_recover_throws(*this, {"log-00000000000000000011.seg", "term 2", "below the term 3"});
}

persist_request reset_request(log_base to, std::vector<log_entry> entries,
                              std::optional<hard_state> state = std::nullopt) {
  persist_request request = append_request(std::move(entries), 0, state);
  request.has_reset = true;
  request.reset_to = to;
  return request;
}

BOOST_AUTO_TEST_CASE(a_reset_discards_the_log_and_restarts_it_after_the_base) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, ""}), options);
  for (const log_base to : {log_base{100, 3}, log_base{5, 2}, log_base{0, 0}}) {
    BOOST_TEST_CONTEXT("reset to " << to.index << "/" << to.term) {
      const auto after = make_entries(to.index + 1, to.index + 3, 4);
      {
        file_storage storage(data, options);
        storage.recover();
        const uint64_t deleted = storage.stats().segments_deleted;
        storage.write(reset_request(to, after, hard_state{4, "b"}));
        BOOST_CHECK_GT(storage.stats().segments_deleted, deleted);
        BOOST_CHECK_EQUAL(storage.stats().resets, 1u);
        storage.sync();
      }
      char name[64];
      std::snprintf(name, sizeof(name), "log-%020llu.seg",
                    static_cast<unsigned long long>(to.index + 1));
      BOOST_CHECK(segment_files(*this) == std::vector<std::string>{name});
      file_storage storage(data, options);
      const recovered_state state = storage.recover();
      BOOST_CHECK(state.base == to);
      BOOST_CHECK(state.state == (hard_state{4, "b"}));
      check_entries(state.entries, after);
      BOOST_CHECK(storage.recovery_report().empty());
      // Long enough to span segments again for the next reset.
      storage.write(append_request(make_entries(to.index + 4, to.index + 40, 4)));
      storage.sync();
    }
  }
}

BOOST_AUTO_TEST_CASE(a_reset_of_an_empty_log_writes_the_hard_state_once) {
  file_storage storage(data);
  storage.recover();
  const file_storage_stats before = storage.stats();
  storage.write(reset_request(log_base{7, 2}, {}, hard_state{2, ""}));
  BOOST_CHECK_EQUAL(storage.stats().hard_state_writes - before.hard_state_writes, 1u);
  BOOST_CHECK(storage.base() == (log_base{7, 2}));
  BOOST_CHECK(read_bytes(file("hard_state")) ==
              framed(hard_state_payload(2, "", 0, 0, 0, log_base{7, 2})));
}

BOOST_AUTO_TEST_CASE(invalid_resets_are_rejected_without_effect) {
  write_and_sync(*this, append_request(make_entries(1, 5, 2), 0, hard_state{2, ""}));
  file_storage storage(data);
  storage.recover();
  // Entries must follow the new base; the base's term cannot be above the node's.
  BOOST_CHECK_THROW(storage.write(reset_request(log_base{10, 2}, {make_entry(6, 2)})),
                    std::logic_error);
  BOOST_CHECK_THROW(storage.write(reset_request(log_base{10, 3}, {})), std::logic_error);
  BOOST_CHECK_THROW(storage.write(reset_request(log_base{0, 1}, {})), std::logic_error);
  persist_request below = reset_request(log_base{10, 2}, {});
  below.truncate_from = 10;
  BOOST_CHECK_THROW(storage.write(below), std::logic_error);
  BOOST_CHECK_EQUAL(storage.stats().resets, 0u);
  BOOST_CHECK_EQUAL(storage.last_index(), 5u);
  // With the request's new term it is fine.
  storage.write(reset_request(log_base{10, 3}, {make_entry(11, 3)}, hard_state{3, ""}));
  BOOST_CHECK_EQUAL(storage.last_index(), 11u);
}

BOOST_AUTO_TEST_CASE(a_reset_below_the_commit_hint_lowers_it_and_one_above_keeps_it) {
  write_log_with_hint(*this); // entries 1..20, hint 15
  {
    file_storage storage(data);
    storage.recover();
    storage.write(reset_request(log_base{30, 1}, {}));
    BOOST_CHECK_EQUAL(storage.commit_hint(), 15u);
    storage.write(reset_request(log_base{9, 1}, {}));
    BOOST_CHECK_EQUAL(storage.commit_hint(), 9u);
    storage.sync();
  }
  file_storage storage(data);
  BOOST_CHECK(storage.recover().base == (log_base{9, 1}));
  BOOST_CHECK_EQUAL(storage.commit_hint(), 9u);
}

BOOST_AUTO_TEST_CASE(an_interrupted_reset_is_finished_by_recovery) {
  const auto options = small_segments();
  write_and_sync(*this, append_request(make_entries(1, 40, 1), 0, hard_state{1, ""}), options);
  BOOST_REQUIRE_GT(segment_files(*this).size(), 3u);
  // The flag is durable and the old segments are all still there, some beyond the new base.
  write_bytes(file("hard_state"),
              framed(hard_state_payload(2, "x", 0, 0, 0, log_base{25, 2}, true)));
  {
    file_storage storage(data, options);
    const recovered_state state = storage.recover();
    BOOST_CHECK(state.base == (log_base{25, 2}));
    BOOST_CHECK(state.entries.empty());
    BOOST_CHECK(storage.recovery_report().find("interrupted reset") != std::string::npos);
  }
  BOOST_CHECK(segment_files(*this).empty());
  BOOST_CHECK(read_bytes(file("hard_state")) ==
              framed(hard_state_payload(2, "x", 0, 0, 0, log_base{25, 2}, false)));
}

BOOST_AUTO_TEST_CASE(compaction_and_reset_cost_what_the_header_says_and_appends_stay_cheap) {
  const auto options = small_segments();
  file_storage storage(data, options);
  storage.recover();
  storage.write(append_request(make_entries(1, 30, 1), 0, hard_state{1, ""}));
  storage.sync();
  file_storage_stats before = storage.stats();
  persist_request compact;
  compact.compact_through = 20;
  storage.write(compact);
  file_storage_stats after = storage.stats();
  BOOST_CHECK_EQUAL(after.hard_state_writes - before.hard_state_writes, 1u);
  BOOST_CHECK_EQUAL(after.file_syncs - before.file_syncs, 1u);           // the temp file
  BOOST_CHECK_EQUAL(after.directory_syncs - before.directory_syncs, 2u); // rename, removals

  before = after;
  storage.write(reset_request(log_base{50, 1}, {}));
  after = storage.stats();
  BOOST_CHECK_EQUAL(after.hard_state_writes - before.hard_state_writes, 2u);
  BOOST_CHECK_EQUAL(after.file_syncs - before.file_syncs, 2u);
  BOOST_CHECK_EQUAL(after.directory_syncs - before.directory_syncs, 3u);

  storage.write(append_request({make_entry(51, 1)}));
  storage.sync(); // creates the first segment of the new log: its directory sync
  before = storage.stats();
  for (uint64_t index = 52; index <= 71; ++index) {
    storage.write(append_request({make_entry(index, 1)}));
    storage.sync();
  }
  after = storage.stats();
  BOOST_CHECK_GT(after.segments_created - before.segments_created, 1u);
  BOOST_CHECK_EQUAL(after.file_syncs - before.file_syncs, 20u);
  // Only the new segments' names; no hard state replacement.
  BOOST_CHECK_EQUAL(after.directory_syncs - before.directory_syncs,
                    after.segments_created - before.segments_created);
  BOOST_CHECK_EQUAL(after.hard_state_writes - before.hard_state_writes, 0u);
}

/// file_storage and memory_storage (which the unit tests and the simulator use) agree on every
/// request: the same entries after memory's base, and file_storage's base at or below it with
/// the same term as the entry there.
BOOST_AUTO_TEST_CASE(file_storage_and_memory_storage_agree_on_bases_compaction_and_resets) {
  const auto options = small_segments();
  std::mt19937_64 rng(42);
  memory_storage memory;
  auto storage = std::make_unique<file_storage>(data, options);
  storage->recover();
  uint64_t term = 1;
  uint64_t commit = 0;
  std::vector<log_entry> full; // every entry since the last reset, from memory's point of view
  log_base reset_base;
  for (int step = 0; step < 300; ++step) {
    persist_request request;
    const uint64_t last = reset_base.index + full.size();
    const unsigned kind = static_cast<unsigned>(rng() % 100);
    if (kind < 5) {
      ++term;
      request.has_hard_state = true;
      request.state = hard_state{term, ""};
      request.has_reset = true;
      request.reset_to = log_base{last / 2 + rng() % 40, term - 1};
      if (request.reset_to.index == 0)
        request.reset_to.term = 0;
      reset_base = request.reset_to;
      full.clear();
      commit = reset_base.index;
    } else if (kind < 20 && last > commit) {
      request.truncate_from = commit + 1 + rng() % (last - commit);
      full.resize(request.truncate_from - 1 - reset_base.index);
    } else if (kind < 35 && commit > 0) {
      request.compact_through = commit - rng() % (commit / 2 + 1);
    }
    const uint64_t count = rng() % 6;
    for (uint64_t i = 0; i < count; ++i) {
      log_entry entry = make_entry(reset_base.index + full.size() + 1, term);
      request.entries.push_back(entry);
      full.push_back(entry);
    }
    commit = std::max(commit, reset_base.index + full.size() - rng() % 3);
    commit = std::min<uint64_t>(commit, reset_base.index + full.size());
    request.commit_index = commit;
    BOOST_TEST_CONTEXT("step " << step) {
      BOOST_REQUIRE_NO_THROW(storage->write(request));
      memory.write(request);
      storage->sync();
      memory.sync();
      const recovered_state& expected = memory.durable();
      BOOST_REQUIRE_LE(storage->base().index, expected.base.index);
      BOOST_REQUIRE_GE(storage->base().index, reset_base.index);
      BOOST_REQUIRE_EQUAL(storage->last_index(), expected.base.index + expected.entries.size());
      const uint64_t base_term = storage->base().index == reset_base.index
                                     ? reset_base.term
                                     : full[storage->base().index - reset_base.index - 1].term;
      BOOST_REQUIRE_EQUAL(storage->base().term, base_term);
      BOOST_REQUIRE_EQUAL(storage->commit_hint() <= memory.commit_hint(), true);
    }
  }
  BOOST_CHECK_GT(storage->stats().compactions, 5u);
  BOOST_CHECK_GT(storage->stats().resets, 5u);
  const recovered_state& expected = memory.durable();
  storage.reset();
  storage = std::make_unique<file_storage>(data, options);
  const recovered_state got = storage->recover();
  BOOST_CHECK(got.state == expected.state);
  // What memory keeps, file_storage keeps too, after its own (lower or equal) base.
  BOOST_REQUIRE_LE(got.base.index, expected.base.index);
  const auto tail = slice(got.entries, expected.base.index + 1, UINT64_MAX);
  check_entries(tail, expected.entries);
}

BOOST_AUTO_TEST_CASE(
    memory_storage_applies_reset_then_hard_state_then_truncation_append_compaction) {
  recovered_state state;
  apply_persist_request(state, append_request(make_entries(1, 10, 1), 0, hard_state{1, ""}));
  persist_request request = append_request(make_entries(8, 9, 2), 8, hard_state{2, ""});
  request.compact_through = 7; // the base's term is the entry's, not its successor's
  apply_persist_request(state, request);
  BOOST_CHECK(state.base == (log_base{7, 1}));
  check_entries(state.entries, make_entries(8, 9, 2));
  // Refused requests change nothing.
  const recovered_state before = state;
  BOOST_CHECK_THROW(apply_persist_request(state, append_request({}, 7)), std::logic_error);
  persist_request beyond;
  beyond.compact_through = 10;
  BOOST_CHECK_THROW(apply_persist_request(state, beyond), std::logic_error);
  BOOST_CHECK_EQUAL(state.entries.size(), before.entries.size());
  BOOST_CHECK(state.base == before.base);
  // A reset, with entries after its base.
  apply_persist_request(state,
                        reset_request(log_base{20, 2}, make_entries(21, 22, 3), hard_state{3, ""}));
  BOOST_CHECK(state.base == (log_base{20, 2}));
  check_entries(state.entries, make_entries(21, 22, 3));

  memory_storage memory;
  persist_request with_commit = append_request(make_entries(1, 10, 1), 0, hard_state{1, ""});
  with_commit.commit_index = 8;
  memory.write(with_commit);
  memory.sync();
  BOOST_CHECK_EQUAL(memory.commit_hint(), 8u);
  memory.write(reset_request(log_base{5, 1}, {}));
  memory.sync();
  BOOST_CHECK_EQUAL(memory.commit_hint(), 5u);
  memory.write(reset_request(log_base{30, 1}, {}));
  memory.sync();
  BOOST_CHECK_EQUAL(memory.commit_hint(), 5u);
}

// -- identity
// --------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(identity_is_recorded_read_back_and_cannot_change) {
  {
    file_storage storage(data);
    storage.recover();
    BOOST_CHECK(!storage.identity());
    storage.record_identity(node_identity{"n1", ""}); // joining: no cluster id yet
    BOOST_CHECK(*storage.identity() == (node_identity{"n1", ""}));
  }
  {
    file_storage storage(data);
    storage.recover();
    BOOST_CHECK(*storage.identity() == (node_identity{"n1", ""}));
    storage.record_identity(node_identity{"n1", "cluster-a"}); // learnt when added
    BOOST_CHECK_THROW(storage.record_identity(node_identity{"n2", "cluster-a"}), std::logic_error);
    BOOST_CHECK_THROW(storage.record_identity(node_identity{"n1", "cluster-b"}), std::logic_error);
    storage.record_identity(node_identity{"n1", ""}); // nothing to change
  }
  file_storage storage(data);
  storage.recover();
  BOOST_CHECK(*storage.identity() == (node_identity{"n1", "cluster-a"}));
  std::string payload = "IID1";
  put_le(payload, 2, 4);
  BOOST_CHECK(read_bytes(file("identity")) == framed(payload + "n1" + "cluster-a"));
}

BOOST_AUTO_TEST_CASE(cluster_id_of_a_request_is_recorded_before_it_is_acknowledged) {
  {
    file_storage storage(data);
    storage.recover();
    storage.record_identity(node_identity{"n3", ""});
    persist_request request = append_request(make_entries(1, 1, 1), 0, hard_state{1, ""});
    request.cluster_id = "c-42";
    storage.write(request);
    BOOST_CHECK(storage.identity()->cluster_id == "c-42");
    persist_request other = append_request(make_entries(2, 2, 1));
    other.cluster_id = "c-43";
    BOOST_CHECK_THROW(storage.write(other), std::logic_error);
    storage.sync();
  }
  file_storage storage(data);
  storage.recover();
  BOOST_CHECK(*storage.identity() == (node_identity{"n3", "c-42"}));
}

BOOST_AUTO_TEST_CASE(corrupt_or_orphaned_identity_file_is_refused) {
  write_and_sync(*this, append_request(make_entries(1, 1, 1), 0, hard_state{1, ""}));
  {
    file_storage storage(data);
    storage.recover();
    storage.record_identity(node_identity{"n1", "c"});
  }
  flip_byte(file("identity"), 10);
  check_recover_throws(*this, {"identity", "CRC"});
  fs::remove(file("identity"));
  fs::remove(file("hard_state"));
  fs::remove(file(first_segment));
  write_bytes(file("identity"), "");
  check_recover_throws(*this, {"identity"});
}

// -- what things cost
// ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(steady_appends_cost_one_data_sync_per_sync_and_idle_markers_one_more) {
  file_storage storage(data);
  storage.recover();
  storage.write(append_request(make_entries(1, 1, 1), 0, hard_state{1, "a"}));
  storage.sync();
  const file_storage_stats before = storage.stats();
  for (uint64_t index = 2; index <= 101; ++index) {
    persist_request request = append_request({make_entry(index, 1)});
    request.commit_index = index - 1;
    storage.write(request);
    storage.sync();
  }
  const file_storage_stats after = storage.stats();
  BOOST_CHECK_EQUAL(after.file_syncs - before.file_syncs, 100u);
  BOOST_CHECK_EQUAL(after.directory_syncs - before.directory_syncs, 0u);
  BOOST_CHECK_EQUAL(after.hard_state_writes - before.hard_state_writes, 0u);
  // Each batch after a sync starts with that sync's marker, in the same write.
  BOOST_CHECK_EQUAL(after.markers_in_batches - before.markers_in_batches, 100u);

  // Idle: the last sync's marker on its own (one fdatasync) and the lagging commit hint (one
  // replacement of the hard state file: one fdatasync and one directory fsync).
  BOOST_CHECK(storage.maintenance_needed() == maintenance_need::within_a_second);
  storage.maintain(true);
  const file_storage_stats idle = storage.stats();
  BOOST_CHECK_EQUAL(idle.markers_alone - after.markers_alone, 1u);
  BOOST_CHECK_EQUAL(idle.commit_hint_writes - after.commit_hint_writes, 1u);
  BOOST_CHECK_EQUAL(idle.file_syncs - after.file_syncs, 2u);
  BOOST_CHECK_EQUAL(idle.directory_syncs - after.directory_syncs, 1u);
  BOOST_CHECK_EQUAL(storage.commit_hint(), 100u);
  BOOST_CHECK(storage.maintenance_needed() == maintenance_need::none);
  storage.maintain(true);
  BOOST_CHECK_EQUAL(storage.stats().file_syncs, idle.file_syncs);
}

BOOST_AUTO_TEST_CASE(segment_rollover_makes_the_lagging_hint_urgent) {
  file_storage storage(data, small_segments());
  storage.recover();
  for (uint64_t index = 1; index <= 30; ++index) {
    persist_request request = append_request({make_entry(index, 1)});
    request.commit_index = index - 1;
    storage.write(request);
    storage.sync();
    if (storage.maintenance_needed() == maintenance_need::now) {
      BOOST_CHECK_GT(storage.stats().segments_created, 1u);
      storage.maintain(false);
      BOOST_CHECK_EQUAL(storage.commit_hint(), index - 1);
    }
  }
  BOOST_CHECK_GT(storage.commit_hint(), 0u);
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
