// Unit tests of the Raft core: what waits for the disk (issue 8: nothing that carries a term
// leaves before the term and vote are durable; promises leave only once what they promise is
// durable; one write in flight, the rest merged) and protocol-aware recovery (a node whose disk
// lost acknowledged entries neither votes nor counts toward commit until it caught up). See
// raft_core_test.cpp for the approach.
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

BOOST_FIXTURE_TEST_SUITE(durability, core_fixture)

// Vote requests are the one exception (core.cpp, send_vote_request): they leave at once, but the
// candidate's own vote counts only once durable, so a crash cannot make it vote twice in a term.
BOOST_AUTO_TEST_CASE(vote_requests_leave_at_once_but_the_own_vote_counts_once_durable) {
  network net;
  auto& n = net.add(without_pre_vote(config_for("a", three)));
  n.auto_persist = false;
  net.tick_until_campaign("a");
  BOOST_TEST_REQUIRE(n.in_flight.has_value());
  BOOST_TEST((n.in_flight->state == hard_state{1, "a", 0}));
  BOOST_TEST(net.sent<request_vote>("a").size() == 2u);
  net.handle("a", vote("b", 1, true));
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  net.persist("a");
  BOOST_TEST(net.core("a").role() == raft_role::leader);
}

// Issue 8: a leader elected on the others' votes while its own term is still on its way to disk
// sends no append nor heartbeat of that term until the term is durable.
BOOST_AUTO_TEST_CASE(a_leader_sends_nothing_of_its_term_before_the_term_is_durable) {
  network net;
  auto& n = net.add(without_pre_vote(config_for("a", three)));
  n.auto_persist = false;
  net.tick_until_campaign("a");
  net.queue.clear();
  net.handle("a", vote("b", 1, true));
  net.handle("a", vote("c", 1, true));
  BOOST_TEST(net.core("a").role() == raft_role::leader);
  net.tick("a", 3);
  BOOST_TEST(net.sent<append_entries>("a").empty());
  net.persist("a");
  BOOST_TEST(net.sent<append_entries>("a", "b").size() >= 1u);
  BOOST_TEST(net.sent<append_entries>("a", "c").size() >= 1u);
}

// Issue 8: a reply in a term the node just adopted (even a rejection) waits for that term to be
// durable.
BOOST_AUTO_TEST_CASE(a_reply_in_a_newly_adopted_term_waits_for_the_term_to_be_durable) {
  network net;
  auto& n = add_follower(net, recovered(1, log_with_terms({1})));
  n.auto_persist = false;
  net.handle("f", append("l", 3, 5, 3));
  BOOST_TEST(net.core("f").term() == 3u);
  BOOST_TEST(net.sent<append_reply>("f").empty());
  BOOST_TEST_REQUIRE(n.in_flight.has_value());
  BOOST_TEST(n.in_flight->state.term == 3u);
  net.persist("f");
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST((!replies[0].success && replies[0].term == 3u));
}

// Raft Figure 2 ("Persistent state on all servers: updated on stable storage before responding to
// RPCs"): a granted vote leaves only once the vote is durable.
BOOST_AUTO_TEST_CASE(a_granted_vote_leaves_only_once_durable) {
  network net;
  auto& n = net.add(config_for("a", three), recovered(1));
  n.auto_persist = false;
  net.handle("a", vote_request("b", 2, 0, 0));
  BOOST_TEST_REQUIRE(n.in_flight.has_value());
  BOOST_TEST((n.in_flight->state == hard_state{2, "b", 0}));
  BOOST_TEST(net.sent<vote_reply>("a").empty());
  net.persist("a");
  auto replies = net.sent<vote_reply>("a", "b");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(replies[0].granted);
}

