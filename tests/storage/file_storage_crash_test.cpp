#define BOOST_TEST_MODULE file_storage_crash
#include <boost/test/unit_test.hpp>

#include <algorithm>
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
#include "actors/storage/memory_storage.hpp"
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

std::shared_ptr<sim_fs> borrow(sim_fs& fs) {
  return std::shared_ptr<sim_fs>(&fs, [](sim_fs*) {});
}

// -- scenarios: what a Raft node asks of its storage, and what a crash may leave of it -----------

struct step {
  enum class kind { write, sync, idle, maintain, identity } what = kind::sync;
  persist_request request;
  node_identity identity;
};

/// Random, but as a Raft node would ask: terms never go back, one vote per term, truncations only
/// above the commit index (plus, at most once, a deliberate reset to an empty log), a commit index
/// within the log, the cluster id once. Entry sizes vary so records straddle sectors and segments.
/// With `snapshots`, also compaction at or below the commit index and snapshot installs (resets
/// to a base below, inside or beyond the log, of an earlier term, with new entries after it)
/// instead of the deliberate reset by truncation.
std::vector<step> make_scenario(uint64_t seed, std::size_t length, bool snapshots = false) {
  std::mt19937_64 rng(seed);
  auto chance = [&](unsigned percent) { return rng() % 100 < percent; };
  std::vector<step> steps;
  uint64_t term = 0;
  bool voted = false;
  uint64_t last = 0;
  uint64_t commit = 0;
  bool cluster_sent = false;
  bool reset_done = false;
  bool identity_done = false;
  for (std::size_t i = 0; i < length; ++i) {
    const unsigned kind = static_cast<unsigned>(rng() % 100);
    step next;
    if (kind < 18) {
      next.what = step::kind::sync;
    } else if (kind < 23) {
      next.what = step::kind::idle;
    } else if (kind < 26) {
      next.what = step::kind::maintain;
    } else if (kind < 29 && !identity_done) {
      next.what = step::kind::identity;
      next.identity = node_identity{"n1", ""};
      identity_done = true;
    } else {
      next.what = step::kind::write;
      persist_request& request = next.request;
      if (term == 0 || chance(15)) {
        term += 1 + rng() % 2;
        voted = false;
        request.has_hard_state = true;
        request.state = hard_state{term, ""};
      }
      if (!voted && chance(25)) {
        voted = true;
        request.has_hard_state = true;
        request.state = hard_state{term, "n" + std::to_string(1 + rng() % 3)};
      }
      if (snapshots && chance(5)) {
        // An install: new term, a snapshot of an earlier one.
        term += 1;
        voted = false;
        request.has_hard_state = true;
        request.state = hard_state{term, ""};
        request.has_reset = true;
        const uint64_t index = last / 2 + rng() % 30;
        request.reset_to = log_base{index, index == 0 ? 0 : std::max<uint64_t>(1, term - 1)};
        last = commit = index;
      } else if (snapshots && commit > 0 && chance(15)) {
        request.compact_through = commit - rng() % (commit / 2 + 1);
      } else if (!snapshots && !reset_done && i > length / 2 && chance(4)) {
        request.truncate_from = 1; // the node discards its state on purpose
        last = 0;
        commit = 0;
        reset_done = true;
      } else if (last > commit && chance(25)) {
        request.truncate_from = commit + 1 + rng() % (last - commit);
        last = request.truncate_from - 1;
      }
      const uint64_t count = rng() % 5;
      for (uint64_t j = 0; j < count; ++j) {
        const std::size_t size = chance(5) ? 600 + rng() % 400 : rng() % 48;
        std::string data(size, '\0');
        for (auto& c : data)
          c = static_cast<char>('a' + rng() % 26);
        request.entries.push_back(log_entry{term, ++last, entry_kind::command, data});
      }
      if (chance(60))
        commit = std::min<uint64_t>(last, commit + rng() % 4);
      request.commit_index = commit;
      if (!cluster_sent && chance(6)) {
        request.cluster_id = "c1";
        cluster_sent = true;
      }
    }
    steps.push_back(std::move(next));
  }
  steps.push_back(step{});
  return steps;
}

