// Unit tests of the Raft core without a cluster, one sentence of the Raft paper (or of Ongaro's
// thesis) per test, in the spirit of etcd-io/raft's raft_paper_test.go. Each test drives one or a
// few `raft_core`s by hand through the harness of raft_core_harness.hpp and checks what they
// answer, send and persist.
//
// This file: terms (§5.1), leader election (§5.2), the election restriction (§5.4.1), pre-vote
// and check-quorum (thesis §9.6, §6.2). The other raft_core_*_test.cpp files cover replication,
// durability, client requests, membership changes and malformed input.
#define BOOST_TEST_MODULE raft_core
#include <boost/test/unit_test.hpp>

#include <set>

#include "tests/unit/raft_core_harness.hpp"

using namespace infinity;
using namespace infinity::core_test;

namespace {

const std::vector<std::string> three{"a", "b", "c"};

} // namespace

BOOST_FIXTURE_TEST_SUITE(terms, core_fixture)

// §5.1: "If one server's current term is smaller than the other's, then it updates its current
// term to the larger value. If a candidate or leader discovers that its term is out of date, it
// immediately reverts to follower state."
BOOST_AUTO_TEST_CASE(every_role_adopts_a_higher_term_and_becomes_follower) {
  {
    network net;
    net.add(config_for("a", three), recovered(1));
    net.handle("a", append("b", 5, 0, 0));
    BOOST_TEST(net.core("a").term() == 5u);
    BOOST_TEST(net.core("a").role() == raft_role::follower);
    BOOST_TEST(net.core("a").leader_id() == "b");
  }
  {
    network net;
    net.add(without_pre_vote(config_for("a", three)), recovered(1));
    net.tick_until_campaign("a");
    BOOST_TEST(net.core("a").role() == raft_role::candidate);
    net.handle("a", vote("b", 5, false));
    BOOST_TEST(net.core("a").term() == 5u);
    BOOST_TEST(net.core("a").role() == raft_role::follower);
  }
  {
    network net;
    net.add(config_for("a", three), recovered(1));
    net.elect_alone("a");
    append_reply newer;
    newer.from = "b";
    newer.term = net.core("a").term() + 1;
    newer.repairing = false;
    net.handle("a", newer);
    BOOST_TEST(net.core("a").term() == newer.term);
    BOOST_TEST(net.core("a").role() == raft_role::follower);
  }
}

