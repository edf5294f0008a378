// Unit tests of the Raft core: log replication (Raft §5.3), committing entries of earlier terms
// (§5.4.2) and follower crashes (§5.5). See raft_core_test.cpp for the approach.
#include <boost/test/unit_test.hpp>

#include "tests/unit/raft_core_harness.hpp"

using namespace infinity;
using namespace infinity::core_test;

namespace {

const std::vector<std::string> three{"a", "b", "c"};

/// A follower "f" of an imaginary leader "l" (and an imaginary third member "x").
node& add_follower(network& net, recovered_state state) {
  return net.add(config_for("f", {"f", "l", "x"}), std::move(state));
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(log_replication, core_fixture)

// §5.3: "The leader appends the command to its log as a new entry, then issues AppendEntries RPCs
// in parallel to each of the other servers to replicate the entry."
BOOST_AUTO_TEST_CASE(the_leader_appends_a_proposal_and_sends_it_to_every_follower) {
  network net(three);
  net.elect("a");
  auto& a = net.core("a");
  a.propose(1, "set x");
  net.step("a");
  BOOST_TEST(a.log().last_index() == 2u);
  BOOST_TEST((a.log().at(2) == command(a.term(), 2, "set x")));
  for (const std::string peer : {"b", "c"}) {
    auto appends = net.sent<append_entries>("a", peer);
    BOOST_TEST_REQUIRE(appends.size() == 1u);
    BOOST_TEST(appends[0].prev_log_index == 1u);
    BOOST_TEST(appends[0].prev_log_term == a.term());
    BOOST_TEST_REQUIRE(appends[0].entries.size() == 1u);
    BOOST_TEST((appends[0].entries[0] == a.log().at(2)));
  }
}

// §5.3: "A log entry is committed once the leader that created the entry has replicated it on a
// majority of the servers ... the leader applies the entry to its state machine and returns the
// result of that execution to the client."
BOOST_AUTO_TEST_CASE(an_entry_commits_on_a_majority_and_its_result_is_returned) {
  network net(three);
  net.elect("a");
  auto& a = net.core("a");
  a.propose(7, "set x");
  net.step("a");
  net.drop<append_entries>("a", "c");
  net.deliver<append_entries>("a", "b");
  BOOST_TEST(a.commit_index() == 1u);
  BOOST_TEST(net.at("a").answers.empty());
  net.deliver<append_reply>("b", "a");
  BOOST_TEST(a.commit_index() == 2u);
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 7u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 2u);
  BOOST_TEST(answers[0].reply.payload == "applied set x");
}

// §5.3: "If the follower does not find an entry in its log with the same index and term, then it
// refuses the new entries", with the hint of thesis §5.3 (the first index of the conflicting term,
// or the end of its log).
BOOST_AUTO_TEST_CASE(a_follower_refuses_entries_whose_previous_entry_it_does_not_hold) {
  network net;
  add_follower(net, recovered(1, log_with_terms({1, 1})));
  net.handle("f", append("l", 2, 5, 1, {command(2, 6)}));
  net.handle("f", append("l", 2, 2, 2, {command(2, 3)}));
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 2u);
  BOOST_TEST(!replies[0].success);
  BOOST_TEST(replies[0].conflict_index == 3u); // its log ends at 2
  BOOST_TEST(replies[0].conflict_term == 0u);
  BOOST_TEST(!replies[1].success);
  BOOST_TEST(replies[1].conflict_term == 1u); // its entry at 2 is of term 1, starting at 1
  BOOST_TEST(replies[1].conflict_index == 1u);
  BOOST_TEST(terms_of(net.core("f").log()) == (std::vector<uint64_t>{1, 1}));
}

// §5.3: "After a rejection, the leader decrements nextIndex and retries", here with the
// optimization the paper sketches: one rejection per conflicting term, not per entry; then "the
// follower's log is consistent with the leader's, and it will remain that way".
BOOST_AUTO_TEST_CASE(the_leader_backs_off_by_the_conflict_hint_and_repairs_the_follower) {
  network net;
  net.add(config_for("a", three), recovered(3, log_with_terms({1, 1, 3, 3, 3})), 1);
  net.add(config_for("b", three), recovered(2, log_with_terms({1, 1, 2, 2, 2, 2, 2})), 2);
  net.add(config_for("c", three), recovered(3, log_with_terms({1, 1, 3, 3, 3})), 3);
  net.elect("a");
  BOOST_TEST(net.delivered<append_reply>("b", "a").size() >= 2u);
  size_t rejections = 0;
  for (const auto& reply : net.delivered<append_reply>("b", "a"))
    rejections += reply.success ? 0 : 1;
  BOOST_TEST(rejections == 1u);
  BOOST_TEST(terms_of(net.core("b").log()) == (std::vector<uint64_t>{1, 1, 3, 3, 3, 4}));
  BOOST_TEST(net.at("b").disk.entries == net.at("a").disk.entries);
}

