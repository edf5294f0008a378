#define BOOST_TEST_MODULE file_storage_crash
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "actors/storage/file_storage.hpp"
#include "tests/support/sim_file_system.hpp"

using namespace infinity;

namespace {

using sim_fs = sim_file_system;
const std::string data_dir = "/data";

log_entry make_entry(uint64_t index, uint64_t term) {
  return log_entry{term, index, entry_kind::command, "value-" + std::to_string(index)};
}

std::vector<log_entry> make_entries(uint64_t first, uint64_t last, uint64_t term) {
  std::vector<log_entry> entries;
  for (uint64_t index = first; index <= last; ++index)
    entries.push_back(make_entry(index, term));
  return entries;
}

persist_request request_of(std::vector<log_entry> entries, uint64_t truncate_from = 0,
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

/// Every crash outcome of the unsynced operations of `crashed`: each prefix, and for a kept last
/// write also a few tears (prefixes of it and lost sectors).
void for_each_crash_outcome(const sim_fs& crashed,
                            const std::function<void(sim_fs&, const std::string&)>& check) {
  const std::size_t unsynced = crashed.unsynced_operation_count();
  for (std::size_t prefix = 0; prefix <= unsynced; ++prefix) {
    std::vector<sim_fs::tear_options> tears{sim_fs::tear_options{}};
    const std::size_t size = prefix == 0 ? 0 : crashed.unsynced_write_size(prefix - 1);
    if (size > 0) {
      for (std::size_t keep : {std::size_t{0}, std::size_t{1}, size / 2, size - 1}) {
        sim_fs::tear_options tear;
        tear.kind = sim_fs::tear_kind::keep_prefix;
        tear.keep_bytes = keep;
        tears.push_back(tear);
      }
      for (std::size_t sector : {0, 1}) {
        sim_fs::tear_options tear;
        tear.kind = sim_fs::tear_kind::lose_sectors;
        tear.lost_sectors = {sector};
        tears.push_back(tear);
      }
    }
    for (const auto& tear : tears) {
      sim_fs image(crashed);
      image.crash_keeping(prefix, tear);
      sim_fs::crash_outcome outcome;
      outcome.prefix = prefix;
      outcome.unsynced = unsynced;
      outcome.tear = tear;
      check(image, outcome.describe());
    }
  }
}

} // namespace

// -- the simulated file system itself
// -----------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(sim_file_system_tests)

BOOST_AUTO_TEST_CASE(unsynced_writes_are_lost_synced_ones_kept) {
  sim_fs fs;
  fs.create_directories("/d");
  fs.sync_directory("/");
  auto f = fs.open("/d/a", sim_fs::open_mode::create_new);
  fs.sync_directory("/d");
  f->write_at(0, "hello");
  f->sync_data();
  f->write_at(5, " world");
  BOOST_CHECK_EQUAL(fs.unsynced_operation_count(), 1u);
  BOOST_CHECK_EQUAL(fs.unsynced_write_size(0), 6u);

  sim_fs lost(fs);
  lost.crash_keeping(0);
  BOOST_CHECK_EQUAL(lost.contents("/d/a"), "hello");
  sim_fs kept(fs);
  kept.crash_keeping(1);
  BOOST_CHECK_EQUAL(kept.contents("/d/a"), "hello world");
  sim_fs torn(fs);
  sim_fs::tear_options tear;
  tear.kind = sim_fs::tear_kind::keep_prefix;
  tear.keep_bytes = 2;
  torn.crash_keeping(1, tear);
  BOOST_CHECK_EQUAL(torn.contents("/d/a"), "hello w");
  // The original is untouched by crashes of its copies.
  BOOST_CHECK_EQUAL(fs.contents("/d/a"), "hello world");
  BOOST_CHECK_EQUAL(fs.unsynced_operation_count(), 1u);
}

BOOST_AUTO_TEST_CASE(namespace_operations_need_a_directory_sync) {
  sim_fs fs;
  fs.create_directories("/d");
  fs.sync_directory("/");
  {
    auto f = fs.open("/d/tmp", sim_fs::open_mode::create_new);
    f->write_at(0, "x");
    f->sync_data(); // data durable, name not
  }
  sim_fs before_dir_sync(fs);
  before_dir_sync.crash_keeping(0);
  BOOST_CHECK(!before_dir_sync.exists("/d/tmp"));

  fs.sync_directory("/d");
  fs.rename("/d/tmp", "/d/final");
  sim_fs before_rename_sync(fs);
  before_rename_sync.crash_keeping(0);
  BOOST_CHECK(before_rename_sync.exists("/d/tmp"));
  BOOST_CHECK(!before_rename_sync.exists("/d/final"));

  fs.sync_directory("/d");
  fs.crash_keeping(0);
  BOOST_CHECK_EQUAL(fs.contents("/d/final"), "x");
  BOOST_CHECK(fs.file_names("/d") == std::vector<std::string>{"final"});
}

BOOST_AUTO_TEST_CASE(lost_sectors_read_back_as_what_was_there) {
  sim_fs fs;
  auto f = fs.open("/a", sim_fs::open_mode::create_new);
  fs.sync_directory("/");
  f->write_at(0, std::string(100, 'o'));
  f->sync_data();
  f->write_at(100, std::string(1000, 'n')); // sectors 0 (bytes 100..511), 1, 2
  sim_fs::tear_options tear;
  tear.kind = sim_fs::tear_kind::lose_sectors;
  tear.lost_sectors = {0, 2};
  fs.crash_keeping(1, tear);
  const std::string bytes = fs.contents("/a");
  BOOST_REQUIRE_EQUAL(bytes.size(), 1100u);
  BOOST_CHECK_EQUAL(bytes.substr(0, 100), std::string(100, 'o'));
  BOOST_CHECK_EQUAL(bytes.substr(100, 412), std::string(412, '\0'));
  BOOST_CHECK_EQUAL(bytes.substr(512, 512), std::string(512, 'n'));
  BOOST_CHECK_EQUAL(bytes.substr(1024), std::string(76, '\0'));
}

BOOST_AUTO_TEST_CASE(fail_after_kills_the_process_at_that_call) {
  sim_fs fs;
  auto f = fs.open("/a", sim_fs::open_mode::create_new);
  fs.fail_after(2);
  f->write_at(0, "one");
  BOOST_CHECK_THROW(f->write_at(3, "two"), sim_fs::crashed);
  BOOST_CHECK(fs.is_down());
  BOOST_CHECK_THROW(fs.read_file("/a"), sim_fs::crashed);
  BOOST_CHECK_EQUAL(fs.contents("/a"), "one"); // the failed call did nothing
  fs.crash_keeping(fs.unsynced_operation_count());
  BOOST_CHECK(!fs.is_down());
  BOOST_CHECK_EQUAL(fs.read_file("/a"), "one");
  BOOST_CHECK_THROW(f->write_at(3, "two"), sim_fs::crashed); // a handle of the dead process
}

BOOST_AUTO_TEST_CASE(locks_die_with_the_process) {
  sim_fs fs;
  auto lock = fs.try_lock("/LOCK");
  BOOST_REQUIRE(lock);
  BOOST_CHECK(!fs.try_lock("/LOCK"));
  fs.crash_keeping(0);
  BOOST_CHECK(fs.try_lock("/LOCK"));
}

BOOST_AUTO_TEST_CASE(random_crashes_replay_from_the_seed) {
  auto run = [](uint64_t seed) {
    sim_fs fs;
    auto f = fs.open("/a", sim_fs::open_mode::create_new);
    for (int i = 0; i < 20; ++i)
      f->write_at(static_cast<uint64_t>(i) * 700, std::string(700, static_cast<char>('a' + i)));
    std::mt19937_64 rng(seed);
    sim_fs::crash_options options;
    options.tear_probability = 1.0;
    const auto outcome = fs.crash(rng, options);
    return outcome.describe() + "|" + (fs.exists("/a") ? fs.contents("/a") : "");
  };
  BOOST_CHECK_EQUAL(run(7), run(7));
  std::set<std::string> outcomes;
  for (uint64_t seed = 0; seed < 20; ++seed)
    outcomes.insert(run(seed));
  BOOST_CHECK_GT(outcomes.size(), 5u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- file_storage under crashes
// ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(file_storage_crashes)

/// The reviewer's bug: a follower's first append of a new term carries the new hard state and
/// entries of that term. Storage must make the hard state durable before any of those entries
/// reaches the kernel, so no crash can leave a log entry from a term the node never recorded.
/// Before the fix, sync() synced the segment first: crashing at the hard state file's rename left
/// term 1 with a term-2 entry, which the Raft node refuses at start.
BOOST_AUTO_TEST_CASE(new_term_with_entries_never_leaves_entries_of_a_future_term) {
  const auto first = make_entries(1, 3, 1);
  const auto second = make_entries(4, 5, 2);
  std::size_t points = 0;
  std::size_t outcomes = 0;
  for (uint64_t k = 1;; ++k) {
    auto fs = std::make_shared<sim_fs>();
    bool finished = false;
    {
      file_storage storage(data_dir, {}, fs);
      storage.recover();
      storage.write(request_of(first, 0, hard_state{1, ""}));
      storage.sync();
      fs->fail_after(k);
      try {
        storage.write(request_of(second, 0, hard_state{2, ""}));
        storage.sync();
        finished = true;
        fs->fail_after(0);
      } catch (const sim_fs::crashed&) {
      }
    }
    ++points;
    for_each_crash_outcome(*fs, [&](sim_fs& image, const std::string& how) {
      ++outcomes;
      BOOST_TEST_CONTEXT("crash at call " << k << " of the second request, " << how) {
        file_storage storage(data_dir, {}, std::shared_ptr<sim_fs>(&image, [](sim_fs*) {}));
        recovered_state state;
        BOOST_REQUIRE_NO_THROW(state = storage.recover());
        BOOST_REQUIRE_GE(state.entries.size(), first.size());
        const uint64_t last_term = state.entries.back().term;
        BOOST_CHECK_MESSAGE(state.state.term >= last_term,
                            "recovered term " << state.state.term << " but the last entry has term "
                                              << last_term);
        if (finished) {
          BOOST_CHECK_EQUAL(state.state.term, 2u);
          BOOST_CHECK_EQUAL(state.entries.size(), 5u);
        }
      }
    });
    if (finished)
      break;
  }
  BOOST_TEST_MESSAGE(points << " crash points, " << outcomes << " outcomes");
  BOOST_CHECK_GT(points, 5u);
}

BOOST_AUTO_TEST_SUITE_END()