/// The same by hand, so every kind of step is there whatever the random generator does.
std::vector<step> fixed_scenario() {
  auto write = [](persist_request request) {
    step s;
    s.what = step::kind::write;
    s.request = std::move(request);
    return s;
  };
  auto with = [](persist_request request, uint64_t commit, std::string cluster = {}) {
    request.commit_index = commit;
    request.cluster_id = std::move(cluster);
    return request;
  };
  const step sync{};
  step idle;
  idle.what = step::kind::idle;
  step maintain;
  maintain.what = step::kind::maintain;
  step identity;
  identity.what = step::kind::identity;
  identity.identity = node_identity{"n1", ""};
  return {
      identity,
      write(request_of(make_entries(1, 4, 1), 0, hard_state{1, ""})),
      sync,
      write(with(request_of(make_entries(5, 12, 1)), 4)), // rolls over
      sync,
      idle,                                          // marker alone, commit hint
      write(request_of({}, 0, hard_state{2, "n2"})), // a vote alone
      sync,
      write(with(request_of(make_entries(10, 11, 3), 10, hard_state{3, ""}), 6)),
      sync,
      maintain,
      // Across segments, a vote, the cluster id, then group commit of two requests.
      write(with(request_of(make_entries(7, 15, 3), 7, hard_state{3, "n3"}), 6, "c1")),
      write(with(request_of(make_entries(16, 18, 3)), 12)),
      sync,
      write(request_of({make_entry(13, 4)}, 13, hard_state{4, ""})),
      sync,
      idle,
      write(request_of(make_entries(1, 3, 5), 1, hard_state{5, ""})), // a deliberate reset
      sync,
      idle,
  };
}

uint64_t last_index_of(const recovered_state& state) {
  return state.base.index + state.entries.size();
}

step write_step(persist_request request, uint64_t commit = 0, uint64_t compact_through = 0) {
  step s;
  s.what = step::kind::write;
  s.request = std::move(request);
  s.request.commit_index = commit;
  s.request.compact_through = compact_through;
  return s;
}

step reset_step(log_base to, std::vector<log_entry> entries, std::optional<hard_state> state,
                uint64_t commit) {
  step s = write_step(request_of(std::move(entries), 0, state), commit);
  s.request.has_reset = true;
  s.request.reset_to = to;
  return s;
}

/// Entries whose term is their index, so a base with the term of its neighbour is caught.
std::vector<log_entry> rising_terms(uint64_t first, uint64_t last, uint64_t offset = 0) {
  std::vector<log_entry> entries;
  for (uint64_t index = first; index <= last; ++index)
    entries.push_back(make_entry(index, index + offset));
  return entries;
}

/// Compaction while the log grows: through an index inside a segment, across several, below
/// the base (nothing to do), together with a truncation and a new term, before and after syncs.
std::vector<step> compaction_scenario() {
  const step sync{};
  step idle;
  idle.what = step::kind::idle;
  return {
      write_step(request_of(rising_terms(1, 12), 0, hard_state{12, ""})),
      sync,
      write_step(request_of(rising_terms(13, 20), 0, hard_state{20, ""}), 12),
      sync,
      // The appends are not synced yet when the compaction is durable.
      write_step(request_of(rising_terms(21, 24), 0, hard_state{24, ""}), 15, 10),
      write_step(request_of(rising_terms(25, 26), 0, hard_state{26, ""}), 20),
      sync,
      idle,
      write_step(request_of(rising_terms(24, 27, 10), 24, hard_state{37, "n2"}), 20, 20),
      sync,
      write_step(request_of({}), 23, 5), // below the base: nothing to do
      write_step(request_of(rising_terms(28, 40, 10), 0, hard_state{50, ""}), 27, 26),
      sync,
      idle,
  };
}