// §5.5 / issue 8: a node that crashes before its vote is durable never announced it, and after the
// restart it may vote again in that term; a durable vote survives the restart.
BOOST_AUTO_TEST_CASE(a_vote_survives_a_crash_exactly_when_it_was_announced) {
  {
    network net;
    auto& n = net.add(config_for("a", three), recovered(1));
    n.auto_persist = false;
    net.handle("a", vote_request("b", 2, 0, 0));
    net.restart("a");
    BOOST_TEST(net.delivered<vote_reply>().empty());
    BOOST_TEST(net.core("a").voted_for().empty());
    n.auto_persist = true;
    net.handle("a", vote_request("c", 2, 0, 0));
    BOOST_TEST(net.sent<vote_reply>("a", "c").at(0).granted);
  }
  {
    network net;
    net.add(config_for("a", three), recovered(1));
    net.handle("a", vote_request("b", 2, 0, 0));
    net.restart("a");
    BOOST_TEST(net.core("a").term() == 2u);
    BOOST_TEST(net.core("a").voted_for() == "b");
    net.handle("a", vote_request("c", 2, 0, 0));
    BOOST_TEST(!net.sent<vote_reply>("a", "c").at(0).granted);
  }
}

// §5.5 / Figure 2: an acknowledged append means the entries are durable; an acknowledgement waits
// for everything queued before it, even when its own append had nothing new to write.
BOOST_AUTO_TEST_CASE(an_append_is_acknowledged_only_once_everything_before_it_is_durable) {
  network net;
  auto& n = add_follower(net, recovered(1));
  n.auto_persist = false;
  net.handle("f", append("l", 1, 0, 0, {command(1, 1)}));
  net.handle("f", append("l", 1, 0, 0, {command(1, 1)})); // a duplicate, nothing new to write
  net.handle("f", append("l", 1, 1, 1, {command(1, 2)}));
  BOOST_TEST(net.sent<append_reply>("f").empty());
  BOOST_TEST(n.persists.size() == 1u); // one write in flight
  net.persist("f");
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 2u);
  BOOST_TEST(replies[0].match_index == 1u);
  BOOST_TEST(replies[1].match_index == 1u);
  net.persist("f");
  replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 3u);
  BOOST_TEST(replies[2].match_index == 2u);
}

// §5.3 with durable copies only: the leader's own copy counts toward a majority only once durable.
BOOST_AUTO_TEST_CASE(the_leader_counts_its_own_entries_only_once_durable) {
  network net(three);
  net.elect("a");
  auto& a = net.core("a");
  net.at("a").auto_persist = false;
  a.propose(1, "set x");
  net.step("a");
  net.drop<append_entries>("a", "c");
  net.deliver<append_entries>("a", "b");
  net.deliver<append_reply>("b", "a");
  BOOST_TEST(a.commit_index() == 1u);
  net.persist("a");
  BOOST_TEST(a.commit_index() == 2u);
}

