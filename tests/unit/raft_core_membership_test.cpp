// Unit tests of the Raft core: single-server membership changes (thesis §4.1-4.3) through join,
// and cluster ids. See raft_core_test.cpp for the approach.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "tests/unit/raft_core_harness.hpp"

using namespace infinity;
using namespace infinity::core_test;

namespace {

/// "a", started like a real node: a membership entry at index 1 and cluster "c1".
node& add_seed(network& net, const membership& members = {{"a", "raft-a"}},
               const std::function<void(raft_config&)>& tweak = {}) {
  auto state = recovered(1, {config_entry(1, 1, members)});
  state.cluster_id = "c1";
  auto config = config_for("a", {});
  if (tweak)
    tweak(config);
  return net.add(config, state, 1);
}

/// "d": a node started to be added (no members, no cluster, nothing in its log).
node& add_joiner(network& net) {
  return net.add(config_for("d", {}), recovered_state{}, 4);
}

bool has_effect(const node& n, raft_effect::kind what, const std::string& id = {}) {
  return std::any_of(n.effects.begin(), n.effects.end(), [&](const raft_effect& e) {
    return e.what == what && (id.empty() || e.id == id);
  });
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(membership_changes, core_fixture)

// Thesis §4.2-4.3: the leader first brings the new server in (here: a probe it answers once it has
// dropped its lone state), then adds it as a non-voting member (§4.2.1: "the new server joins the
// cluster as a non-voting member"), which does not change any majority; once it has caught up it
// is promoted, and from then on (§4.1: "a server always uses the latest configuration in its
// log, regardless of whether the entry is committed") the new majority (two of two) is needed.
BOOST_AUTO_TEST_CASE(a_join_probes_the_new_node_then_appends_the_new_configuration) {
  network net;
  add_seed(net);
  add_joiner(net);
  net.elect("a");
  auto& a = net.core("a");
  BOOST_TEST(a.commit_index() == 2u);
  a.join(1, "d", "raft-d");
  net.step("a");
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::dial, "d"));
  BOOST_TEST(net.deliver<join_probe>("a", "d") == 1u);
  BOOST_TEST(net.deliver<join_probe_reply>("d", "a") == 1u);
  BOOST_TEST(a.log().at(3).kind == entry_kind::config);
  BOOST_TEST(a.learners().count("d") == 1u);
  BOOST_TEST(a.members().count("d") == 0u);
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::membership_changed));
  BOOST_TEST(net.at("a").answers.empty()); // not a member until promoted
  net.run();
  BOOST_TEST(a.members().count("d") == 1u);
  BOOST_TEST(a.learners().empty());
  BOOST_TEST_REQUIRE(a.log().last_index() == 4u);
  BOOST_TEST(a.log().at(4).kind == entry_kind::config);
  BOOST_TEST(a.commit_index() == 4u);
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 4u);
  BOOST_TEST((net.core("d").members() == a.members()));
  BOOST_TEST(net.at("d").disk.entries == net.at("a").disk.entries);
}

// Once promoted, the new voter counts: without it the leader cannot commit.
BOOST_AUTO_TEST_CASE(after_promotion_the_new_majority_is_needed) {
  network net;
  add_seed(net);
  add_joiner(net);
  net.elect("a");
  auto& a = net.core("a");
  a.join(1, "d", "raft-d");
  net.step("a");
  net.run();
  BOOST_TEST_REQUIRE(a.members().count("d") == 1u);
  auto before = a.commit_index();
  net.isolate("d");
  a.propose(2, "x");
  net.step("a");
  net.run();
  BOOST_TEST(a.commit_index() == before);
  net.heal();
  for (int i = 0; i < 10 && a.commit_index() == before; ++i) {
    net.tick("a", 1); // the leader retransmits to the follower it lost
    net.run();
  }
  BOOST_TEST(a.commit_index() == before + 1);
}