// §5.3: "If an existing entry conflicts with a new one (same index but different terms), delete
// the existing entry and all that follow it"; "Append any new entries not already in the log"
// (entries that match are kept, even past the end of the append).
BOOST_AUTO_TEST_CASE(a_follower_truncates_a_conflicting_suffix_and_keeps_a_matching_one) {
  network net;
  auto& f = add_follower(net, recovered(2, log_with_terms({1, 1, 2, 2})));
  auto& log = net.core("f").log();
  net.handle("f", append("l", 3, 1, 1, {log.at(2)}));
  BOOST_TEST(terms_of(log) == (std::vector<uint64_t>{1, 1, 2, 2}));
  net.handle("f", append("l", 3, 2, 1, {command(3, 3)}));
  BOOST_TEST(terms_of(log) == (std::vector<uint64_t>{1, 1, 3}));
  BOOST_TEST(f.persists.back().truncate_from == 3u);
  BOOST_TEST(f.disk.entries.size() == 3u);
  BOOST_TEST((f.disk.entries.back() == command(3, 3)));
}

// §5.3 (Figure 2): "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
// last new entry)"; "Once a follower learns that a log entry is committed, it applies the entry".
BOOST_AUTO_TEST_CASE(a_follower_commits_up_to_the_leaders_commit_but_not_past_what_it_checked) {
  network net;
  auto& f = add_follower(net, recovered(1, log_with_terms({1, 1, 1, 1})));
  net.handle("f", append("l", 2, 2, 1, {}, 4));
  BOOST_TEST(net.core("f").commit_index() == 2u);
  BOOST_TEST(f.applied.size() == 2u);
}

