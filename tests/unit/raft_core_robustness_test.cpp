// Unit tests of the Raft core: remote input never throws. A message that breaks the protocol is
// dropped, changes nothing and shows up in protocol_violations(); the core keeps working. Late
// but honest messages are ignored quietly. See raft_core_test.cpp for the approach.
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

BOOST_FIXTURE_TEST_SUITE(malformed_input, core_fixture)

// Raft's log invariants (Figure 3: contiguous indexes, terms that never decrease and never exceed
// the leader's) are checked on every append before anything changes.
BOOST_AUTO_TEST_CASE(malformed_appends_are_dropped_and_reported) {
  struct malformed {
    std::string what;
    append_entries request;
  };
  std::vector<malformed> cases{
      {"a gap", append("l", 2, 2, 1, {command(2, 4)})},
      {"decreasing terms", append("l", 2, 2, 1, {command(2, 3), command(1, 4)})},
      {"a term above the message's", append("l", 2, 2, 1, {command(3, 3)})},
      {"a term below the previous entry's", append("l", 2, 2, 2, {command(1, 3)})},
      {"term 0", append("l", 2, 0, 0, {command(0, 1)})},
      {"an unknown kind", append("l", 2, 2, 1, {log_entry{2, 3, static_cast<entry_kind>(9), ""}})},
      {"an undecodable membership",
       append("l", 2, 2, 1, {log_entry{2, 3, entry_kind::config, "no equals sign"}})},
      {"a previous entry of a future term", append("l", 2, 2, 3)},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      network net;
      net.expect_violations = true;
      add_follower(net, recovered(2, log_with_terms({1, 1})));
      auto& f = net.core("f");
      BOOST_CHECK_NO_THROW(net.handle("f", c.request));
      BOOST_TEST(terms_of(f.log()) == (std::vector<uint64_t>{1, 1}));
      BOOST_TEST(f.protocol_violations().size() == 1u);
      BOOST_TEST(net.sent<append_reply>("f").empty());
      net.handle("f", append("l", 2, 2, 1, {command(2, 3)})); // still works
      BOOST_TEST(terms_of(f.log()) == (std::vector<uint64_t>{1, 1, 2}));
      BOOST_TEST(net.sent<append_reply>("f", "l").size() == 1u);
    }
  }
}

// Raft §5.4 (Leader Completeness): committed entries are never replaced, so an append whose entries
// conflict with the follower's committed ones comes from a broken leader: it is dropped and
// reported, not acknowledged.
BOOST_AUTO_TEST_CASE(an_append_conflicting_with_committed_entries_is_dropped_and_reported) {
  network net;
  net.expect_violations = true;
  add_follower(net, recovered(2, log_with_terms({1, 1})));
  auto& f = net.core("f");
  net.handle("f", append("l", 2, 2, 1, {}, 2));
  BOOST_TEST_REQUIRE(f.commit_index() == 2u);
  net.handle("f", append("l", 2, 0, 0, {command(2, 1), command(2, 2)}));
  BOOST_TEST(terms_of(f.log()) == (std::vector<uint64_t>{1, 1}));
  BOOST_TEST(f.protocol_violations().size() == 1u);
  auto replies = net.sent<append_reply>("f", "l");
  BOOST_TEST(replies.size() == 1u); // only the answer to the first, valid append
  for (size_t i = 1; i < replies.size(); ++i)
    BOOST_TEST(!replies[i].success,
               "the broken append was acknowledged with match_index " << replies[i].match_index);
}

