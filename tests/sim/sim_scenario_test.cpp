// Scenario tests tied to the Raft paper, on the deterministic simulator.
//
// Each test builds one situation from the paper or thesis by hand (partitions, crashes and
// client proposals at chosen moments), lets the real node actors run, and checks the outcome
// the paper prescribes; the simulator's safety checkers run after every step throughout.
// Network delays are fixed at 1 ms and disks sync at once, so only the schedule matters.
#define BOOST_TEST_MODULE scenarios
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <iostream>

#include "tests/sim/sim_cluster.hpp"

using namespace infinity;
using namespace infinity::sim;
using namespace std::chrono_literals;

namespace {

cluster::options calm_options(size_t nodes, uint64_t seed) {
  cluster::options o;
  o.nodes = nodes;
  o.seed = seed;
  o.faults.drop_probability = 0;
  o.faults.duplicate_probability = 0;
  o.faults.min_delay = 1ms;
  o.faults.max_delay = 1ms;
  o.faults.max_sync_delay = caf::timespan{0};
  return o;
}

size_t wait_for_leader(cluster& c, uint64_t above_term = 0) {
  bool found = c.run_until(
      [&] {
        auto l = c.leader();
        return l && c.node(*l).term() > above_term;
      },
      5s);
  BOOST_REQUIRE_MESSAGE(found, "no leader elected\n" << c.describe_nodes());
  return *c.leader();
}

bool committed_everywhere(cluster& c, uint64_t index) {
  for (size_t i = 0; i < c.size(); ++i)
    if (c.alive(i) && c.node(i).applied_index() < index)
      return false;
  return true;
}

void heal_and_converge(cluster& c) {
  c.heal();
  for (size_t i = 0; i < c.size(); ++i)
    c.restart(i);
  BOOST_REQUIRE_MESSAGE(c.run_until([&] { return c.converged(); }, 10s), "no convergence\n"
                                                                             << c.describe_nodes()
                                                                             << c.trace_tail());
  c.run_for(200ms);
  c.check_acknowledged_applied();
}

/// Raft paper Figure 8 on three nodes: an entry from an earlier term, replicated to a majority by
/// a later leader, must not count as committed; otherwise a node holding a conflicting entry of
/// a higher term can still be elected and overwrite it. Returns the checker's complaint, or an
/// empty string if the run stayed safe.
std::string run_figure_8(raft_config::mutation broken) {
  auto o = calm_options(3, 8);
  o.base_config.broken = broken;
  cluster c(o);
  try {
    auto first = wait_for_leader(c);
    c.propose(first, "x", "initial");
    BOOST_REQUIRE_MESSAGE(c.run_until(
                              [&] {
                                return c.node(first).log().last_index() > 0 &&
                                       committed_everywhere(c, c.node(first).log().last_index());
                              },
                              2s),
                          c.describe_nodes() << c.trace_tail(40));

    // (a) S1 leads term t and takes an entry it cannot replicate.
    auto s1 = first;
    auto term_a = c.node(s1).term();
    c.isolate(s1);
    c.propose(s1, "x", "from-s1");
    c.run_for(20ms);
    auto index = c.node(s1).log().last_index();
    BOOST_REQUIRE_EQUAL(c.node(s1).log().term_at(index), term_a);

    // (b) S5 is elected by the others in a later term, takes an entry at that index, and is cut
    // off before it can replicate it.
    size_t s5 = wait_for_leader(c, term_a);
    BOOST_REQUIRE_NE(s5, s1);
    c.isolate(s5);
    c.propose(s5, "x", "from-s5");
    c.run_for(20ms);
    size_t s3 = 3 - s1 - s5; // the remaining node
    BOOST_REQUIRE_MESSAGE(c.node(s5).log().last_index() >= index, c.describe_nodes()
                                                                      << c.trace_tail(30));
    BOOST_REQUIRE_GT(c.node(s5).log().term_at(index), term_a);

    // (c) S1 comes back with S3, wins a later term and replicates its old entry to S3.
    c.heal();
    c.isolate(s5);
    bool s1_leads = c.run_until(
        [&] {
          auto l = c.leader();
          return l && *l == s1 && c.node(s1).term() > c.node(s5).term() &&
                 c.node(s3).log().last_index() >= index &&
                 c.node(s3).log().term_at(index) == term_a;
        },
        5s);
    BOOST_REQUIRE_MESSAGE(s1_leads, "S1 was not re-elected\n" << c.describe_nodes());
    c.run_for(50ms);

    // (d) S1 crashes; S5 returns and may be elected by S3.
    c.crash(s1);
    c.heal();
    c.run_for(3s);
    heal_and_converge(c);
  } catch (const check_failure& failure) {
    return failure.what();
  }
  return {};
}

/// The reviewer's divergence on five nodes: a node is elected while its own disk is stalled, so
/// its term and vote are not durable yet; its first write reaches one follower; it crashes,
/// restarts in the older term, wins the same term again from the voters that still remember
/// voting for it, and writes a second value at the same index. If the first life sent anything
/// of that term, two different entries now share one (index, term), which Raft's "already have
/// it" check on the follower cannot tell apart. Returns the checker's complaint, or "".
std::string run_leader_acting_before_its_term_is_durable(raft_config::mutation broken) {
  auto o = calm_options(5, 77);
  o.base_config.broken = broken;
  cluster c(o);
  try {
    auto first = wait_for_leader(c);
    c.propose(first, "x", "initial");
    BOOST_REQUIRE_MESSAGE(c.run_until([&] { return committed_everywhere(c, 2); }, 2s),
                          c.describe_nodes());
    auto old_term = c.node(first).term();

    // Only A can gather a majority from now on: the first leader is down and the other followers
    // cannot reach each other.
    size_t a = (first + 1) % 5;
    std::vector<size_t> others;
    for (size_t i = 0; i < 5; ++i)
      if (i != first && i != a)
        others.push_back(i);
    c.crash(first);
    for (auto from : others)
      for (auto to : others)
        if (from != to)
          c.cut(from, to);
    c.stall_disk(a, 30s);
    BOOST_REQUIRE_MESSAGE(c.run_until(
                              [&] {
                                auto l = c.leader();
                                return l && *l == a && c.node(a).term() > old_term;
                              },
                              5s),
                          "A was not elected\n"
                              << c.describe_nodes());
    auto term = c.node(a).term();
    BOOST_REQUIRE_LT(c.durable_state(a).state.term, term); // elected on the others' votes

    // A's first write may reach one follower only.
    c.cut(a, others[1]);
    c.cut(a, others[2]);
    c.propose(a, "x", "first-life");
    c.run_for(50ms);
    c.crash(a); // the stalled disk loses the term, the vote and the entry
    c.stall_disk(a, caf::timespan{0});
    c.restore_link(a, others[1]);
    c.restore_link(a, others[2]);
    // The follower holding the first write does not get to tell A about it (its refusal would
    // carry the newer term and end A's campaign).
    c.cut(others[0], a);
    c.restart(a);
    BOOST_REQUIRE_LT(c.node(a).term(), term);

    // A wins the same term again from the two followers that voted for it, and writes again.
    BOOST_REQUIRE_MESSAGE(c.run_until(
                              [&] {
                                auto l = c.leader();
                                return l && *l == a;
                              },
                              5s),
                          "A was not re-elected\n"
                              << c.describe_nodes());
    BOOST_REQUIRE_EQUAL(c.node(a).term(), term);
    c.propose(a, "x", "second-life");
    c.run_for(500ms);
    heal_and_converge(c);
  } catch (const check_failure& failure) {
    return failure.what();
  }
  return {};
}

} // namespace