/// Snapshot installs: beyond the log, below it (stale entries of the old log at indexes the new
/// one reuses, with other terms), at its end, each followed by appends.
std::vector<step> reset_scenario() {
  const step sync{};
  step idle;
  idle.what = step::kind::idle;
  return {
      write_step(request_of(make_entries(1, 20, 1), 0, hard_state{1, ""})),
      sync,
      write_step(request_of({}), 10, 8),
      sync,
      reset_step(log_base{30, 2}, make_entries(31, 34, 3), hard_state{3, "n1"}, 30),
      write_step(request_of(make_entries(35, 40, 3))),
      sync,
      idle,
      reset_step(log_base{12, 1}, make_entries(13, 15, 4), hard_state{4, ""}, 12),
      sync,
      write_step(request_of(make_entries(16, 18, 4)), 14),
      sync,
      reset_step(log_base{18, 4}, {make_entry(19, 4)}, std::nullopt, 18),
      sync,
      idle,
  };
}

/// The states a correct storage may recover after the scenario's writes: `states[i]` after the
/// first i writes, without compaction (entries since the last reset, whose base is the reset's);
/// `compacted[i]` the highest `compact_through` of writes up to i since that reset (a recovered
/// base may lie anywhere from the reset's base to there); `low_water[i]` the last index after
/// write i's reset and truncation, before its appends.
struct scenario_model {
  std::vector<recovered_state> states;
  std::vector<uint64_t> compacted;
  std::vector<uint64_t> low_water;

  explicit scenario_model(const std::vector<step>& steps) {
    states.emplace_back();
    compacted.push_back(0);
    low_water.push_back(0);
    for (const step& s : steps) {
      if (s.what != step::kind::write)
        continue;
      recovered_state next = states.back();
      uint64_t through = compacted.back();
      if (s.request.has_reset)
        through = s.request.reset_to.index;
      uint64_t low = s.request.has_reset ? s.request.reset_to.index : last_index_of(next);
      if (s.request.truncate_from != 0)
        low = std::min<uint64_t>(low, s.request.truncate_from - 1);
      persist_request uncompacted = s.request;
      uncompacted.compact_through = 0;
      apply_persist_request(next, uncompacted);
      states.push_back(std::move(next));
      compacted.push_back(std::max(through, s.request.compact_through));
      low_water.push_back(low);
    }
  }
};

/// Whether `got`'s log is what `full` (a model state) leaves after a compaction through at most
/// `compacted`, cut short at its end: its base is the reset's, or an entry of `full` at most
/// `compacted` with that entry's term; and its entries are `full`'s from there on.
bool log_explained_by(const recovered_state& got, const recovered_state& full, uint64_t compacted) {
  const log_base& reset = full.base;
  if (got.base.index < reset.index || last_index_of(got) > last_index_of(full))
    return false;
  if (got.base.index == reset.index) {
    if (got.base.term != reset.term)
      return false;
  } else if (got.base.index > compacted ||
             full.entries[got.base.index - reset.index - 1].term != got.base.term) {
    return false;
  }
  return std::equal(got.entries.begin(), got.entries.end(),
                    full.entries.begin() +
                        static_cast<std::ptrdiff_t>(got.base.index - reset.index));
}

/// How far a run got before it crashed.
struct progress {
  /// Writes begun (the last may have been interrupted) and covered by a returned sync.
  std::size_t writes_started = 0;
  std::size_t writes_synced = 0;
  std::optional<node_identity> identity;
  std::string cluster_id;
  std::string cluster_id_written;
  bool finished = false;
  file_storage_stats stats;
};

progress run_scenario(sim_fs& fs, const std::vector<step>& steps,
                      const file_storage_options& options, uint64_t crash_at_call) {
  progress done;
  fs.fail_after(crash_at_call);
  try {
    file_storage storage(data_dir, options, borrow(fs));
    storage.recover();
    for (const step& s : steps) {
      switch (s.what) {
      case step::kind::write:
        ++done.writes_started;
        storage.write(s.request);
        if (!s.request.cluster_id.empty())
          done.cluster_id_written = s.request.cluster_id;
        break;
      case step::kind::sync:
        storage.sync();
        done.writes_synced = done.writes_started;
        done.cluster_id = done.cluster_id_written;
        break;
      case step::kind::idle:
        storage.maintain(true);
        break;
      case step::kind::maintain:
        storage.maintain(false);
        break;
      case step::kind::identity:
        storage.record_identity(s.identity);
        done.identity = s.identity;
        break;
      }
    }
    done.finished = true;
    done.stats = storage.stats();
  } catch (const sim_fs::crashed&) {
    // The process died at that call; the storage object died with it above.
  }
  fs.fail_after(0);
  return done;
}

