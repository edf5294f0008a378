// What a node starts from (`load_startup_snapshot`): the newest intact snapshot its log can
// continue, the log reset where it ends before the snapshot or contradicts it, and a clear
// refusal where nothing covers the gap before the log. Real files under /tmp.
#define BOOST_TEST_MODULE snapshot_startup
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/kv/command_codec.hpp"
#include "actors/kv/state_machine.hpp"
#include "actors/storage/file_storage.hpp"
#include "actors/storage/snapshot_actor.hpp"
#include "actors/storage/snapshot_store.hpp"

namespace fs = std::filesystem;
using namespace infinity;

namespace {

struct scratch_dir {
  std::string path;
  scratch_dir() {
    char name_template[] = "/tmp/snapshot_startup_test.XXXXXX";
    if (::mkdtemp(name_template) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = std::string{name_template} + "/data";
  }
  ~scratch_dir() {
    std::error_code ignored;
    fs::remove_all(fs::path(path).parent_path(), ignored);
  }
};

log_entry command_entry(uint64_t index, uint64_t term) {
  kv_command command;
  command.key = "k" + std::to_string(index % 5);
  command.value = "v" + std::to_string(index);
  command.client_id = 7;
  command.sequence = index;
  return log_entry{term, index, entry_kind::command, encode_command(command)};
}

std::vector<log_entry> entries(uint64_t first, uint64_t last, uint64_t term) {
  std::vector<log_entry> out;
  for (auto i = first; i <= last; ++i)
    out.push_back(command_entry(i, term));
  return out;
}

/// Writes hard state and entries to the log in `dir`.
void write_log(const std::string& dir, uint64_t term, const std::vector<log_entry>& log) {
  file_storage storage(dir);
  storage.recover();
  persist_request request;
  request.has_hard_state = true;
  request.state.term = term;
  request.entries = log;
  storage.write(request);
  storage.sync();
}

/// A snapshot of the state after applying `log` up to `index`.
void write_snapshot(const std::string& dir, const std::vector<log_entry>& log, uint64_t index) {
  kv_state_machine machine;
  for (const auto& entry : log)
    if (entry.index <= index)
      machine.apply(entry);
  snapshot_store store(dir);
  snapshot_meta meta;
  meta.index = machine.last_applied();
  meta.term = machine.last_applied_term();
  auto writer = store.begin(meta);
  kv_state_machine::serialize(machine.freeze(),
                              [&writer](std::string_view piece) { writer.append(piece); });
  writer.finish();
}

struct started {
  startup_snapshot snapshot;
  recovered_state recovered;
};

started start(const std::string& dir) {
  started out;
  file_storage storage(dir);
  out.recovered = storage.recover();
  snapshot_store store(dir);
  out.snapshot = load_startup_snapshot(store, storage, out.recovered);
  return out;
}

void flip_middle_byte(const std::string& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(0, std::ios::end);
  auto middle = static_cast<std::streamoff>(file.tellg()) / 2;
  file.seekg(middle);
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x40);
  file.seekp(middle);
  file.write(&byte, 1);
}

std::string newest_snapshot_path(const std::string& dir) {
  snapshot_store store(dir);
  return store.list().front().path;
}

} // namespace

BOOST_AUTO_TEST_CASE(no_snapshot_starts_empty_from_the_whole_log) {
  scratch_dir dir;
  write_log(dir.path, 1, entries(1, 20, 1));
  auto s = start(dir.path);
  BOOST_TEST(!s.snapshot.machine);
  BOOST_TEST(s.recovered.snapshot.index == 0u);
  BOOST_TEST(s.recovered.entries.size() == 20u);
}

BOOST_AUTO_TEST_CASE(newest_snapshot_is_loaded_and_the_log_kept_after_it) {
  scratch_dir dir;
  auto log = entries(1, 30, 2);
  write_log(dir.path, 2, log);
  write_snapshot(dir.path, log, 10);
  write_snapshot(dir.path, log, 20);
  auto s = start(dir.path);
  BOOST_REQUIRE(s.snapshot.machine);
  BOOST_TEST(s.snapshot.machine->last_applied() == 20u);
  BOOST_TEST(s.recovered.snapshot.index == 20u);
  BOOST_TEST(s.recovered.snapshot.term == 2u);
  BOOST_TEST(s.recovered.entries.size() == 30u, "entries after the snapshot are replayed");
}