// The probe resets the joining node: a lone node that bootstrapped itself drops its log and its
// state machine (it holds no writes), then follows the leader.
BOOST_AUTO_TEST_CASE(a_joining_node_drops_its_lone_bootstrap_state) {
  network net;
  add_seed(net);
  auto& d = net.add(config_for("d", {"d"}), recovered_state{}, 4);
  net.elect("d"); // a lone bootstrap: d leads itself and commits a no-op of its own
  BOOST_TEST(net.core("d").commit_index() == 1u);
  net.elect("a");
  net.core("a").join(1, "d", "raft-d");
  net.step("a");
  net.run();
  BOOST_TEST(has_effect(d, raft_effect::kind::reset_state_machine));
  BOOST_TEST(std::any_of(d.persists.begin(), d.persists.end(),
                         [](const persist_request& r) { return r.truncate_from == 1u; }));
  BOOST_TEST(net.core("d").role() == raft_role::follower);
  BOOST_TEST(net.core("d").leader_id() == "a");
  BOOST_TEST(d.disk.entries == net.at("a").disk.entries);
  BOOST_TEST(net.at("a").answers.at(0).reply.status == reply_status::ok);
}

// Thesis §4.1: "The leader ... must not begin another configuration change until the previous one
// has committed": busy while a join is pending, and while its entry is uncommitted.
BOOST_AUTO_TEST_CASE(one_membership_change_at_a_time) {
  {
    network net;
    add_seed(net);
    net.elect("a");
    net.core("a").join(1, "d", "raft-d"); // d does not answer (it is not even there)
    net.core("a").join(2, "e", "raft-e");
    net.step("a");
    auto& answers = net.at("a").answers;
    BOOST_TEST_REQUIRE(answers.size() == 1u);
    BOOST_TEST(answers[0].request_id == 2u);
    BOOST_TEST(answers[0].reply.status == reply_status::busy);
  }
  {
    network net;
    add_seed(net);
    add_joiner(net);
    net.elect("a");
    net.core("a").join(1, "d", "raft-d");
    net.step("a");
    net.deliver<join_probe>("a", "d");
    net.deliver<join_probe_reply>("d", "a"); // {a, d} is in a's log, not committed
    net.core("a").join(2, "e", "raft-e");
    net.step("a");
    auto& answers = net.at("a").answers;
    BOOST_TEST_REQUIRE(answers.size() == 1u);
    BOOST_TEST(answers[0].reply.status == reply_status::busy);
  }
}

// Thesis §4.1 (and the single-server change bug found on raft-dev in 2015): a leader changes the
// membership only once it has committed an entry of its own term, even when the membership entry
// itself is known committed (here: learned as a follower of the previous leader). A change that
// arrives before that waits for the commit (it is not refused), then starts.
BOOST_AUTO_TEST_CASE(a_join_waits_for_a_commit_in_the_leaders_term) {
  network net;
  add_seed(net, {{"a", "raft-a"}, {"b", "raft-b"}, {"c", "raft-c"}});
  auto& a = net.core("a");
  net.handle("a", append("b", 1, 1, 1, {}, 1)); // b led term 1 and committed the membership
  BOOST_TEST_REQUIRE(a.commit_index() == 1u);
  net.elect_alone("a"); // b and c are imaginary; neither has acknowledged a's no-op
  a.join(1, "d", "raft-d");
  net.step("a");
  BOOST_TEST(net.at("a").answers.empty());                            // waiting, not refused
  BOOST_TEST(!has_effect(net.at("a"), raft_effect::kind::dial, "d")); // and not started
  net.handle("a", ack("b", a.term(), 1, 2));
  BOOST_TEST(a.commit_index() == 2u);
  BOOST_TEST(net.at("a").answers.empty()); // started: waiting for d
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::dial, "d"));
  a.join(2, "e", "raft-e");
  net.step("a");
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 1u); // one change at a time
  BOOST_TEST(net.at("a").answers[0].reply.status == reply_status::busy);
}