// §5.1: "If a server receives a request with a stale term number, it rejects the request" (and
// the reply's term tells the sender about the newer one, Figure 2).
BOOST_AUTO_TEST_CASE(a_request_of_a_stale_term_is_rejected_and_the_sender_learns_the_term) {
  network net;
  net.add(config_for("a", three), recovered(3));
  net.handle("a", append("b", 2, 0, 0, {command(2, 1)}));
  auto replies = net.sent<append_reply>("a", "b");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(!replies[0].success);
  BOOST_TEST(replies[0].term == 3u);
  BOOST_TEST(net.core("a").log().last_index() == 0u);

  net.handle("a", vote_request("c", 2, 9, 2));
  BOOST_TEST(net.sent<vote_reply>("a", "c").empty());
  BOOST_TEST(net.core("a").voted_for().empty());

  net.handle("a", vote_request("c", 2, 9, 2, true));
  auto pre_votes = net.sent<vote_reply>("a", "c");
  BOOST_TEST_REQUIRE(pre_votes.size() == 1u);
  BOOST_TEST(!pre_votes[0].granted);
  BOOST_TEST(pre_votes[0].term == 3u);
  BOOST_TEST(net.core("a").term() == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(leader_election, core_fixture)

// §5.2: "When servers start up, they begin as followers."
BOOST_AUTO_TEST_CASE(a_node_starts_as_follower_in_its_recovered_term) {
  network net;
  net.add(config_for("a", three), recovered(5, log_with_terms({1, 5}), "b"));
  auto& a = net.core("a");
  BOOST_TEST(a.role() == raft_role::follower);
  BOOST_TEST(a.term() == 5u);
  BOOST_TEST(a.voted_for() == "b");
  BOOST_TEST(a.leader_id().empty());
  BOOST_TEST(a.commit_index() == 0u);
}

// §5.2: "A server remains in follower state as long as it receives valid RPCs from a leader."
BOOST_AUTO_TEST_CASE(a_follower_that_hears_from_its_leader_never_campaigns) {
  network net;
  net.add(config_for("a", three), recovered(1));
  for (int i = 0; i < 10; ++i) {
    net.tick("a", 9);
    net.handle("a", append("b", 1, 0, 0));
  }
  BOOST_TEST(net.core("a").role() == raft_role::follower);
  BOOST_TEST(net.core("a").term() == 1u);
  BOOST_TEST(net.sent<request_vote>("a").empty());
}

// §5.2: "To begin an election, a follower increments its current term and transitions to
// candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each of the
// other servers."
BOOST_AUTO_TEST_CASE(election_timeout_starts_a_campaign_in_the_next_term) {
  network net;
  auto& n = net.add(without_pre_vote(config_for("a", three)), recovered(2, log_with_terms({1, 2})));
  net.tick_until_campaign("a");
  auto& a = net.core("a");
  BOOST_TEST(a.role() == raft_role::candidate);
  BOOST_TEST(a.term() == 3u);
  BOOST_TEST(a.voted_for() == "a");
  BOOST_TEST(n.disk.state.term == 3u);
  BOOST_TEST(n.disk.state.voted_for == "a");
  for (const std::string peer : {"b", "c"}) {
    auto requests = net.sent<request_vote>("a", peer);
    BOOST_TEST_REQUIRE(requests.size() == 1u);
    BOOST_TEST(requests[0].term == 3u);
    BOOST_TEST(requests[0].last_log_index == 2u);
    BOOST_TEST(requests[0].last_log_term == 2u);
    BOOST_TEST(!requests[0].pre_vote);
  }
}

// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed interval".
BOOST_AUTO_TEST_CASE(election_timeouts_are_drawn_from_one_to_two_timeouts) {
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    raft_core core(config_for("a", three), recovered_state{}, seed);
    int ticks = 0;
    while (core.role() == raft_role::follower && ticks < 100) {
      core.tick();
      core.take_ready();
      ++ticks;
    }
    BOOST_TEST(ticks >= 10);
    BOOST_TEST(ticks < 20);
    seen.insert(ticks);
  }
  BOOST_TEST(seen.size() >= 5u);
}

// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
// followers in order to maintain their authority."
BOOST_AUTO_TEST_CASE(a_leader_sends_heartbeats_every_heartbeat_interval) {
  network net;
  net.add(config_for("a", three));
  net.elect_alone("a");
  net.tick("a");
  BOOST_TEST(net.sent<append_entries>("a").empty());
  net.tick("a");
  for (const std::string peer : {"b", "c"}) {
    auto beats = net.sent<append_entries>("a", peer);
    BOOST_TEST_REQUIRE(beats.size() == 1u);
    BOOST_TEST(beats[0].entries.empty());
    BOOST_TEST(beats[0].term == net.core("a").term());
  }
}

// §5.2: "A candidate wins an election if it receives votes from a majority of the servers in the
// full cluster for the same term."
BOOST_AUTO_TEST_CASE(a_candidate_wins_with_votes_from_a_majority) {
  network net;
  net.add(without_pre_vote(config_for("a", {"a", "b", "c", "d", "e"})));
  net.tick_until_campaign("a");
  net.handle("a", vote("b", 1, true));
  net.handle("a", vote("b", 1, true)); // the same voter twice counts once
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  net.handle("a", vote("c", 1, true));
  BOOST_TEST(net.core("a").role() == raft_role::leader);
}

// §5.2: "Each server will vote for at most one candidate in a given term, on a first-come-first-
// served basis" (a retried request of the candidate it voted for is granted again).
BOOST_AUTO_TEST_CASE(a_node_votes_for_one_candidate_per_term_first_come_first_served) {
  network net;
  auto& n = net.add(config_for("a", three), recovered(1));
  net.handle("a", vote_request("b", 2, 0, 0));
  net.handle("a", vote_request("c", 2, 0, 0));
  net.handle("a", vote_request("b", 2, 0, 0));
  auto to_b = net.sent<vote_reply>("a", "b");
  BOOST_TEST_REQUIRE(to_b.size() == 2u);
  BOOST_TEST((to_b[0].granted && to_b[1].granted));
  auto to_c = net.sent<vote_reply>("a", "c");
  BOOST_TEST_REQUIRE(to_c.size() == 1u);
  BOOST_TEST(!to_c[0].granted);
  BOOST_TEST(n.disk.state.voted_for == "b");
}

// §5.2: "If the leader's term is at least as large as the candidate's current term, then the
// candidate recognizes the leader as legitimate and returns to follower state. If the term in the
// RPC is smaller than the candidate's current term, then the candidate rejects the RPC and
// continues in candidate state."
BOOST_AUTO_TEST_CASE(a_candidate_yields_to_a_leader_of_its_term_but_not_to_a_stale_one) {
  network net;
  net.add(without_pre_vote(config_for("a", three)), recovered(1));
  net.tick_until_campaign("a"); // candidate in term 2
  net.handle("a", append("b", 1, 0, 0));
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  net.handle("a", append("b", 2, 0, 0, {command(2, 1)}));
  BOOST_TEST(net.core("a").role() == raft_role::follower);
  BOOST_TEST(net.core("a").leader_id() == "b");
  auto replies = net.sent<append_reply>("a", "b");
  BOOST_TEST_REQUIRE(replies.size() == 2u);
  BOOST_TEST((!replies[0].success && replies[0].term == 2u));
  BOOST_TEST((replies[1].success && replies[1].match_index == 1u));
}

// §5.2: the third outcome, "a period of time goes by with no winner": a candidate that a majority
// turned down stops campaigning.
BOOST_AUTO_TEST_CASE(a_candidate_that_a_majority_rejects_returns_to_follower) {
  network net;
  net.add(without_pre_vote(config_for("a", three)));
  net.tick_until_campaign("a");
  net.handle("a", vote("b", 1, false));
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  net.handle("a", vote("c", 1, false));
  BOOST_TEST(net.core("a").role() == raft_role::follower);
  BOOST_TEST(net.core("a").term() == 1u);
}

// §5.2: "When this happens [split vote], each candidate will time out and start a new election by
// incrementing its term and initiating another round of RequestVote RPCs."
BOOST_AUTO_TEST_CASE(a_split_vote_times_out_and_a_new_election_follows) {
  network net({"a", "b", "c", "d"}, [](raft_config& c) { c.pre_vote = false; });
  net.tick_until_campaign("a");
  net.tick_until_campaign("b");
  net.deliver<request_vote>("a", "c"); // c votes for a, d for b: two votes each, three needed
  net.deliver<request_vote>("b", "d");
  net.run();
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  BOOST_TEST(net.core("b").role() == raft_role::candidate);

  for (int i = 0; i < 20 && net.core("a").term() == 1u; ++i)
    net.tick("a");
  BOOST_TEST(net.core("a").term() == 2u);
  BOOST_TEST(net.core("a").role() == raft_role::candidate);
  BOOST_TEST(net.sent<request_vote>("a").size() == 3u);
  net.run();
  BOOST_TEST(net.core("a").role() == raft_role::leader);
  BOOST_TEST(net.core("b").role() == raft_role::follower);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(election_restriction, core_fixture)

// §5.4.1: "The voter denies its vote if its own log is more up-to-date than that of the candidate
// ... If the logs have last entries with different terms, then the log with the later term is
// more up-to-date. If the logs end with the same term, then whichever log is longer is more
// up-to-date." Pre-votes follow the same rule.
BOOST_AUTO_TEST_CASE(votes_go_only_to_candidates_whose_log_is_at_least_as_up_to_date) {
  struct candidate_log {
    uint64_t last_index, last_term;
    bool granted;
  };
  // The voter's log: terms {1, 2}.
  for (auto c : {candidate_log{1, 1, false}, candidate_log{2, 1, false}, candidate_log{3, 1, false},
                 candidate_log{1, 2, false}, candidate_log{2, 2, true}, candidate_log{3, 2, true},
                 candidate_log{1, 3, true}}) {
    for (bool pre_vote : {false, true}) {
      network net;
      net.add(config_for("a", three), recovered(2, log_with_terms({1, 2})));
      net.handle("a", vote_request("b", 3, c.last_index, c.last_term, pre_vote));
      auto replies = net.sent<vote_reply>("a", "b");
      BOOST_TEST_REQUIRE(replies.size() == 1u);
      BOOST_TEST(replies[0].granted == c.granted, "candidate log ending at ("
                                                      << c.last_index << ", " << c.last_term
                                                      << "), pre-vote " << pre_vote);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(pre_vote_and_check_quorum, core_fixture)

// Thesis §9.6: "a candidate would first ask other servers whether its log was up-to-date enough to
// get their vote. Only if the candidate believed it could get votes from a majority of the cluster
// would it increment its term and start a normal election."
BOOST_AUTO_TEST_CASE(a_pre_candidate_asks_first_and_raises_its_term_only_with_a_majority) {
  network net;
  auto& n = net.add(config_for("a", three), recovered(2, log_with_terms({1, 2})));
  net.tick_until_campaign("a");
  auto& a = net.core("a");
  BOOST_TEST(a.role() == raft_role::pre_candidate);
  BOOST_TEST(a.term() == 2u);
  BOOST_TEST(n.persists.empty());
  auto requests = net.sent<request_vote>("a", "b");
  BOOST_TEST_REQUIRE(requests.size() == 1u);
  BOOST_TEST((requests[0].pre_vote && requests[0].term == 3u));
  net.handle("a", vote("b", 3, true, true));
  BOOST_TEST(a.role() == raft_role::candidate);
  BOOST_TEST(a.term() == 3u);
}

// Thesis §9.6: granting a pre-vote is hypothetical: it changes neither the voter's term nor its
// vote.
BOOST_AUTO_TEST_CASE(granting_a_pre_vote_changes_neither_term_nor_vote) {
  network net;
  auto& n = net.add(config_for("a", three), recovered(2));
  net.handle("a", vote_request("b", 3, 0, 0, true));
  auto replies = net.sent<vote_reply>("a", "b");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST((replies[0].granted && replies[0].pre_vote && replies[0].term == 3u));
  BOOST_TEST(net.core("a").term() == 2u);
  BOOST_TEST(net.core("a").voted_for().empty());
  BOOST_TEST(n.persists.empty());
}

// Thesis §9.6: with pre-vote, a server partitioned away does not raise its term, so it cannot
// disrupt the leader when it comes back.
BOOST_AUTO_TEST_CASE(a_partitioned_node_keeps_its_term_and_does_not_disrupt_the_leader) {
  network net(three);
  net.elect("a");
  auto term = net.core("a").term();
  net.isolate("c");
  net.tick_all(100);
  BOOST_TEST(net.core("c").term() == term);
  net.heal();
  net.tick_all(4);
  BOOST_TEST(net.core("a").role() == raft_role::leader);
  BOOST_TEST(net.core("a").term() == term);
  BOOST_TEST(net.core("c").leader_id() == "a");
}

// Contrast for the test above (§5.2 without pre-vote): each election timeout of an isolated node
// starts a new term.
BOOST_AUTO_TEST_CASE(without_pre_vote_a_partitioned_node_raises_its_term) {
  network net(three, [](raft_config& c) { c.pre_vote = false; });
  net.elect("a");
  auto term = net.core("a").term();
  net.isolate("c");
  net.tick_all(100);
  BOOST_TEST(net.core("c").term() > term + 2);
}

// Thesis §4.2.3 / §9.6: "if a server receives a RequestVote request within the minimum election
// timeout of hearing from a current leader, it does not update its term or grant its vote."
BOOST_AUTO_TEST_CASE(a_node_in_a_leader_lease_ignores_vote_requests) {
  network net;
  net.add(config_for("a", three), recovered(1));
  net.handle("a", append("b", 1, 0, 0));
  net.handle("a", vote_request("c", 2, 5, 1));
  BOOST_TEST(net.sent<vote_reply>("a", "c").empty());
  BOOST_TEST(net.core("a").term() == 1u);

  net.tick("a", 10); // a whole election timeout without hearing from b
  net.handle("a", vote_request("c", 2, 5, 1));
  auto replies = net.sent<vote_reply>("a", "c");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(replies[0].granted);
}

// Thesis §6.2 (check-quorum): "a leader steps down if an election timeout elapses without a
// successful round of heartbeats to a majority of its cluster."
BOOST_AUTO_TEST_CASE(a_leader_that_hears_from_no_majority_steps_down) {
  {
    network net(three);
    net.elect("a");
    net.isolate("b");
    net.isolate("c");
    net.tick("a", 20);
    BOOST_TEST(net.core("a").role() == raft_role::follower);
  }
  {
    network net(three);
    net.elect("a");
    net.isolate("c");
    for (int i = 0; i < 40; ++i) {
      net.tick("a");
      net.tick("b");
      net.run();
    }
    BOOST_TEST(net.core("a").role() == raft_role::leader);
  }
}

BOOST_AUTO_TEST_SUITE_END()
