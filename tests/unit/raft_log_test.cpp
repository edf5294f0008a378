// Unit tests of the in-memory Raft log: index/term bookkeeping, truncation, slicing limits and
// the conflict hints used for fast back-off. Each test builds a small log and checks one rule.
#define BOOST_TEST_MODULE core
#include <boost/test/unit_test.hpp>

#include "actors/raft/raft_log.hpp"

using namespace infinity;

namespace {

log_entry entry(uint64_t term, uint64_t index, std::string data = {}) {
  return log_entry{term, index, entry_kind::command, std::move(data)};
}

raft_log log_with_terms(std::initializer_list<uint64_t> terms) {
  raft_log log;
  uint64_t index = 0;
  for (auto term : terms)
    log.append(entry(term, ++index));
  return log;
}

} // namespace

BOOST_AUTO_TEST_SUITE(raft_log_tests)

BOOST_AUTO_TEST_CASE(empty_log_matches_index_zero) {
  raft_log log;
  BOOST_TEST(log.last_index() == 0u);
  BOOST_TEST(log.last_term() == 0u);
  BOOST_TEST(log.matches(0, 0));
  BOOST_TEST(!log.matches(1, 1));
  BOOST_TEST(log.term_at(0) == 0u);
}

BOOST_AUTO_TEST_CASE(append_requires_contiguous_non_decreasing_terms) {
  auto log = log_with_terms({1, 1, 2});
  BOOST_CHECK_THROW(log.append(entry(2, 5)), std::logic_error);
  BOOST_CHECK_THROW(log.append(entry(1, 4)), std::logic_error);
  BOOST_CHECK_THROW(log.append(entry(0, 4)), std::logic_error);
  log.append(entry(3, 4));
  BOOST_TEST(log.last_index() == 4u);
  BOOST_TEST(log.last_term() == 3u);
}

BOOST_AUTO_TEST_CASE(truncate_removes_suffix) {
  auto log = log_with_terms({1, 1, 2, 2, 3});
  log.take_lowest_changed_index();
  log.truncate_from(3);
  BOOST_TEST(log.last_index() == 2u);
  BOOST_TEST(log.take_lowest_changed_index() == 3u);
  log.truncate_from(10); // beyond the end: nothing to do
  BOOST_TEST(log.last_index() == 2u);
  BOOST_CHECK_THROW(log.truncate_from(0), std::logic_error);
  BOOST_CHECK_THROW(log.at(3), std::logic_error);
}

BOOST_AUTO_TEST_CASE(slice_respects_count_and_byte_limits) {
  raft_log log;
  for (uint64_t i = 1; i <= 10; ++i)
    log.append(entry(1, i, std::string(100, 'x')));
  BOOST_TEST(log.slice(1).size() == 10u);
  BOOST_TEST(log.slice(4, 3).size() == 3u);
  BOOST_TEST(log.slice(4, 3).front().index == 4u);
  BOOST_TEST(log.slice(1, 100, 250).size() == 2u);
  // One oversized entry still goes out alone, or replication could never make progress.
  BOOST_TEST(log.slice(1, 100, 10).size() == 1u);
  BOOST_TEST(log.slice(11).empty());
}

BOOST_AUTO_TEST_CASE(conflict_hints) {
  auto log = log_with_terms({1, 1, 2, 2, 2, 4, 4});
  BOOST_TEST(log.first_index_of_term_run(5) == 3u);
  BOOST_TEST(log.first_index_of_term_run(2) == 1u);
  BOOST_TEST(log.first_index_of_term_run(7) == 6u);
  BOOST_TEST(log.last_index_of_term(2) == 5u);
  BOOST_TEST(log.last_index_of_term(3) == 0u);
  BOOST_TEST(log.last_index_of_term(4) == 7u);
  BOOST_TEST(log.last_index_of_term(9) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