// A change waiting for the term's first commit when leadership ends never started: its client
// hears that nothing changed.
BOOST_AUTO_TEST_CASE(a_change_waiting_for_the_terms_first_commit_fails_cleanly_on_step_down) {
  network net;
  add_seed(net, {{"a", "raft-a"}, {"b", "raft-b"}, {"c", "raft-c"}});
  auto& a = net.core("a");
  net.handle("a", append("b", 1, 1, 1, {}, 1));
  net.elect_alone("a");
  a.remove(1, "c", true);
  net.step("a");
  BOOST_TEST(net.at("a").answers.empty());
  net.handle("a", append("b", a.term() + 1, 1, 1, {}, 1)); // b leads a newer term
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 1u);
  BOOST_TEST(net.at("a").answers[0].reply.status == reply_status::no_leader);
  BOOST_TEST(a.members().count("c") == 1u);
}

// A node that holds writes of its own refuses to be added (they would be discarded), and nothing
// changes.
BOOST_AUTO_TEST_CASE(a_node_with_writes_of_its_own_refuses_to_join) {
  network net;
  add_seed(net);
  net.add(config_for("d", {"d"}), recovered(1, {command(1, 1, "mine")}), 4);
  net.elect("a");
  auto& a = net.core("a");
  a.join(1, "d", "raft-d");
  net.step("a");
  net.run();
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].reply.status == reply_status::rejected);
  BOOST_TEST(answers[0].reply.reason.find("writes of its own") != std::string::npos);
  BOOST_TEST(a.members().count("d") == 0u);
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::hang_up, "d"));
  BOOST_TEST(net.core("d").log().last_index() == 1u);
  BOOST_TEST(net.core("d").log().at(1).data == "mine");
}

// A join naming another member's address, or a member at another address, or an invalid id is
// refused; joining again as the same member is harmless.
BOOST_AUTO_TEST_CASE(a_join_reusing_a_members_address_is_refused) {
  network net;
  add_seed(net, {{"a", "raft-a"}, {"b", "raft-b"}});
  net.elect_alone("a");
  auto& a = net.core("a");
  a.join(1, "e", "raft-b");
  a.join(2, "b", "raft-x");
  a.join(3, "b", "raft-b");
  a.join(4, "..", "raft-y");
  net.step("a");
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 4u);
  BOOST_TEST(answers[0].reply.status == reply_status::rejected);
  BOOST_TEST(answers[0].reply.reason.find("belongs to member b") != std::string::npos);
  BOOST_TEST(answers[1].reply.status == reply_status::rejected);
  BOOST_TEST(answers[2].reply.status == reply_status::ok);
  BOOST_TEST(answers[3].reply.status == reply_status::rejected);
  BOOST_TEST(a.members().size() == 2u);
}

// Thesis §4.1: a follower too uses a configuration as soon as it is in its log, and falls back to
// the previous one if the entry is truncated away.
BOOST_AUTO_TEST_CASE(a_follower_uses_a_configuration_as_soon_as_it_is_in_its_log) {
  network net;
  membership two{{"f", "raft-f"}, {"l", "raft-l"}};
  membership three{{"f", "raft-f"}, {"l", "raft-l"}, {"x", "raft-x"}};
  net.add(config_for("f", {}), recovered(1, {config_entry(1, 1, two)}));
  auto& f = net.core("f");
  net.handle("f", append("l", 1, 1, 1, {config_entry(1, 2, three)}));
  BOOST_TEST(f.commit_index() == 0u);
  BOOST_TEST((f.members() == three));
  net.handle("f", append("l", 2, 1, 1, {command(2, 2)}));
  BOOST_TEST((f.members() == two));
}