BOOST_AUTO_TEST_SUITE(raft_paper_scenarios)

BOOST_AUTO_TEST_CASE(figure_8_correct_raft_stays_safe) {
  auto complaint = run_figure_8(raft_config::mutation::none);
  BOOST_TEST(complaint.empty(), "unexpected violation: " << complaint);
}

// Issue 8, bug 1: nothing of a term may leave a node before the term and the vote are durable.
BOOST_AUTO_TEST_CASE(leader_elected_on_a_stalled_disk_waits_for_its_term_to_be_durable) {
  auto complaint = run_leader_acting_before_its_term_is_durable(raft_config::mutation::none);
  BOOST_TEST(complaint.empty(), "unexpected violation: " << complaint);
}

BOOST_AUTO_TEST_CASE(leader_sending_before_its_term_is_durable_is_caught) {
  auto complaint =
      run_leader_acting_before_its_term_is_durable(raft_config::mutation::send_before_term_durable);
  BOOST_TEST(!complaint.empty(), "the checkers missed a leader acting before its term is durable");
  std::cout << "send before the term is durable: " << complaint << std::endl;
}

BOOST_AUTO_TEST_CASE(figure_8_commit_by_count_is_caught) {
  auto complaint = run_figure_8(raft_config::mutation::commit_by_count);
  BOOST_TEST(!complaint.empty(), "the checkers missed the Figure 8 bug");
  std::cout << "figure 8 with commit-by-count: " << complaint << std::endl;
}

