// Unit tests of the Raft core: client requests. Linearizable reads with ReadIndex (thesis §6.4)
// and the forwarding of writes, reads and joins from followers to the leader (one hop, answered
// exactly once). See raft_core_test.cpp for the approach.
#include <boost/test/unit_test.hpp>

#include <set>

#include "tests/unit/raft_core_harness.hpp"

using namespace infinity;
using namespace infinity::core_test;

namespace {

const std::vector<std::string> three{"a", "b", "c"};

/// "a" leads {a, b, c} (b and c imaginary) and committed its no-op (index 1) through b's ack.
void lead_with_commit(network& net, bool auto_apply = true) {
  net.add(config_for("a", three)).auto_apply = auto_apply;
  net.elect_alone("a");
  net.handle("a", ack("b", net.core("a").term(), 0, 1));
  BOOST_REQUIRE(net.core("a").commit_index() == 1u);
  net.queue.clear();
}

/// The heartbeat round of the last append "a" sent to "b".
uint64_t last_round_to_b(const network& net) {
  auto appends = net.sent<append_entries>("a", "b");
  BOOST_REQUIRE(!appends.empty());
  return appends.back().round;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(read_index, core_fixture)

// Thesis §6.4: "The leader needs to make sure it hasn't been superseded by a newer leader ... it
// issues a new round of heartbeats and waits for their acknowledgments from a majority of the
// cluster" (acknowledgements of an earlier round do not count).
BOOST_AUTO_TEST_CASE(a_read_is_answered_once_a_majority_acknowledged_a_later_heartbeat_round) {
  network net;
  lead_with_commit(net);
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  auto round = last_round_to_b(net);
  net.handle("a", ack("b", a.term(), 1, 1, round - 1));
  BOOST_TEST(net.at("a").answers.empty());
  net.handle("a", ack("b", a.term(), 1, 1, round));
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 7u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 1u);
}

// Reads that arrive while a read round is out share the next round, which goes out once a
// majority acknowledged the one out: one round in flight however many reads arrive (under load,
// far fewer heartbeats than one round per batch of the mailbox).
BOOST_AUTO_TEST_CASE(reads_arriving_while_a_round_is_out_share_the_next_round) {
  network net;
  lead_with_commit(net);
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  auto first = last_round_to_b(net);
  auto sent = net.sent<append_entries>("a", "b").size();
  a.read(8);
  net.step("a");
  a.read(9);
  net.step("a");
  BOOST_TEST(net.sent<append_entries>("a", "b").size() == sent); // no round while one is out
  net.handle("a", ack("b", a.term(), 1, 1, first));
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 1u);
  BOOST_TEST(net.at("a").answers[0].request_id == 7u);
  auto second = last_round_to_b(net);
  BOOST_TEST(second == first + 1); // sent for 8 and 9 as soon as the first was confirmed
  net.handle("a", ack("b", a.term(), 1, 1, first)); // an old round's ack serves neither
  BOOST_TEST(net.at("a").answers.size() == 1u);
  net.handle("a", ack("b", a.term(), 1, 1, second));
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 3u);
  BOOST_TEST(net.at("a").answers[1].request_id == 8u);
  BOOST_TEST(net.at("a").answers[2].request_id == 9u);
}

// A lost round does not hold reads forever: the next heartbeats carry the same round (sent after
// the read arrived, so an acknowledgement of any of them confirms it).
BOOST_AUTO_TEST_CASE(a_lost_read_round_is_sent_again_with_the_next_heartbeat) {
  network net;
  lead_with_commit(net);
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  auto first = last_round_to_b(net);
  auto sent = net.sent<append_entries>("a", "b").size();
  net.tick("a", 2); // heartbeat_ticks: the round's heartbeats were lost
  BOOST_TEST(net.sent<append_entries>("a", "b").size() > sent);
  BOOST_TEST(last_round_to_b(net) == first);
  net.handle("a", ack("b", a.term(), 1, 1, first));
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 1u);
  BOOST_TEST(net.at("a").answers[0].reply.status == reply_status::ok);
}

// Thesis §6.4 step 4: "The leader waits for its state machine to advance at least as far as the
// readIndex; this is current enough to satisfy linearizability."
BOOST_AUTO_TEST_CASE(a_read_waits_until_its_read_index_is_applied) {
  network net;
  lead_with_commit(net, false);
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  net.handle("a", ack("b", a.term(), 1, 1, last_round_to_b(net)));
  BOOST_TEST(net.at("a").answers.empty());
  net.apply("a");
  BOOST_TEST_REQUIRE(net.at("a").answers.size() == 1u);
  BOOST_TEST(net.at("a").answers[0].reply.index == 1u);
}