// A join the new node never answers fails after `join_timeout`, and the leader hangs up on it.
BOOST_AUTO_TEST_CASE(a_join_that_gets_no_answer_times_out) {
  network net;
  add_seed(net, {{"a", "raft-a"}}, [](raft_config& c) { c.join_timeout = 5 * c.tick_interval; });
  net.elect("a");
  net.core("a").join(1, "d", "raft-d");
  net.step("a");
  net.tick("a", 4);
  BOOST_TEST(net.at("a").answers.empty());
  net.tick("a");
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].reply.status == reply_status::unreachable);
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::hang_up, "d"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(cluster_ids, core_fixture)

// Messages of another cluster are dropped, change nothing, and are reported.
BOOST_AUTO_TEST_CASE(messages_of_another_cluster_are_dropped_and_reported) {
  network net;
  net.expect_violations = true;
  auto state = recovered(1);
  state.cluster_id = "c1";
  net.add(config_for("a", {"a", "b", "c"}), state);
  auto foreign_append = append("b", 5, 0, 0, {command(5, 1)});
  foreign_append.cluster_id = "c2";
  auto foreign_vote = vote_request("c", 5, 9, 5);
  foreign_vote.cluster_id = "c2";
  net.handle("a", foreign_append);
  net.handle("a", foreign_vote);
  BOOST_TEST(net.core("a").term() == 1u);
  BOOST_TEST(net.core("a").log().last_index() == 0u);
  BOOST_TEST(net.queue.empty());
  BOOST_TEST(net.core("a").protocol_violations().size() == 2u);
}