// A leader cut off by a partition keeps believing it leads; when it returns it must step down,
// lose its uncommitted entries, and must not disturb the leader elected meanwhile.
BOOST_AUTO_TEST_CASE(stale_leader_rejoins_after_partition) {
  cluster c(calm_options(5, 21));
  auto old_leader = wait_for_leader(c);
  for (int i = 0; i < 5; ++i)
    c.propose(old_leader, "k" + std::to_string(i), "before");
  c.run_for(100ms);
  c.isolate(old_leader);
  auto stale = c.propose(old_leader, "k0", "stale-write");
  auto new_leader = wait_for_leader(c, c.node(old_leader).term());
  BOOST_REQUIRE_NE(new_leader, old_leader);
  auto new_term = c.node(new_leader).term();
  for (int i = 0; i < 5; ++i)
    c.propose(new_leader, "k" + std::to_string(i), "after");
  c.run_for(500ms);
  // Check-quorum made the old leader step down on its own.
  BOOST_TEST((c.node(old_leader).role() != raft_role::leader));
  c.heal();
  c.run_for(1s);
  BOOST_TEST(c.leader().value() == new_leader);
  BOOST_TEST(c.node(new_leader).term() == new_term);
  BOOST_TEST(c.node(old_leader).leader_id() == c.id(new_leader));
  const auto& record = c.proposals()[stale];
  BOOST_TEST(record.completed);
  BOOST_TEST((record.status != reply_status::ok));
  heal_and_converge(c);
}

// A follower that missed many entries and holds a long conflicting suffix of its own catches up
// quickly: fast back-off skips a whole term per round trip instead of one entry.
BOOST_AUTO_TEST_CASE(follower_with_long_conflicting_log_catches_up) {
  cluster c(calm_options(3, 33));
  auto old_leader = wait_for_leader(c);
  c.isolate(old_leader);
  for (int i = 0; i < 300; ++i)
    c.propose(old_leader, "k" + std::to_string(i % 7), "doomed-" + std::to_string(i));
  auto new_leader = wait_for_leader(c, c.node(old_leader).term());
  for (int i = 0; i < 100; ++i)
    c.propose(new_leader, "k" + std::to_string(i % 7), "kept-" + std::to_string(i));
  c.run_for(1s);
  BOOST_TEST(c.node(old_leader).log().last_index() > c.node(new_leader).log().last_index());
  c.heal();
  auto healed_at = c.now();
  bool caught_up = c.run_until(
      [&] {
        return c.node(old_leader).applied_index() == c.node(new_leader).log().last_index() &&
               c.node(old_leader).log().last_index() == c.node(new_leader).log().last_index();
      },
      5s);
  BOOST_REQUIRE_MESSAGE(caught_up, c.describe_nodes());
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(c.now() - healed_at);
  // Several heartbeat intervals at most, not one round trip per conflicting entry.
  BOOST_TEST(took.count() < 500, "catch-up took " << took.count() << " ms of simulated time");
  heal_and_converge(c);
}

namespace {

/// Isolates one follower for five seconds, then heals; returns (leader changed, follower's term
/// inflation).
std::pair<bool, uint64_t> partitioned_follower_returns(bool pre_vote_and_check_quorum) {
  auto o = calm_options(3, 44);
  o.base_config.pre_vote = pre_vote_and_check_quorum;
  o.base_config.check_quorum = pre_vote_and_check_quorum;
  cluster c(o);
  auto leader = wait_for_leader(c);
  auto term = c.node(leader).term();
  auto follower = (leader + 1) % c.size();
  c.isolate(follower);
  c.run_for(5s);
  auto inflation = c.node(follower).term() - term;
  c.heal();
  c.run_for(2s);
  auto now_leader = c.leader();
  bool changed = !now_leader || *now_leader != leader || c.node(*now_leader).term() != term;
  heal_and_converge(c);
  return {changed, inflation};
}

} // namespace

// Thesis §9.6: with pre-vote a node that was partitioned away cannot depose a healthy leader when
// it comes back, because it never raised its term. Without pre-vote it does.
BOOST_AUTO_TEST_CASE(pre_vote_keeps_partitioned_follower_from_deposing_leader) {
  auto [changed, inflation] = partitioned_follower_returns(true);
  BOOST_TEST(!changed);
  BOOST_TEST(inflation == 0u);
  auto [changed_without, inflation_without] = partitioned_follower_returns(false);
  BOOST_TEST(changed_without);
  BOOST_TEST(inflation_without > 0u);
}

// A leader that can reach no quorum steps down after an election timeout (check-quorum), and
// fails the proposals it can no longer commit instead of leaving clients hanging.
BOOST_AUTO_TEST_CASE(leader_without_quorum_steps_down_and_fails_proposals) {
  cluster c(calm_options(3, 55));
  auto leader = wait_for_leader(c);
  c.isolate(leader);
  auto pending = c.propose(leader, "k", "v", 10s);
  c.run_for(1s);
  BOOST_TEST((c.node(leader).role() != raft_role::leader));
  BOOST_TEST(c.proposals()[pending].completed);
  BOOST_TEST((c.proposals()[pending].status == reply_status::leadership_lost));
  heal_and_converge(c);
}