std::string describe(const recovered_state& state) {
  std::ostringstream out;
  out << "term " << state.state.term << " vote '" << state.state.voted_for << "', base "
      << state.base.index << "/" << state.base.term << ", " << state.entries.size()
      << " entries, terms";
  for (const auto& entry : state.entries)
    out << " " << entry.term;
  return out.str();
}

/// Everything the crash test promises about one recovered state.
void check_recovered(const recovered_state& got, const scenario_model& model,
                     const progress& done) {
  BOOST_TEST_INFO("recovered " << describe(got));
  BOOST_REQUIRE_MESSAGE(!got.damage, "a crash alone must not look like corruption: "
                                         << (got.damage ? got.damage->description : ""));
  const std::size_t synced = done.writes_synced;
  const std::size_t started = done.writes_started;

  const hard_state& acked = model.states[synced].state;
  BOOST_CHECK_MESSAGE(got.state.term > acked.term ||
                          (got.state.term == acked.term &&
                           (acked.voted_for.empty() || got.state.voted_for == acked.voted_for)),
                      "lost the synced vote for '" << acked.voted_for << "' in term " << acked.term
                                                   << "; recovered " << describe(got));

  // Some request i at or after the last returned sync explains the log: it is a prefix of the log
  // after i (appends cut short), or of the log before i (i's truncation, which removes segments
  // one by one, cut short); it keeps every synced entry no request up to i truncated; and the
  // hard state is i's or a later request's, since nothing of i reaches the disk before its hard
  // state does.
  bool explained = false;
  bool log_ok = false;
  uint64_t keep = last_index_of(model.states[synced]);
  for (std::size_t i = synced; i <= started && !explained; ++i) {
    if (i > synced)
      keep = std::min(keep, model.low_water[i]);
    const bool log_matches =
        last_index_of(got) >= keep &&
        (log_explained_by(got, model.states[i], model.compacted[i]) ||
         (i > synced && log_explained_by(got, model.states[i - 1], model.compacted[i])));
    log_ok = log_ok || log_matches;
    for (std::size_t j = i; j <= started && log_matches && !explained; ++j)
      explained = model.states[j].state == got.state;
  }
  BOOST_CHECK_MESSAGE(log_ok,
                      "log lost synced entries or holds entries no request wrote; recovered "
                          << describe(got) << "; synced " << describe(model.states[synced]));
  BOOST_CHECK_MESSAGE(!log_ok || explained,
                      "the log shows a request whose hard state is not durable; recovered "
                          << describe(got));
  for (std::size_t i = 0; i < got.entries.size(); ++i)
    BOOST_REQUIRE_EQUAL(got.entries[i].index, got.base.index + i + 1);
  if (!got.entries.empty())
    BOOST_CHECK_MESSAGE(got.state.term >= got.entries.back().term,
                        "last entry has term " << got.entries.back().term
                                               << " beyond the recovered term");
  BOOST_CHECK_MESSAGE(got.state.term >= got.base.term,
                      "base has term " << got.base.term << " beyond the recovered term");
}