// Raft §5.2 (Election Safety): "at most one leader can be elected in a given term", so an append
// from a second leader of the term (to a follower, or to the leader itself) is a violation.
BOOST_AUTO_TEST_CASE(an_append_from_a_second_leader_of_the_term_is_dropped_and_reported) {
  {
    network net;
    net.expect_violations = true;
    add_follower(net, recovered(2));
    auto& f = net.core("f");
    net.handle("f", append("l", 2, 0, 0));
    net.handle("f", append("x", 2, 0, 0, {command(2, 1)}));
    BOOST_TEST(f.log().last_index() == 0u);
    BOOST_TEST(f.leader_id() == "l");
    BOOST_TEST(f.protocol_violations().size() == 1u);
    BOOST_TEST(net.sent<append_reply>("f", "x").empty());
    net.handle("f", append("l", 2, 0, 0, {command(2, 1)}));
    BOOST_TEST(f.log().last_index() == 1u);
  }
  {
    network net;
    net.expect_violations = true;
    net.add(config_for("a", three));
    net.elect_alone("a");
    auto& a = net.core("a");
    net.handle("a", append("b", a.term(), 0, 0, {command(a.term(), 1)}));
    BOOST_TEST(a.role() == raft_role::leader);
    BOOST_TEST(a.log().at(1).kind == entry_kind::noop);
    BOOST_TEST(a.protocol_violations().size() == 1u);
  }
}

// An acknowledgement beyond the leader's log, or a rejection without a hint, cannot answer any
// append the leader sent: dropped and reported; the leader counts nothing from it.
BOOST_AUTO_TEST_CASE(append_replies_claiming_more_than_was_sent_are_dropped_and_reported) {
  network net;
  net.expect_violations = true;
  net.add(config_for("a", three));
  net.elect_alone("a");
  auto& a = net.core("a");
  net.handle("a", ack("b", a.term(), 0, 5)); // a's log ends at 1
  append_reply no_hint;
  no_hint.from = "b";
  no_hint.term = a.term();
  no_hint.success = false;
  net.handle("a", no_hint);
  BOOST_TEST(a.commit_index() == 0u);
  BOOST_TEST(a.role() == raft_role::leader);
  BOOST_TEST(a.protocol_violations().size() == 2u);
  net.handle("a", ack("b", a.term(), 0, 1));
  BOOST_TEST(a.commit_index() == 1u);
}

// A forwarded request of a kind this version does not know is dropped and reported.
BOOST_AUTO_TEST_CASE(a_forwarded_request_of_unknown_kind_is_dropped_and_reported) {
  network net;
  net.expect_violations = true;
  net.add(config_for("a", three));
  net.elect_alone("a");
  forward_request request;
  request.from = "b";
  request.request_id = 3;
  request.op = static_cast<forwarded_op>(9);
  BOOST_CHECK_NO_THROW(net.handle("a", request));
  BOOST_TEST(net.core("a").protocol_violations().size() == 1u);
  BOOST_TEST(net.sent<forward_reply>("a").empty());
  BOOST_TEST(net.core("a").log().last_index() == 1u);
}

// Late answers are part of honest runs (a vote from a node no longer a member, a forwarded reply
// after a timeout, a probe answer after the join ended): ignored, and not violations.
BOOST_AUTO_TEST_CASE(late_but_honest_answers_are_ignored_quietly) {
  network net;
  net.add(config_for("a", three));
  net.elect_alone("a");
  auto& a = net.core("a");
  net.handle("a", vote("z", a.term(), true));
  forward_reply late;
  late.from = "b";
  late.request_id = 42;
  net.handle("a", late);
  join_probe_reply stale;
  stale.from = "d";
  stale.probe_id = 7;
  stale.accepted = true;
  net.handle("a", stale);
  BOOST_TEST(a.role() == raft_role::leader);
  BOOST_TEST(a.members().size() == 3u);
  BOOST_TEST(net.at("a").answers.empty());
}

// The harness's invariant check is live: a local input that breaks the core's own invariants (here
// a storage answer for a request never made) throws and is recorded.
BOOST_AUTO_TEST_CASE(an_invariant_violation_is_recorded_and_thrown) {
  raft_core core(config_for("a", three), recovered_state{}, 1);
  BOOST_CHECK_THROW(core.persisted(5), invariant_violation);
  BOOST_TEST(!first_invariant_violation().empty());
  reset_invariant_violations();
}

BOOST_AUTO_TEST_SUITE_END()