// Membership: a node running as a lone one-node cluster with no writes of its own joins a running
// cluster, drops its bootstrap state, catches up and becomes a voter; a lone node holding writes
// of its own is refused and keeps them.
BOOST_AUTO_TEST_CASE(join_adds_an_empty_node_and_refuses_one_with_data) {
  auto o = calm_options(5, 66);
  o.lone_nodes = 2; // n4 and n5 start alone
  cluster c(o);
  size_t leader = 0;
  BOOST_REQUIRE(c.run_until(
      [&] {
        for (size_t i = 0; i < 3; ++i)
          if (c.node(i).role() == raft_role::leader) {
            leader = i;
            return true;
          }
        return false;
      },
      5s));
  for (int i = 0; i < 20; ++i)
    c.propose(leader, "k" + std::to_string(i % 4), "v" + std::to_string(i));
  c.run_for(300ms);
  // n5 leads itself and takes a write of its own.
  c.propose(4, "private", "data");
  c.run_for(300ms);

  auto joined = c.join((leader + 1) % 3, 3); // through a follower: forwarded to the leader
  c.run_for(2s);
  BOOST_REQUIRE(c.joins()[joined].completed);
  BOOST_TEST((c.joins()[joined].status == reply_status::ok), c.joins()[joined].value);
  BOOST_TEST(c.node(leader).members().size() == 4u);
  BOOST_TEST(c.node(3).members().size() == 4u);
  BOOST_TEST(c.node(3).applied_index() == c.node(leader).commit_index());

  auto refused = c.join(leader, 4);
  c.run_for(2s);
  BOOST_REQUIRE(c.joins()[refused].completed);
  BOOST_TEST((c.joins()[refused].status == reply_status::rejected), c.joins()[refused].value);
  BOOST_TEST(c.node(4).members().size() == 1u);
  BOOST_TEST(c.node(leader).members().size() == 4u);

  // The new voter counts: with two of the original three down, n4 completes a quorum of 3/4.
  auto other = (leader + 1) % 3;
  c.crash(other);
  auto write = c.propose(leader, "after-join", "ok");
  c.run_for(1s);
  BOOST_TEST((c.proposals()[write].status == reply_status::ok));
  c.restart(other);
  c.run_for(1s);
}

// Raft §7: a node that joins after the log was compacted can only catch up by InstallSnapshot; a
// cluster killed at once restarts from its snapshots with every acknowledged write.
BOOST_AUTO_TEST_CASE(joining_node_catches_up_by_snapshot_and_all_restart_from_snapshots) {
  auto o = calm_options(4, 67);
  o.lone_nodes = 1; // n4 starts alone
  o.snapshot_entries = 10;
  o.base_config.snapshot_keep_tail = 2;
  o.base_config.snapshot_chunk_bytes = 100; // several chunks per snapshot
  cluster c(o);
  size_t leader = 0;
  BOOST_REQUIRE(c.run_until(
      [&] {
        for (size_t i = 0; i < 3; ++i)
          if (c.node(i).role() == raft_role::leader) {
            leader = i;
            return true;
          }
        return false;
      },
      5s));
  std::vector<size_t> writes;
  for (int i = 0; i < 60; ++i) {
    writes.push_back(c.propose(leader, "k" + std::to_string(i % 7), "v" + std::to_string(i)));
    c.run_for(5ms);
  }
  c.run_for(500ms);
  for (auto w : writes)
    BOOST_REQUIRE((c.proposals()[w].status == reply_status::ok));
  BOOST_TEST(c.node(leader).snapshot().index > 0u);
  BOOST_TEST(c.node(leader).log().first_index() > 1u, "the leader compacted its log");

  auto joined = c.join(leader, 3);
  c.run_for(3s);
  BOOST_REQUIRE(c.joins()[joined].completed);
  BOOST_TEST((c.joins()[joined].status == reply_status::ok), c.joins()[joined].value);
  BOOST_TEST(c.node(3).snapshot().index > 0u, "n4 installed a snapshot");
  BOOST_TEST(c.node(3).log().first_index() > 1u);
  BOOST_TEST(c.node(3).applied_index() == c.node(leader).commit_index());
  BOOST_TEST(c.node(3).members().size() == 4u);

  // Everyone at once, then back: each node starts from its newest snapshot.
  for (size_t i = 0; i < 4; ++i)
    c.crash(i);
  for (size_t i = 0; i < 4; ++i)
    c.restart(i);
  for (size_t i = 0; i < 4; ++i)
    BOOST_TEST(c.node(i).snapshot().index > 0u, "node " << i << " restarted from a snapshot");
  auto after = wait_for_leader(c);
  auto write = c.propose(after, "after-restart", "ok");
  c.run_for(1s);
  BOOST_TEST((c.proposals()[write].status == reply_status::ok));
  c.check_acknowledged_applied();
}

BOOST_AUTO_TEST_SUITE_END()