// §5.3: "The leader keeps track of the highest index it knows to be committed, and it includes that
// index in future AppendEntries RPCs (including heartbeats) so that the other servers eventually
// find out."
BOOST_AUTO_TEST_CASE(the_commit_index_reaches_every_follower) {
  network net(three);
  net.elect("a");
  net.core("a").propose(1, "set x");
  net.step("a");
  net.run();
  net.tick("a", 2);
  net.run();
  for (const auto& id : three) {
    BOOST_TEST(net.core(id).commit_index() == 2u, id);
    BOOST_TEST_REQUIRE(net.at(id).applied.size() == 2u, id);
    BOOST_TEST(net.at(id).applied.back().data == "set x", id);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(commit_rules, core_fixture)

// §8 / §5.4.2: "Raft handles this by having each leader commit a blank no-op entry into the log at
// the start of its term."
BOOST_AUTO_TEST_CASE(a_new_leader_appends_a_noop_of_its_term_and_commits_it) {
  network net;
  for (const auto& id : three)
    net.add(config_for(id, three), recovered(1, log_with_terms({1, 1})), id[0]);
  net.elect("a");
  auto& a = net.core("a");
  BOOST_TEST(a.log().last_index() == 3u);
  BOOST_TEST(a.log().at(3).kind == entry_kind::noop);
  BOOST_TEST(a.log().at(3).term == a.term());
  BOOST_TEST(a.commit_index() == 3u);
}

// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only log
// entries from the leader's current term are committed by counting replicas; once an entry from the
// current term has been committed in this way, then all prior entries are committed indirectly."
BOOST_AUTO_TEST_CASE(entries_of_earlier_terms_commit_only_through_an_entry_of_the_leaders_term) {
  network net;
  auto one_entry_per_append = [](std::string id) {
    auto config = config_for(std::move(id), three);
    config.max_entries_per_append = 1;
    return config;
  };
  net.add(one_entry_per_append("a"), recovered(2, log_with_terms({1, 2})), 1);
  net.add(one_entry_per_append("b"), recovered(2, log_with_terms({1})), 2);
  net.add(one_entry_per_append("c"), recovered(2, log_with_terms({1})), 3);
  auto& a = net.core("a");
  net.tick_until_campaign("a");
  net.run_until([&] { return a.role() == raft_role::leader; });
  net.isolate("c"); // only b can make a majority with a
  bool earlier_entry_on_a_majority = false;
  while (net.deliver_one()) {
    BOOST_TEST(a.commit_index() != 2u); // never by counting the replicas of entry 2
    if (net.core("b").durable_last_index() == 2u && a.commit_index() < 2u)
      earlier_entry_on_a_majority = true;
  }
  BOOST_TEST(earlier_entry_on_a_majority);
  BOOST_TEST(a.commit_index() == 3u); // the no-op of term 3 commits entry 2 with it
  BOOST_TEST(net.at("a").applied.size() == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(follower_crashes, core_fixture)

// §5.5: "Raft RPCs are idempotent ... if a follower receives an AppendEntries request that includes
// log entries already present in its log, it ignores those entries in the new request."
BOOST_AUTO_TEST_CASE(a_duplicated_append_changes_nothing_and_is_acknowledged_again) {
  network net;
  auto& f = add_follower(net, recovered(1, log_with_terms({1})));
  auto request = append("l", 1, 1, 1, {command(1, 2)});
  net.handle("f", request);
  auto persists = f.persists.size();
  net.handle("f", request);
  BOOST_TEST(f.persists.size() == persists);
  BOOST_TEST(net.core("f").log().last_index() == 2u);
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 2u);
  for (const auto& reply : replies)
    BOOST_TEST((reply.success && reply.match_index == 2u));
}

// §5.5: a delayed (reordered) append of the same leader must not undo what a later one added, and
// one older than the follower's commit index is answered with what is known to match.
BOOST_AUTO_TEST_CASE(a_delayed_append_does_not_truncate_later_entries) {
  network net;
  add_follower(net, recovered(1));
  auto& f = net.core("f");
  net.handle("f", append("l", 2, 0, 0, {command(2, 1), command(2, 2), command(2, 3)}));
  net.handle("f", append("l", 2, 0, 0, {command(2, 1)}));
  BOOST_TEST(f.log().last_index() == 3u);
  net.handle("f", append("l", 2, 3, 2, {}, 3));
  net.handle("f", append("l", 2, 1, 2, {command(2, 2)}));
  BOOST_TEST(f.log().last_index() == 3u);
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 4u);
  BOOST_TEST(replies[1].match_index == 1u); // true, if less than known: the leader keeps the max
  BOOST_TEST(replies[3].match_index == 3u); // below the commit index: everything up to it matches
}

// §5.5: "If followers crash or run slowly, or if network packets are lost, the leader retries
// AppendEntries RPCs indefinitely until all followers eventually store all log entries."
BOOST_AUTO_TEST_CASE(the_leader_retries_appends_that_were_lost) {
  network net(three);
  net.elect("a");
  net.core("a").propose(1, "set x");
  net.step("a");
  net.drop<append_entries>("a", "c");
  net.run();
  BOOST_TEST(net.core("c").log().last_index() == 1u);
  for (uint32_t i = 0; i < net.core("a").config().retransmit_ticks; ++i) {
    net.tick("a");
    net.run();
  }
  BOOST_TEST(net.core("c").log().last_index() == 2u);
}

// §5.5: "If a follower or candidate crashes ... When the crashed server restarts, then the RPC will
// complete successfully": it comes back with what it had made durable and catches up.
BOOST_AUTO_TEST_CASE(a_crashed_follower_restarts_from_its_disk_and_catches_up) {
  network net(three);
  net.elect("a");
  net.isolate("c");
  for (int i = 1; i <= 3; ++i)
    net.core("a").propose(i, "set " + std::to_string(i));
  net.step("a");
  net.run();
  BOOST_TEST(net.core("a").commit_index() == 4u);
  net.heal();
  net.restart("c");
  BOOST_TEST(net.core("c").log().last_index() == 1u); // its durable no-op survived
  net.run();
  net.tick("a", 2);
  net.run();
  BOOST_TEST(net.at("c").disk.entries == net.at("a").disk.entries);
  BOOST_TEST(net.core("c").commit_index() == 4u);
}

BOOST_AUTO_TEST_SUITE_END()