// Thesis §6.4 step 1: "If the leader has not yet marked an entry from its current term committed,
// it waits until it has done so."
BOOST_AUTO_TEST_CASE(a_read_before_the_first_commit_of_the_term_waits_for_it) {
  network net;
  net.add(config_for("a", three));
  net.elect_alone("a");
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  BOOST_TEST(net.sent<append_entries>("a").empty()); // no heartbeat round for it yet
  net.handle("a", ack("b", a.term(), 0, 1));         // commits the no-op
  BOOST_TEST(net.at("a").answers.empty());
  net.handle("a", ack("b", a.term(), 1, 1, last_round_to_b(net)));
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 1u);
}

// Thesis §6.4: a leader deposed before it could confirm a read must not serve it: the read fails
// (and had no effect, so the client may retry).
BOOST_AUTO_TEST_CASE(a_deposed_leader_fails_its_pending_reads) {
  network net;
  lead_with_commit(net);
  auto& a = net.core("a");
  a.read(7);
  net.step("a");
  net.handle("a", append("b", a.term() + 1, 0, 0));
  BOOST_TEST(a.role() == raft_role::follower);
  auto& answers = net.at("a").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 7u);
  BOOST_TEST(answers[0].reply.status == reply_status::leadership_lost);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(forwarding, core_fixture)

// A follower passes a client's write to the leader and answers the client with the leader's reply
// (thesis §6.2: "servers other than the leader ... forward client requests to the leader").
BOOST_AUTO_TEST_CASE(a_follower_forwards_a_write_and_answers_with_the_leaders_reply) {
  network net(three);
  net.elect("a");
  net.core("b").propose(5, "set x");
  net.step("b");
  auto forwarded = net.sent<forward_request>("b", "a");
  BOOST_TEST_REQUIRE(forwarded.size() == 1u);
  BOOST_TEST((forwarded[0].op == forwarded_op::write && forwarded[0].command == "set x"));
  net.run();
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 5u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 2u);
  BOOST_TEST(answers[0].reply.payload == "applied set x");
}

// Reads and joins are forwarded too, with what the leader needs to serve them.
BOOST_AUTO_TEST_CASE(reads_and_joins_are_forwarded_too) {
  network net(three);
  net.elect("a");
  net.core("b").read(6);
  net.core("b").join(7, "d", "raft-d");
  net.step("b");
  auto forwarded = net.sent<forward_request>("b", "a");
  BOOST_TEST_REQUIRE(forwarded.size() == 2u);
  // The join goes at once; reads wait for the flush after the mailbox, to travel as one batch.
  BOOST_TEST((forwarded[0].op == forwarded_op::join));
  BOOST_TEST(forwarded[0].member_id == "d");
  BOOST_TEST(forwarded[0].member_address == "raft-d");
  BOOST_TEST((forwarded[1].op == forwarded_op::read));
}

// Thesis §6.4: reads that arrive at a follower together share one forwarded read; the read index
// the leader confirms after all of them arrived serves every one.
BOOST_AUTO_TEST_CASE(reads_arriving_together_share_one_forwarded_read) {
  network net(three);
  net.elect("a");
  net.core("b").read(11);
  net.core("b").read(12);
  net.core("b").read(13);
  net.step("b");
  BOOST_TEST(net.sent<forward_request>("b", "a").size() == 1u);
  net.run();
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 3u);
  std::set<uint64_t> ids;
  for (const auto& answer : answers) {
    ids.insert(answer.request_id);
    BOOST_TEST(answer.reply.status == reply_status::ok);
  }
  BOOST_TEST((ids == std::set<uint64_t>{11, 12, 13}));
}

// A batch whose forwarded read gets no answer fails every read in it (none had an effect).
BOOST_AUTO_TEST_CASE(a_lost_read_batch_fails_every_read_in_it) {
  network net(three, [](raft_config& c) { c.forward_timeout = 5 * c.tick_interval; });
  net.elect("a");
  net.core("b").read(21);
  net.core("b").read(22);
  net.step("b");
  BOOST_TEST(net.drop<forward_request>("b", "a") == 1u);
  net.tick("b", 5);
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 2u);
  for (const auto& answer : answers)
    BOOST_TEST(answer.reply.status == reply_status::timeout);
}