BOOST_AUTO_TEST_CASE(corrupt_newest_snapshot_falls_back_to_an_older_one_and_says_so) {
  scratch_dir dir;
  auto log = entries(1, 30, 2);
  write_log(dir.path, 2, log);
  write_snapshot(dir.path, log, 10);
  write_snapshot(dir.path, log, 20);
  flip_middle_byte(newest_snapshot_path(dir.path));
  auto s = start(dir.path);
  BOOST_REQUIRE(s.snapshot.machine);
  BOOST_TEST(s.recovered.snapshot.index == 10u);
  bool reported = false;
  for (const auto& line : s.snapshot.report)
    reported = reported || line.find("skipped") != std::string::npos;
  BOOST_TEST(reported);
}

BOOST_AUTO_TEST_CASE(log_that_ends_before_the_snapshot_is_reset_after_it) {
  // A follower stored a received snapshot, then crashed before its log reset was durable.
  scratch_dir dir;
  auto leaders_log = entries(1, 40, 3);
  write_log(dir.path, 3, entries(1, 5, 3));
  write_snapshot(dir.path, leaders_log, 35);
  auto s = start(dir.path);
  BOOST_TEST(s.recovered.snapshot.index == 35u);
  BOOST_TEST(s.recovered.base.index == 35u);
  BOOST_TEST(s.recovered.entries.empty());
  // Durably: a second start sees the reset log.
  auto again = start(dir.path);
  BOOST_TEST(again.recovered.base.index == 35u);
  BOOST_TEST(again.recovered.snapshot.index == 35u);
}

BOOST_AUTO_TEST_CASE(log_that_contradicts_the_snapshot_is_reset_after_it) {
  // Uncommitted entries of an old leader where the snapshot (committed) has others.
  scratch_dir dir;
  write_log(dir.path, 4, entries(1, 30, 1));
  auto committed = entries(1, 25, 4);
  write_snapshot(dir.path, committed, 25);
  auto s = start(dir.path);
  BOOST_TEST(s.recovered.base.index == 25u);
  BOOST_TEST(s.recovered.base.term == 4u);
  BOOST_TEST(s.recovered.entries.empty());
}

BOOST_AUTO_TEST_CASE(snapshot_of_a_term_the_disk_has_not_recorded_raises_the_term) {
  // The snapshot's chunks were durable before the hard state of the term that carried them.
  scratch_dir dir;
  write_log(dir.path, 1, entries(1, 3, 1));
  write_snapshot(dir.path, entries(1, 12, 2), 12);
  auto s = start(dir.path);
  BOOST_TEST(s.recovered.state.term == 2u);
  BOOST_TEST(s.recovered.state.voted_for.empty());
  BOOST_TEST(s.recovered.base.index == 12u);
  auto again = start(dir.path);
  BOOST_TEST(again.recovered.state.term == 2u, "the raised term is durable");
}

BOOST_AUTO_TEST_CASE(compacted_log_without_an_intact_snapshot_refuses_to_start) {
  scratch_dir dir;
  auto log = entries(1, 30, 2);
  write_log(dir.path, 2, log);
  write_snapshot(dir.path, log, 20);
  {
    file_storage storage(dir.path);
    storage.recover();
    persist_request reset;
    reset.has_reset = true;
    reset.reset_to = log_base{20, 2};
    reset.entries = entries(21, 30, 2);
    storage.write(reset);
    storage.sync();
  }
  flip_middle_byte(newest_snapshot_path(dir.path));
  try {
    start(dir.path);
    BOOST_FAIL("a node whose log starts after index 20 with no intact snapshot must refuse");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    BOOST_TEST(what.find("no intact snapshot") != std::string::npos, what);
  }
}