// Group commit: one persist request in flight at a time; what accumulates meanwhile leaves as one
// request.
BOOST_AUTO_TEST_CASE(one_persist_request_in_flight_and_the_rest_merged_into_the_next) {
  network net(three);
  net.elect("a");
  auto& n = net.at("a");
  auto& a = net.core("a");
  n.auto_persist = false;
  auto before = n.persists.size();
  a.propose(1, "x1");
  net.step("a");
  a.propose(2, "x2");
  a.propose(3, "x3");
  a.propose(4, "x4");
  net.step("a");
  BOOST_TEST(n.persists.size() == before + 1);
  net.persist("a");
  BOOST_TEST_REQUIRE(n.persists.size() == before + 2);
  auto& merged = n.persists.back().entries;
  BOOST_TEST_REQUIRE(merged.size() == 3u);
  BOOST_TEST(merged.front().index == 3u);
  BOOST_TEST(merged.back().index == 5u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(protocol_aware_recovery, core_fixture)

// Alagappan et al. (FAST 2018): a node whose disk lost entries it may have acknowledged must not
// help elect a leader that lacks them. It never campaigns, and it votes only for a candidate whose
// log is at least as up to date as the one it lost: entries up to the repair mark, of terms no
// later than the term of the loss.
BOOST_AUTO_TEST_CASE(a_repairing_node_never_campaigns_and_votes_only_past_what_it_lost) {
  network net;
  auto state = recovered(1, log_with_terms({1, 1}));
  state.state.repair_until_index = 4;
  state.state.repair_term = 1;
  net.add(config_for("a", three), state);
  net.tick("a", 100);
  BOOST_TEST(net.core("a").role() == raft_role::follower);
  BOOST_TEST(net.core("a").term() == 1u);
  BOOST_TEST(net.sent<request_vote>("a").empty());
  // b's log ends at (1, 3): it may lack entry 4 that a acknowledged and lost.
  net.handle("a", vote_request("b", 2, 3, 1, true));
  net.handle("a", vote_request("b", 2, 3, 1));
  auto refused = net.sent<vote_reply>("a", "b");
  BOOST_TEST_REQUIRE(refused.size() == 2u);
  BOOST_TEST((!refused[0].granted && !refused[1].granted));
  // c's log ends at (1, 9): it holds whatever a could have had.
  net.handle("a", vote_request("c", 2, 9, 1, true));
  net.handle("a", vote_request("c", 2, 9, 1));
  auto granted = net.sent<vote_reply>("a", "c");
  BOOST_TEST_REQUIRE(granted.size() == 2u);
  BOOST_TEST((granted[0].granted && granted[1].granted));
}

// A repairing follower says so in its acknowledgements and the leader does not count it toward a
// commit; once the commit index and its durable log reach the mark, it is healthy again.
BOOST_AUTO_TEST_CASE(a_repairing_follower_does_not_count_toward_commit_until_repaired) {
  network net;
  auto full = log_with_terms({1, 1, 1, 1, 1});
  auto lost = recovered(1, log_with_terms({1, 1}));
  lost.state.repair_until_index = 5;
  net.add(config_for("a", three), recovered(1, full), 1);
  net.add(config_for("b", three), lost, 2);
  net.add(config_for("c", three), recovered(1, full), 3);
  auto& a = net.core("a");
  net.tick_until_campaign("a");
  net.run_until([&] { return a.role() == raft_role::leader; }); // on c's vote
  net.isolate("c");
  net.run();
  BOOST_TEST(net.core("b").durable_last_index() == 6u);
  BOOST_TEST(a.commit_index() == 0u);
  auto acks = net.delivered<append_reply>("b", "a");
  BOOST_TEST_REQUIRE(!acks.empty());
  BOOST_TEST((acks.back().success && acks.back().match_index == 6u));
  for (const auto& reply : acks)
    BOOST_TEST(reply.repairing);

  net.heal();
  for (int i = 0; i < 4; ++i) {
    net.tick("a");
    net.run();
  }
  BOOST_TEST(a.commit_index() == 6u);
  BOOST_TEST(net.core("b").repair_until_index() == 0u);
  BOOST_TEST(net.at("b").disk.state.repair_until_index == 0u);
}

// The mark is cleared (durably, with a hard state of repair_until_index 0) only once both the
// commit index and the durable log reached it.
BOOST_AUTO_TEST_CASE(repair_ends_once_commit_index_and_durable_log_reach_the_mark) {
  network net;
  auto state = recovered(1, log_with_terms({1, 1}));
  state.state.repair_until_index = 4;
  auto& n = add_follower(net, state);
  auto& f = net.core("f");
  n.auto_persist = false;
  net.handle("f", append("l", 2, 2, 1, {command(1, 3), command(2, 4)}, 4));
  BOOST_TEST(f.commit_index() == 4u);
  BOOST_TEST(f.repair_until_index() == 4u); // entries 3 and 4 are not durable yet
  net.persist("f");
  BOOST_TEST(f.repair_until_index() == 0u);
  BOOST_TEST_REQUIRE(n.in_flight.has_value());
  BOOST_TEST(n.in_flight->has_hard_state);
  BOOST_TEST(n.in_flight->state.repair_until_index == 0u);
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST((replies[0].success && replies[0].match_index == 4u && replies[0].repairing));
}

BOOST_AUTO_TEST_SUITE_END()
