#define BOOST_TEST_MODULE snapshot_store_crash
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "actors/storage/snapshot_store.hpp"
#include "tests/support/sim_file_system.hpp"

using namespace infinity;

namespace {

using sim_fs = sim_file_system;
const std::string data_dir = "/data";
const std::string snapshot_dir = "/data/snapshots";

std::shared_ptr<sim_fs> borrow(sim_fs& fs) {
  return std::shared_ptr<sim_fs>(&fs, [](sim_fs*) {});
}

std::string random_bytes(std::size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(size, '\0');
  for (auto& c : bytes)
    c = static_cast<char>(rng());
  return bytes;
}

snapshot_meta meta_of(uint64_t index, uint64_t term) {
  return snapshot_meta{index, term, index / 2, "members-at-" + std::to_string(index)};
}

snapshot_file write_snapshot(snapshot_store& store, const snapshot_meta& meta,
                             const std::string& body, std::size_t piece) {
  snapshot_writer writer = store.begin(meta);
  for (std::size_t offset = 0; offset < body.size(); offset += piece)
    writer.append(std::string_view(body).substr(offset, piece));
  return writer.finish();
}

std::string body_of(snapshot_reader& reader) {
  std::string body;
  while (body.size() < reader.body_size())
    body += reader.read_body(body.size(), 50000);
  return body;
}

/// Passes if the snapshot is listed, opens, verifies, and holds `body` and `meta`.
void check_whole(snapshot_store& store, const snapshot_meta& meta, const std::string& body) {
  const auto files = store.list();
  auto it = std::find_if(files.begin(), files.end(), [&](const snapshot_file& file) {
    return file.index == meta.index && file.term == meta.term;
  });
  BOOST_REQUIRE_MESSAGE(it != files.end(), "snapshot " << meta.index << " is not listed");
  snapshot_reader reader = store.open(*it);
  const auto problem = reader.verify();
  BOOST_REQUIRE_MESSAGE(!problem, *problem);
  BOOST_CHECK(reader.meta().membership == meta.membership);
  BOOST_CHECK_EQUAL(reader.meta().config_index, meta.config_index);
  BOOST_CHECK(body_of(reader) == body);
}

bool listed(snapshot_store& store, uint64_t index) {
  const auto files = store.list();
  return std::any_of(files.begin(), files.end(),
                     [&](const snapshot_file& file) { return file.index == index; });
}

bool has_name_ending(const sim_fs& fs, const std::string& suffix) {
  for (const auto& name : fs.file_names(snapshot_dir))
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

/// The bytes a leader would send for a snapshot: written by a store on a disk of its own.
std::string snapshot_bytes(const snapshot_meta& meta, const std::string& body) {
  sim_fs elsewhere;
  snapshot_store store(data_dir, borrow(elsewhere));
  const snapshot_file file = write_snapshot(store, meta, body, 4096);
  return elsewhere.contents(file.path);
}

} // namespace

BOOST_AUTO_TEST_SUITE(snapshot_store_crashes)

/// Writing a snapshot while an older one exists, crashed at every call with every outcome: the
/// older one is untouched; the new one is either not visible at all or whole and valid, and
/// visible once `finish` returned; no temp file survives the next open; the store still works.
BOOST_AUTO_TEST_CASE(every_crash_point_of_a_snapshot_write_leaves_it_whole_or_invisible) {
  const snapshot_meta old_meta = meta_of(10, 1);
  const std::string old_body = random_bytes(3000, 1);
  const snapshot_meta new_meta = meta_of(20, 2);
  const std::string new_body = random_bytes(600 * 1024 + 7, 2); // flushed in several writes
  sim_fs base;
  {
    snapshot_store store(data_dir, borrow(base));
    write_snapshot(store, old_meta, old_body, 1000);
  }
  std::size_t points = 0;
  std::size_t outcomes = 0;
  std::size_t visible = 0;
  for (uint64_t k = 1;; ++k) {
    sim_fs fs(base);
    bool finished = false;
    fs.fail_after(k);
    try {
      snapshot_store store(data_dir, borrow(fs));
      write_snapshot(store, new_meta, new_body, 10000);
      finished = true;
    } catch (const sim_fs::crashed&) {
    }
    fs.fail_after(0);
    ++points;
    for_each_crash_outcome(fs, [&](sim_fs& image, const std::string& how) {
      ++outcomes;
      BOOST_TEST_CONTEXT("crash at call " << k << ", " << how) {
        snapshot_store store(data_dir, borrow(image));
        check_whole(store, old_meta, old_body);
        if (listed(store, new_meta.index)) {
          ++visible;
          check_whole(store, new_meta, new_body);
        } else {
          BOOST_CHECK_MESSAGE(!finished, "a finished snapshot was lost");
        }
        BOOST_CHECK(!has_name_ending(image, ".tmp"));
        write_snapshot(store, meta_of(30, 2), "after", 100);
        check_whole(store, meta_of(30, 2), "after");
      }
    });
    if (finished)
      break;
  }
  BOOST_TEST_MESSAGE(points << " crash points, " << outcomes << " outcomes, " << visible
                            << " with the new snapshot visible");
  BOOST_CHECK_GT(points, 8u);
  BOOST_CHECK_GT(visible, 0u);
}

namespace {

struct receive_run {
  /// Bytes accepted, and bytes acknowledged (a sync returned after them).
  uint64_t written = 0;
  uint64_t acknowledged = 0;
  bool finished = false;
};

/// Receives `bytes` from where the store's receive stands, a chunk and a sync at a time, then
/// finishes; stops where the simulated process dies.
receive_run receive_all(sim_fs& fs, uint64_t index, uint64_t term, const std::string& bytes,
                        std::size_t chunk) {
  receive_run run;
  try {
    snapshot_store store(data_dir, borrow(fs));
    snapshot_receiver receiver = store.receive(index, term, bytes.size());
    run.written = run.acknowledged = receiver.size();
    while (receiver.size() < bytes.size()) {
      const auto result =
          receiver.write(receiver.size(), std::string_view(bytes).substr(receiver.size(), chunk));
      BOOST_REQUIRE(result.accepted);
      run.written = result.size;
      receiver.sync();
      run.acknowledged = receiver.durable_size();
    }
    const auto finished = receiver.finish();
    BOOST_REQUIRE_MESSAGE(finished.file, finished.problem);
    run.finished = true;
  } catch (const sim_fs::crashed&) {
  }
  return run;
}

/// What a restart after a crash of `run` must find: the snapshot whole, or a receive to resume at
/// least at what was acknowledged; then resuming completes it.
void check_after_crash(sim_fs& image, const receive_run& run, const snapshot_meta& meta,
                       const std::string& body, const std::string& bytes, std::size_t chunk) {
  {
    snapshot_store store(data_dir, borrow(image));
    if (listed(store, meta.index)) {
      check_whole(store, meta, body);
      BOOST_CHECK(!store.pending());
      BOOST_CHECK(!has_name_ending(image, ".prog"));
      return;
    }
    BOOST_CHECK_MESSAGE(!run.finished, "a finished receive was lost");
    const auto pending = store.pending();
    const uint64_t durable = pending ? pending->durable_size : 0;
    BOOST_CHECK_MESSAGE(durable >= run.acknowledged, "resumes at " << durable << " but "
                                                                   << run.acknowledged
                                                                   << " bytes were acknowledged");
    BOOST_CHECK_LE(durable, run.written);
    if (pending) {
      BOOST_CHECK_EQUAL(pending->index, meta.index);
      BOOST_CHECK_EQUAL(pending->total_size, bytes.size());
    }
  }
  const receive_run resumed = receive_all(image, meta.index, meta.term, bytes, chunk);
  BOOST_REQUIRE(resumed.finished);
  snapshot_store store(data_dir, borrow(image));
  check_whole(store, meta, body);
  BOOST_CHECK(image.file_names(snapshot_dir).size() == 2u); // LOCK and the snapshot
}

} // namespace

/// A chunked receive (each chunk acknowledged after a sync), crashed at every call with every
/// outcome, then resumed after the restart: nothing acknowledged is lost, the resume point is
/// never beyond what was received, and the finished snapshot is whole. Resumes that crash again
/// (process kill or power cut at every call) resume once more.
BOOST_AUTO_TEST_CASE(
    every_crash_point_of_a_chunked_receive_resumes_and_loses_no_acknowledged_byte) {
  const snapshot_meta meta = meta_of(77, 5);
  const std::string body = random_bytes(17000, 3);
  const std::string bytes = snapshot_bytes(meta, body);
  const std::size_t chunk = 2500; // straddles sectors; the last chunk is short
  std::size_t points = 0;
  std::size_t outcomes = 0;
  std::size_t nested = 0;
  for (uint64_t k = 1;; ++k) {
    sim_fs fs;
    fs.fail_after(k);
    const receive_run run = receive_all(fs, meta.index, meta.term, bytes, chunk);
    fs.fail_after(0);
    ++points;
    for_each_crash_outcome(fs, [&](sim_fs& image, const std::string& how) {
      ++outcomes;
      BOOST_TEST_CONTEXT("crash at call " << k << " (" << run.acknowledged << " of " << bytes.size()
                                          << " acknowledged), " << how) {
        sim_fs before(image);
        check_after_crash(image, run, meta, body, bytes, chunk);
        // The resume itself crashed at every call: killed (everything kept) or power cut
        // (nothing unsynced kept).
        // Every third point, no tears, and only while there is something to resume.
        if (k % 3 != 0 || how.find(',') != std::string::npos || has_name_ending(before, ".snap"))
          return;
        for (uint64_t k2 = 1;; ++k2) {
          sim_fs again(before);
          std::optional<uint64_t> durable_before;
          {
            snapshot_store store(data_dir, borrow(again));
            if (auto pending = store.pending())
              durable_before = pending->durable_size;
          }
          receive_run first;
          first.acknowledged = durable_before.value_or(0);
          again.fail_after(k2);
          const receive_run second = receive_all(again, meta.index, meta.term, bytes, chunk);
          again.fail_after(0);
          receive_run combined = second;
          combined.acknowledged = std::max(first.acknowledged, second.acknowledged);
          combined.written = std::max(combined.written, combined.acknowledged);
          for (bool power_cut : {false, true}) {
            ++nested;
            BOOST_TEST_CONTEXT("and the resume at call "
                               << k2 << (power_cut ? ", power cut" : ", killed")) {
              sim_fs third(again);
              third.crash_keeping(power_cut ? 0 : third.unsynced_operation_count());
              check_after_crash(third, combined, meta, body, bytes, chunk);
            }
          }
          if (second.finished)
            break;
        }
      }
    });
    if (run.finished)
      break;
  }
  BOOST_TEST_MESSAGE(points << " crash points, " << outcomes << " outcomes, " << nested
                            << " crashed resumes");
  BOOST_CHECK_GT(points, 20u);
  BOOST_CHECK_GT(nested, 100u);
}

/// A receive interrupted by a crash, then superseded by the install of a newer snapshot: the old
/// partial files go, whatever a crash during the new receive leaves.
BOOST_AUTO_TEST_CASE(a_new_install_after_a_crash_discards_the_interrupted_one) {
  const snapshot_meta old_meta = meta_of(40, 3);
  const std::string old_bytes = snapshot_bytes(old_meta, random_bytes(9000, 4));
  const snapshot_meta new_meta = meta_of(60, 4);
  const std::string new_body = random_bytes(9000, 5);
  const std::string new_bytes = snapshot_bytes(new_meta, new_body);
  sim_fs base;
  {
    snapshot_store store(data_dir, borrow(base));
    snapshot_receiver receiver = store.receive(old_meta.index, old_meta.term, old_bytes.size());
    receiver.write(0, old_bytes.substr(0, 4000));
    receiver.sync();
  }
  base.crash_keeping(0);
  for (uint64_t k = 1;; ++k) {
    sim_fs fs(base);
    fs.fail_after(k);
    const receive_run run = receive_all(fs, new_meta.index, new_meta.term, new_bytes, 3000);
    fs.fail_after(0);
    for_each_crash_outcome(
        fs,
        [&](sim_fs& image, const std::string& how) {
          BOOST_TEST_CONTEXT("crash at call " << k << ", " << how) {
            const receive_run again =
                receive_all(image, new_meta.index, new_meta.term, new_bytes, 3000);
            BOOST_REQUIRE(again.finished);
            snapshot_store store(data_dir, borrow(image));
            check_whole(store, new_meta, new_body);
            BOOST_CHECK(!listed(store, old_meta.index));
            BOOST_CHECK_EQUAL(image.file_names(snapshot_dir).size(), 2u);
          }
        },
        false);
    if (run.finished)
      break;
  }
}

/// retain() crashed at every call: every snapshot left is whole, and the newest ones it keeps
/// are all there.
BOOST_AUTO_TEST_CASE(every_crash_point_of_retain_leaves_whole_snapshots) {
  sim_fs base;
  std::vector<std::string> bodies;
  {
    snapshot_store store(data_dir, borrow(base));
    for (uint64_t i = 1; i <= 5; ++i) {
      bodies.push_back(random_bytes(1000 * i, i));
      write_snapshot(store, meta_of(i * 10, 1), bodies.back(), 700);
    }
  }
  for (uint64_t k = 1;; ++k) {
    sim_fs fs(base);
    bool finished = false;
    fs.fail_after(k);
    try {
      snapshot_store store(data_dir, borrow(fs));
      const snapshot_pin pin = store.pin(store.list().back()); // the oldest, being sent
      BOOST_CHECK_EQUAL(store.retain(2).size(), 2u);
      finished = true;
    } catch (const sim_fs::crashed&) {
    }
    fs.fail_after(0);
    for_each_crash_outcome(fs, [&](sim_fs& image, const std::string& how) {
      BOOST_TEST_CONTEXT("crash at call " << k << ", " << how) {
        snapshot_store store(data_dir, borrow(image));
        for (uint64_t i = 1; i <= 5; ++i)
          if (i >= 4 || i == 1 || listed(store, i * 10))
            check_whole(store, meta_of(i * 10, 1), bodies[i - 1]);
        if (finished)
          BOOST_CHECK_EQUAL(store.list().size(), 3u);
      }
    });
    if (finished)
      break;
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(snapshot_corruption)

/// Every byte of a snapshot matters: flipping any one is caught when it is opened (header) or
/// verified (everything), and newest_valid then falls back to the older snapshot when the log
/// covers the gap after it, and to nothing when it does not.
BOOST_AUTO_TEST_CASE(a_flipped_byte_anywhere_is_detected_and_newest_valid_falls_back_when_it_may) {
  sim_fs base;
  snapshot_file newest;
  {
    snapshot_store store(data_dir, borrow(base));
    write_snapshot(store, meta_of(50, 2), random_bytes(400, 6), 100);
    newest = write_snapshot(store, meta_of(80, 3), random_bytes(700, 7), 100);
  }
  const std::size_t size = base.contents(newest.path).size();
  std::size_t at_open = 0;
  std::size_t at_verify = 0;
  std::mt19937_64 rng(8);
  for (std::size_t offset = 0; offset < size; ++offset) {
    sim_fs fs(base);
    fs.flip_byte(newest.path, offset, static_cast<uint8_t>(1 + rng() % 255));
    BOOST_TEST_CONTEXT("byte " << offset << " of " << size) {
      snapshot_store store(data_dir, borrow(fs));
      try {
        snapshot_reader reader = store.open(newest);
        BOOST_CHECK_MESSAGE(reader.verify(), "verify() missed the flipped byte");
        ++at_verify;
      } catch (const std::runtime_error& error) {
        BOOST_CHECK(std::string(error.what()).find(newest.path) != std::string::npos);
        ++at_open;
      }
      // The log starts at 40: snapshot 50 and entries 51.. rebuild the state.
      const snapshot_choice covered = store.newest_valid(40);
      BOOST_REQUIRE(covered.file);
      BOOST_CHECK_EQUAL(covered.file->index, 50u);
      BOOST_REQUIRE_EQUAL(covered.rejected.size(), 1u);
      BOOST_CHECK_EQUAL(covered.rejected[0].file.index, 80u);
      // The log starts at 60: entries 51..59 exist only in the corrupt snapshot.
      const snapshot_choice gap = store.newest_valid(60);
      BOOST_CHECK(!gap.file);
      BOOST_CHECK_EQUAL(gap.rejected.size(), 2u);
    }
  }
  BOOST_TEST_MESSAGE(at_open << " caught at open, " << at_verify << " by verify");
  BOOST_CHECK_GT(at_verify, 500u);
}

BOOST_AUTO_TEST_SUITE_END()