// Thesis §6.4.1 (reads from followers): the leader confirms a read index, and the follower answers
// once its own state machine has applied that far.
BOOST_AUTO_TEST_CASE(a_forwarded_read_is_answered_once_the_follower_applied_the_read_index) {
  network net(three);
  net.elect("a");
  net.at("b").auto_apply = false;
  net.core("a").propose(1, "set x");
  net.step("a");
  net.run();
  net.core("b").read(9);
  net.step("b");
  net.run();
  BOOST_TEST(net.delivered<forward_reply>("a", "b").size() == 1u);
  BOOST_TEST(net.at("b").answers.empty());
  net.apply("b");
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 9u);
  BOOST_TEST(answers[0].reply.status == reply_status::ok);
  BOOST_TEST(answers[0].reply.index == 2u);
}

// One hop only: a node that receives a forwarded request and does not lead refuses it (naming the
// leader it knows) instead of forwarding it again.
BOOST_AUTO_TEST_CASE(a_forwarded_request_is_never_forwarded_again) {
  network net(three);
  net.elect("a");
  forward_request request;
  request.from = "b";
  request.request_id = 9;
  request.op = forwarded_op::write;
  request.command = "set x";
  net.handle("c", request);
  BOOST_TEST(net.sent<forward_request>("c").empty());
  auto replies = net.sent<forward_reply>("c", "b");
  BOOST_TEST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(replies[0].request_id == 9u);
  BOOST_TEST(replies[0].reply.status == reply_status::not_leader);
  BOOST_TEST(replies[0].reply.leader_id == "a");
  BOOST_TEST(net.core("a").log().last_index() == 1u);
}

// A forwarded request the leader never answers times out after `forward_timeout`.
BOOST_AUTO_TEST_CASE(a_forwarded_request_times_out_after_the_configured_ticks) {
  network net(three, [](raft_config& c) { c.forward_timeout = 5 * c.tick_interval; });
  net.elect("a");
  net.core("b").propose(5, "set x");
  net.step("b");
  BOOST_TEST(net.drop<forward_request>("b", "a") == 1u);
  net.tick("b", 4);
  BOOST_TEST(net.at("b").answers.empty());
  net.tick("b");
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 1u);
  BOOST_TEST(answers[0].request_id == 5u);
  BOOST_TEST(answers[0].reply.status == reply_status::timeout);
}

// When the connection to the leader drops, forwarded requests fail at once, and a reply that
// arrives anyway is not a second answer.
BOOST_AUTO_TEST_CASE(forwarded_requests_fail_when_the_connection_to_the_leader_drops) {
  network net(three);
  net.elect("a");
  auto& b = net.core("b");
  b.propose(5, "set x");
  b.read(6);
  net.step("b");
  b.peer_down("a");
  net.step("b");
  auto& answers = net.at("b").answers;
  BOOST_TEST_REQUIRE(answers.size() == 2u);
  BOOST_TEST(answers[0].reply.status == reply_status::timeout);
  BOOST_TEST(answers[1].reply.status == reply_status::timeout);
  net.run(); // the leader still serves both and replies
  BOOST_TEST(net.delivered<forward_reply>("a", "b").size() == 2u);
  BOOST_TEST(answers.size() == 2u);
}

// Without a leader, or without a connection to it, a request is refused at once (nothing was
// appended), naming the leader when one is known.
BOOST_AUTO_TEST_CASE(a_request_with_no_reachable_leader_is_refused_at_once) {
  network net;
  net.add(config_for("f", {"f", "l", "x"}), recovered(1));
  net.core("f").propose(5, "set x");
  net.step("f");
  net.handle("f", append("l", 1, 0, 0)); // l leads, but f has no connection to it
  net.core("f").propose(6, "set x");
  net.step("f");
  BOOST_TEST(net.sent<forward_request>("f").empty());
  auto& answers = net.at("f").answers;
  BOOST_TEST_REQUIRE(answers.size() == 2u);
  BOOST_TEST(answers[0].reply.status == reply_status::no_leader);
  BOOST_TEST(answers[1].reply.status == reply_status::not_leader);
  BOOST_TEST(answers[1].reply.leader_id == "l");
}

BOOST_AUTO_TEST_SUITE_END()