// A lone node without a cluster adopts the cluster of the leader that adds it, durably, and from
// then on stamps its messages with it.
BOOST_AUTO_TEST_CASE(a_lone_node_adopts_the_cluster_of_the_leader_that_adds_it) {
  network net;
  add_seed(net);
  auto& d = add_joiner(net);
  net.elect("a");
  net.core("a").join(1, "d", "raft-d");
  net.step("a");
  net.deliver<join_probe>("a", "d");
  BOOST_TEST(net.core("d").cluster_id() == "c1");
  BOOST_TEST(d.disk.cluster_id == "c1");
  auto replies = net.sent<join_probe_reply>("d", "a");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(replies[0].cluster_id == "c1");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(removal_and_transfer, core_fixture)

namespace {

const std::vector<std::string> abc{"a", "b", "c"};

size_t copies_in_log(const raft_core& core, const std::string& data) {
  size_t n = 0;
  for (auto i = core.log().first_index(); i <= core.log().last_index(); ++i)
    if (core.log().at(i).kind == entry_kind::command && core.log().at(i).data == data)
      ++n;
  return n;
}

const client_answer* answer_to(const node& n, uint64_t request_id) {
  for (const auto& a : n.answers)
    if (a.request_id == request_id)
      return &a;
  return nullptr;
}

} // namespace

// Thesis §3.10: "the prior leader stops accepting new client requests" once it hands over. A
// proposal made meanwhile (locally or forwarded by a follower) must not be appended by the old
// leader, whose uncommitted tail the new leader overwrites; it waits and goes to the new leader.
BOOST_AUTO_TEST_CASE(proposals_during_a_transfer_wait_and_go_to_the_new_leader) {
  network net(abc);
  net.elect("a");
  auto last = net.core("a").log().last_index();
  net.core("a").transfer(1, "b");
  net.step("a");
  BOOST_TEST_REQUIRE(net.sent<timeout_now>("a", "b").size() == 1u);
  net.core("a").propose(2, "set x");
  net.step("a");
  net.core("c").propose(3, "set y");
  net.step("c");
  net.deliver<forward_request>("c", "a");
  BOOST_TEST(net.core("a").log().last_index() == last); // paused, not appended
  net.run();
  net.tick_all(3);
  BOOST_TEST_REQUIRE(net.core("b").role() == raft_role::leader);
  for (auto [id, request] : {std::pair{"a", 1}, {"a", 2}, {"c", 3}}) {
    auto* got = answer_to(net.at(id), request);
    BOOST_TEST_REQUIRE(got != nullptr, id << " did not answer request " << request);
    BOOST_TEST(got->reply.status == reply_status::ok, id << " request " << request);
  }
  BOOST_TEST(copies_in_log(net.core("b"), "set x") == 1u);
  BOOST_TEST(copies_in_log(net.core("b"), "set y") == 1u);
}

// A follower that sees the transfer's campaign (and so knows no leader for a moment) keeps a
// local write and a read until the new leader is known, instead of refusing them at once.
BOOST_AUTO_TEST_CASE(a_follower_keeps_requests_during_a_handover_for_the_new_leader) {
  network net(abc);
  net.elect("a");
  net.core("a").transfer(1, "b");
  net.step("a");
  net.deliver<timeout_now>("a", "b");
  net.deliver<request_vote>("b", "c");
  BOOST_TEST_REQUIRE(net.core("c").leader_id().empty());
  net.core("c").propose(5, "set z");
  net.core("c").read(6);
  net.step("c");
  BOOST_TEST(net.at("c").answers.empty());
  net.run();
  net.tick_all(3);
  BOOST_TEST_REQUIRE(net.core("b").role() == raft_role::leader);
  for (uint64_t request : {5, 6}) {
    auto* got = answer_to(net.at("c"), request);
    BOOST_TEST_REQUIRE(got != nullptr, "request " << request);
    BOOST_TEST(got->reply.status == reply_status::ok, "request " << request);
  }
  BOOST_TEST(copies_in_log(net.core("b"), "set z") == 1u);
}

// A member removed while it could not hear the leader still learns of its removal: the leader
// keeps replicating to it until it holds the entry that removes it, so it stops campaigning and
// says it was removed instead of believing it is still a member.
BOOST_AUTO_TEST_CASE(a_removed_member_that_missed_the_change_still_learns_of_it) {
  network net(abc);
  net.elect("a");
  net.isolate("c");
  net.core("a").remove(1, "c", false);
  net.step("a");
  net.run();
  BOOST_TEST_REQUIRE(answer_to(net.at("a"), 1) != nullptr);
  BOOST_TEST(answer_to(net.at("a"), 1)->reply.status == reply_status::ok);
  BOOST_TEST(!net.core("c").removed());
  net.heal();
  net.tick_all(10);
  BOOST_TEST(net.core("c").removed());
  BOOST_TEST(net.core("c").role() == raft_role::follower);
  // Once c holds the entry, the leader lets go of it.
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::hang_up, "c"));
  for (const auto& p : net.core("a").status().progress)
    BOOST_TEST(p.id != "c");
}

// A removed node refuses everything with one status, `removed`, and forwards nothing to its old
// leader: writes, reads, and admin requests alike; also after a restart.
BOOST_AUTO_TEST_CASE(a_removed_node_refuses_every_request_with_removed) {
  network net(abc);
  net.elect("a");
  net.core("a").remove(1, "c", false);
  net.step("a");
  net.run();
  net.tick_all(3);
  BOOST_TEST_REQUIRE(net.core("c").removed());
  for (int life = 0; life < 2; ++life) {
    auto& c = net.core("c");
    net.at("c").answers.clear();
    net.queue.clear();
    c.join(11, "d", "raft-d");
    c.remove(12, "a", false);
    c.transfer(13, "b");
    c.propose(14, "set x");
    c.read(15);
    net.step("c");
    BOOST_TEST(net.sent<forward_request>("c").empty());
    auto& answers = net.at("c").answers;
    BOOST_TEST_REQUIRE(answers.size() == 5u, "life " << life);
    for (const auto& got : answers) {
      BOOST_TEST(got.reply.status == reply_status::removed, "request " << got.request_id);
      BOOST_TEST(got.reply.reason.find("removed") != std::string::npos);
    }
    net.restart("c");
    BOOST_TEST(net.core("c").removed(), "after restart " << life);
  }
}