/// Recovers `image`, checks the result and that the storage keeps working: an append written and
/// synced after recovery is there after the next restart.
void recover_and_check(sim_fs& image, const scenario_model& model, const progress& done,
                       const file_storage_options& options, bool* cut_a_torn_tail = nullptr) {
  recovered_state got;
  {
    file_storage storage(data_dir, options, borrow(image));
    BOOST_REQUIRE_NO_THROW(got = storage.recover());
    check_recovered(got, model, done);
    if (done.identity)
      BOOST_CHECK_MESSAGE(storage.identity() && storage.identity()->node_id == "n1",
                          "lost the recorded node id");
    if (!done.cluster_id.empty())
      BOOST_CHECK_MESSAGE(storage.identity() && storage.identity()->cluster_id == done.cluster_id,
                          "lost the cluster id of an acknowledged request");
    if (cut_a_torn_tail)
      *cut_a_torn_tail = !storage.recovery_report().empty();
    const uint64_t term = std::max<uint64_t>(got.state.term, 1);
    persist_request more;
    more.has_hard_state = true;
    more.state = got.state;
    more.state.term = term;
    more.entries.push_back(log_entry{term, last_index_of(got) + 1, entry_kind::noop, "after"});
    storage.write(more);
    storage.sync();
  }
  file_storage again(data_dir, options, borrow(image));
  const recovered_state after = again.recover();
  BOOST_REQUIRE(!after.damage);
  BOOST_REQUIRE(after.base == got.base);
  BOOST_REQUIRE_EQUAL(after.entries.size(), got.entries.size() + 1);
  BOOST_CHECK(after.entries.back().data == "after");
  BOOST_CHECK(std::equal(got.entries.begin(), got.entries.end(), after.entries.begin()));
}

