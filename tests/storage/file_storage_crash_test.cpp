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