// A request forwarded to a removed node (its sender thought it still led) is answered "no leader"
// (nothing changed): "removed" describes the removed node, not the forwarder's client.
BOOST_AUTO_TEST_CASE(a_removed_node_answers_forwarded_requests_with_no_leader) {
  network net(abc);
  net.elect("a");
  net.core("a").remove(1, "c", false);
  net.step("a");
  net.run();
  net.tick_all(3);
  BOOST_TEST_REQUIRE(net.core("c").removed());
  forward_request request;
  request.from = "b";
  request.request_id = 77;
  request.op = forwarded_op::write;
  request.command = "set x";
  net.handle("c", request);
  auto replies = net.sent<forward_reply>("c", "b");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(replies[0].reply.status == reply_status::no_leader);
}

// A write paused by a transfer whose target never took over, while this node lost leadership to
// the target's vote requests and then won it back: the write is appended by this node once it
// leads again (not left to time out as "no leader").
BOOST_AUTO_TEST_CASE(a_write_handed_over_is_carried_out_if_leadership_comes_back) {
  network net(abc);
  net.elect("a");
  net.core("a").transfer(1, "b");
  net.step("a");
  net.core("a").propose(2, "set x");
  net.step("a");
  net.deliver<timeout_now>("a", "b");  // b campaigns in a higher term
  net.deliver<request_vote>("b", "a"); // a steps down (a transfer's vote request)
  BOOST_TEST_REQUIRE(net.core("a").role() == raft_role::follower);
  net.isolate("b"); // b never wins
  for (int i = 0; i < 60 && net.core("a").role() != raft_role::leader; ++i) {
    net.tick("a");
    net.tick("c");
    net.run();
  }
  BOOST_TEST_REQUIRE(net.core("a").role() == raft_role::leader);
  net.tick_all(3);
  auto* got = answer_to(net.at("a"), 2);
  BOOST_TEST_REQUIRE(got != nullptr);
  BOOST_TEST(got->reply.status == reply_status::ok);
  BOOST_TEST(copies_in_log(net.core("a"), "set x") == 1u);
}

// ...but only for a bounded time: a departed member that never answers is let go once the change
// committed and a grace of a few election timeouts passed.
BOOST_AUTO_TEST_CASE(a_departed_member_that_never_answers_is_let_go_after_a_grace) {
  network net(abc);
  net.elect("a");
  net.isolate("c");
  net.core("a").remove(1, "c", false);
  net.step("a");
  net.run();
  BOOST_TEST_REQUIRE(net.core("a").commit_index() == net.core("a").log().last_index());
  net.tick("a", int(net.core("a").config().election_ticks) * 4);
  net.run();
  BOOST_TEST(has_effect(net.at("a"), raft_effect::kind::hang_up, "c"));
  for (const auto& p : net.core("a").status().progress)
    BOOST_TEST(p.id != "c");
}

// A leader that removes itself hands over first; the new leader then removes it even before it
// has committed an entry of its own term (the change waits for that commit instead of being
// refused as busy), and the old leader's client gets "ok".
BOOST_AUTO_TEST_CASE(a_leader_removing_itself_is_removed_by_its_successor) {
  network net(abc);
  net.elect("a");
  net.core("a").remove(1, "a", false);
  net.step("a");
  net.run();
  net.tick_all(5);
  auto* got = answer_to(net.at("a"), 1);
  BOOST_TEST_REQUIRE(got != nullptr);
  BOOST_TEST(got->reply.status == reply_status::ok, got->reply.reason);
  BOOST_TEST(net.core("a").removed());
  auto& b = net.core("b");
  auto& c = net.core("c");
  BOOST_TEST((b.role() == raft_role::leader || c.role() == raft_role::leader));
  BOOST_TEST(b.members().count("a") == 0u);
  BOOST_TEST(c.members().count("a") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