/// Crashes the scenario at every call, tries every crash outcome at each, and, where recovery had
/// to cut a torn tail, also crashes that recovery at every call.
void crash_everywhere(const std::vector<step>& steps, const file_storage_options& options) {
  const scenario_model model(steps);
  std::size_t points = 0;
  std::size_t outcomes = 0;
  std::size_t torn = 0;
  for (uint64_t k = 1;; ++k) {
    sim_fs fs;
    const progress done = run_scenario(fs, steps, options, k);
    ++points;
    for_each_crash_outcome(fs, [&](sim_fs& image, const std::string& how) {
      ++outcomes;
      BOOST_TEST_CONTEXT("crash at call " << k << " (" << done.writes_started << " writes, "
                                          << done.writes_synced << " synced), " << how) {
        sim_fs before_recovery(image);
        bool cut = false;
        recover_and_check(image, model, done, options, &cut);
        if (!cut)
          return;
        ++torn;
        // The cut itself must be crash-safe.
        for (uint64_t k2 = 1;; ++k2) {
          sim_fs again(before_recovery);
          again.fail_after(k2);
          bool finished = false;
          try {
            file_storage storage(data_dir, options, borrow(again));
            storage.recover();
            finished = true;
          } catch (const sim_fs::crashed&) {
          }
          again.fail_after(0);
          if (finished)
            break;
          BOOST_TEST_CONTEXT("and its recovery at call " << k2) {
            for_each_crash_outcome(
                again,
                [&](sim_fs& second, const std::string& how2) {
                  BOOST_TEST_CONTEXT(how2) {
                    recover_and_check(second, model, done, options);
                  }
                },
                false);
          }
        }
      }
    });
    if (done.finished)
      break;
  }
  BOOST_TEST_MESSAGE(points << " crash points, " << outcomes << " outcomes, " << torn
                            << " with a torn tail cut");
  BOOST_CHECK_GT(points, 50u);
  BOOST_CHECK_GT(torn, 0u);
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

file_storage_options tiny_segments(std::size_t write_buffer_bytes = std::size_t{1} << 20) {
  file_storage_options options;
  options.max_segment_bytes = 256;
  options.write_buffer_bytes = write_buffer_bytes;
  return options;
}

/// Terms and votes, truncations within and across segments, appends, rollovers, group commit,
/// identity and cluster id, idle markers and lazy commit hints: crash at every call, try every
/// outcome (and torn last writes), and check that recovery keeps everything a returned sync
/// covered, never lets the log run ahead of the term, and leaves a working log.
BOOST_AUTO_TEST_CASE(every_crash_point_of_a_mixed_workload_keeps_what_was_synced) {
  {
    // Everything the scenario is meant to exercise did happen.
    sim_fs fs;
    const progress done = run_scenario(fs, fixed_scenario(), tiny_segments(), 0);
    BOOST_REQUIRE(done.finished);
    BOOST_CHECK_GT(done.stats.segments_created, 2u);
    BOOST_CHECK_GT(done.stats.segments_deleted, 0u);
    BOOST_CHECK_GT(done.stats.markers_in_batches, 0u);
    BOOST_CHECK_GT(done.stats.markers_alone, 0u);
    BOOST_CHECK_GT(done.stats.commit_hint_writes, 0u);
    BOOST_CHECK_EQUAL(done.cluster_id, "c1");
    fs.crash_keeping(0);
    file_storage storage(data_dir, tiny_segments(), borrow(fs));
    BOOST_CHECK_EQUAL(storage.recover().entries.size(), 3u);
    BOOST_CHECK_EQUAL(storage.commit_hint(), 0u); // lowered by the reset
  }
  {
    auto steps = fixed_scenario();
    steps.resize(steps.size() - 3); // up to the reset
    sim_fs fs;
    BOOST_REQUIRE(run_scenario(fs, steps, tiny_segments(), 0).finished);
    fs.crash_keeping(0);
    file_storage storage(data_dir, tiny_segments(), borrow(fs));
    storage.recover();
    BOOST_CHECK_EQUAL(storage.commit_hint(), 12u);
  }
  BOOST_TEST_CONTEXT("fixed scenario") {
    crash_everywhere(fixed_scenario(), tiny_segments());
  }
  for (uint64_t seed : {1, 2, 3}) {
    BOOST_TEST_CONTEXT("scenario seed " << seed) {
      crash_everywhere(make_scenario(seed, 40), tiny_segments());
    }
  }
}

/// Compaction during appends: at every crash point recovery keeps every synced entry after a base
/// that is consistent with the entries and terms written, and never more than was asked for.
BOOST_AUTO_TEST_CASE(every_crash_point_of_compaction_during_appends_keeps_what_was_synced) {
  {
    sim_fs fs;
    const progress done = run_scenario(fs, compaction_scenario(), tiny_segments(), 0);
    BOOST_REQUIRE(done.finished);
    BOOST_CHECK_GE(done.stats.compactions, 3u);
    fs.crash_keeping(0);
    file_storage storage(data_dir, tiny_segments(), borrow(fs));
    const recovered_state state = storage.recover();
    BOOST_CHECK_GT(state.base.index, 20u);
    BOOST_CHECK_LE(state.base.index, 26u);
    BOOST_CHECK_EQUAL(last_index_of(state), 40u);
  }
  BOOST_TEST_CONTEXT("compaction scenario") {
    crash_everywhere(compaction_scenario(), tiny_segments());
  }
  BOOST_TEST_CONTEXT("with flushes inside write") {
    crash_everywhere(compaction_scenario(), tiny_segments(64));
  }
}

/// A reset (snapshot install) followed by appends: at every crash point recovery finds either the
/// old log or the new one after the new base, never an entry of the old log behind the new base.
BOOST_AUTO_TEST_CASE(every_crash_point_of_resets_followed_by_appends_leaves_no_stale_entry) {
  {
    sim_fs fs;
    const progress done = run_scenario(fs, reset_scenario(), tiny_segments(), 0);
    BOOST_REQUIRE(done.finished);
    BOOST_CHECK_EQUAL(done.stats.resets, 3u);
    fs.crash_keeping(0);
    file_storage storage(data_dir, tiny_segments(), borrow(fs));
    const recovered_state state = storage.recover();
    BOOST_CHECK(state.base == (log_base{18, 4}));
    BOOST_CHECK_EQUAL(last_index_of(state), 19u);
  }
  BOOST_TEST_CONTEXT("reset scenario") {
    crash_everywhere(reset_scenario(), tiny_segments());
  }
}

/// Random workloads with compaction and installs mixed in, crashed at every call.
BOOST_AUTO_TEST_CASE(every_crash_point_of_random_workloads_with_snapshots_keeps_what_was_synced) {
  std::size_t compactions = 0;
  std::size_t resets = 0;
  for (uint64_t seed : {11, 12, 13, 14}) {
    const auto steps = make_scenario(seed, 50, true);
    sim_fs probe;
    const progress done = run_scenario(probe, steps, tiny_segments(), 0);
    compactions += done.stats.compactions;
    resets += done.stats.resets;
    BOOST_TEST_CONTEXT("scenario seed " << seed) {
      crash_everywhere(steps, tiny_segments());
    }
  }
  BOOST_CHECK_GT(compactions, 3u);
  BOOST_CHECK_GT(resets, 1u);
}

/// Long random workloads with snapshots, one random crash each.
BOOST_AUTO_TEST_CASE(random_crashes_of_long_workloads_with_snapshots_keep_what_was_synced) {
  for (uint64_t seed = 300; seed < 400; ++seed) {
    const auto steps = make_scenario(seed, 150, true);
    const scenario_model model(steps);
    std::mt19937_64 rng(seed);
    sim_fs probe;
    run_scenario(probe, steps, tiny_segments(), 0);
    const uint64_t k = 1 + rng() % probe.call_count();
    sim_fs fs;
    const progress done = run_scenario(fs, steps, tiny_segments(), k);
    const auto outcome = fs.crash(rng);
    BOOST_TEST_CONTEXT("seed " << seed << ", crash at call " << k << ", " << outcome.describe()) {
      recover_and_check(fs, model, done, tiny_segments());
    }
  }
}

/// The same with a write buffer so small that write() itself hands entries to the kernel, and
/// rolls segments over, between syncs.
BOOST_AUTO_TEST_CASE(every_crash_point_with_flushes_inside_write_keeps_what_was_synced) {
  for (uint64_t seed : {4, 5}) {
    BOOST_TEST_CONTEXT("scenario seed " << seed) {
      crash_everywhere(make_scenario(seed, 40), tiny_segments(64));
    }
  }
}

/// Longer runs, one random crash each, drawn as the cluster simulator would draw them.
BOOST_AUTO_TEST_CASE(random_crashes_of_long_workloads_keep_what_was_synced) {
  std::size_t crashes = 0;
  for (uint64_t seed = 100; seed < 300; ++seed) {
    const auto steps = make_scenario(seed, 150);
    const scenario_model model(steps);
    std::mt19937_64 rng(seed);
    sim_fs fs;
    // Find how many calls the run makes, then crash somewhere in it.
    sim_fs probe;
    run_scenario(probe, steps, tiny_segments(), 0);
    const uint64_t k = 1 + rng() % probe.call_count();
    const progress done = run_scenario(fs, steps, tiny_segments(), k);
    const auto outcome = fs.crash(rng);
    ++crashes;
    BOOST_TEST_CONTEXT("seed " << seed << ", crash at call " << k << ", " << outcome.describe()) {
      recover_and_check(fs, model, done, tiny_segments());
    }
  }
  BOOST_CHECK_EQUAL(crashes, 200u);
}

/// Bit rot in synced records (anything before the marker a clean shutdown leaves) is never cut
/// silently: recovery reports damage whose bound covers the whole synced log, and after the
/// repair the node is in repair mode up to there.
BOOST_AUTO_TEST_CASE(corrupting_synced_bytes_is_reported_as_damage) {
  std::size_t damaged = 0;
  for (uint64_t seed = 1000; seed < 1150; ++seed) {
    const auto steps = make_scenario(seed, 60);
    const scenario_model model(steps);
    sim_fs fs;
    BOOST_REQUIRE(run_scenario(fs, steps, tiny_segments(), 0).finished);
    const std::size_t synced_entries = last_index_of(model.states.back());
    const auto names = fs.file_names(data_dir);
    std::vector<std::string> segments;
    for (const auto& name : names)
      if (name.rfind("log-", 0) == 0)
        segments.push_back(name);
    if (segments.empty())
      continue;
    std::mt19937_64 rng(seed);
    const std::string victim = segments[rng() % segments.size()];
    const std::string path = data_dir + "/" + victim;
    const std::size_t size = fs.contents(path).size();
    const std::size_t protected_bytes = victim == segments.back() ? 33 : 0; // the last marker
    if (size <= protected_bytes)
      continue;
    const std::size_t offset = rng() % (size - protected_bytes);
    fs.flip_byte(path, offset, static_cast<uint8_t>(1 + rng() % 255));
    BOOST_TEST_CONTEXT("seed " << seed << ", byte " << offset << " of " << victim) {
      recovered_state got;
      {
        file_storage storage(data_dir, tiny_segments(), borrow(fs));
        BOOST_REQUIRE_NO_THROW(got = storage.recover());
        BOOST_REQUIRE_MESSAGE(got.damage, "corruption of synced bytes went unreported");
        ++damaged;
        BOOST_CHECK(got.damage->description.find(victim) != std::string::npos);
        BOOST_CHECK_LE(got.damage->keep_last_index, synced_entries);
        BOOST_CHECK_GE(got.damage->possibly_acknowledged_up_to, synced_entries);
        BOOST_CHECK(log_explained_by(got, model.states.back(), model.compacted.back()));
        BOOST_CHECK_THROW(storage.write(persist_request{}), std::logic_error);
        storage.accept_repair();
      }
      file_storage storage(data_dir, tiny_segments(), borrow(fs));
      const recovered_state repaired = storage.recover();
      BOOST_CHECK(!repaired.damage);
      BOOST_CHECK_EQUAL(repaired.entries.size(), got.entries.size());
      BOOST_CHECK_GE(repaired.state.repair_until_index, synced_entries);
    }
  }
  BOOST_CHECK_GT(damaged, 100u);
}

/// A synced batch whose marker never made it (crash right after the sync) is judged by shape: a
/// flipped byte in a complete record is still corruption, and with the idle marker written it is
/// proven synced.
BOOST_AUTO_TEST_CASE(flipped_byte_in_the_last_synced_record_with_or_without_its_marker) {
  for (bool idle_marker : {false, true}) {
    BOOST_TEST_CONTEXT((idle_marker ? "after the idle marker" : "before any marker")) {
      sim_fs fs;
      {
        file_storage storage(data_dir, {}, borrow(fs));
        storage.recover();
        storage.write(request_of(make_entries(1, 5, 1), 0, hard_state{1, ""}));
        storage.sync();
        if (idle_marker)
          storage.maintain(true);
        fs.crash_keeping(0); // power cut while the node is still running
      }
      const std::string path = data_dir + "/log-00000000000000000001.seg";
      const std::size_t size = fs.contents(path).size();
      fs.flip_byte(path, size - (idle_marker ? 33 : 0) - 3);
      file_storage storage(data_dir, {}, borrow(fs));
      const recovered_state got = storage.recover();
      BOOST_REQUIRE(got.damage);
      BOOST_CHECK_EQUAL(got.damage->keep_last_index, 4u);
      BOOST_CHECK_EQUAL(got.damage->possibly_acknowledged_up_to, 5u);
      BOOST_CHECK_EQUAL(got.damage->description.find("marker") != std::string::npos, idle_marker);
    }
  }
}

/// accept_repair() itself may be interrupted: the node then restarts in repair mode and the
/// repair completes on the next attempt.
BOOST_AUTO_TEST_CASE(crash_during_a_repair_stays_in_repair_mode) {
  sim_fs base;
  {
    file_storage storage(data_dir, tiny_segments(), borrow(base));
    storage.recover();
    storage.write(request_of(make_entries(1, 30, 1), 0, hard_state{1, ""}));
    storage.sync();
  }
  base.flip_byte(data_dir + "/log-00000000000000000001.seg", 40); // the second record
  for (uint64_t k = 1;; ++k) {
    sim_fs fs(base);
    bool finished = false;
    fs.fail_after(k);
    try {
      file_storage storage(data_dir, tiny_segments(), borrow(fs));
      BOOST_REQUIRE(storage.recover().damage);
      storage.accept_repair();
      finished = true;
    } catch (const sim_fs::crashed&) {
    }
    fs.fail_after(0);
    for_each_crash_outcome(fs, [&](sim_fs& image, const std::string& how) {
      BOOST_TEST_CONTEXT("crash at call " << k << " of the repair, " << how) {
        file_storage storage(data_dir, tiny_segments(), borrow(image));
        recovered_state got;
        BOOST_REQUIRE_NO_THROW(got = storage.recover());
        if (got.damage)
          storage.accept_repair();
        BOOST_CHECK_EQUAL(storage.durable_hard_state().repair_until_index, 30u);
        BOOST_CHECK_EQUAL(got.entries.size(), 1u);
      }
    });
    if (finished)
      break;
  }
}

BOOST_AUTO_TEST_SUITE_END()
