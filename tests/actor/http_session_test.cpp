// The HTTP session actor against stub Raft and KV actors, on CAF's deterministic test
// coordinator: the test decides when (and whether) each Raft request is answered.
#define BOOST_TEST_MODULE http_session
#include <boost/test/unit_test.hpp>

#include <map>
#include <memory>

#include <boost/json.hpp>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/http_session.hpp"
#include "actors/kv/command_codec.hpp"
#include "actors/kv/local_read_view.hpp"
#include "actors/kv/state_machine.hpp"
#include "actors/messages.hpp"
#include "actors/protocols.hpp"

using namespace infinity;
using namespace std::chrono_literals;

namespace {

using release_atom = caf::atom_constant<caf::atom("release")>;

/// What the stub Raft node saw, readable by the test (everything runs on the test thread).
struct raft_log_book {
  std::vector<kv_command> proposals;
  size_t reads = 0;
  /// What the stub answers to status_atom (a lone leader unless a test says otherwise).
  raft_status status = [] {
    raft_status s;
    s.id = "n1";
    s.role = raft_role::leader;
    s.term = 4;
    s.leader_id = "n1";
    s.members = {"n1"};
    return s;
  }();
};

/// The stub implements the Raft node's whole interface, plus `release_atom` for the test.
using stub_raft_actor =
    raft_node_actor::extend<caf::reacts_to<release_atom, uint64_t, client_reply>>;

struct stub_raft_state {
  std::shared_ptr<raft_log_book> book;
  /// Unanswered propose/read requests, in arrival order; answered by `release_atom`.
  std::vector<caf::typed_response_promise<client_reply>> held;
  static inline const char* name = "stub_raft";
};

stub_raft_actor::behavior_type stub_raft(stub_raft_actor::stateful_pointer<stub_raft_state> self,
                                         std::shared_ptr<raft_log_book> book) {
  self->state.book = std::move(book);
  return {
      [=](request_vote&) {},
      [=](vote_reply&) {},
      [=](append_entries&) {},
      [=](append_reply&) {},
      [=](forward_request&) {},
      [=](forward_reply&) {},
      [=](join_probe&) {},
      [=](join_probe_reply&) {},
      [=](timeout_now&) {},
      [=](install_snapshot&) {},
      [=](install_snapshot_reply&) {},
      [=](propose_atom, const std::string& encoded) -> caf::result<client_reply> {
        kv_command command;
        BOOST_REQUIRE(decode_command(encoded, command));
        self->state.book->proposals.push_back(command);
        auto promise = self->make_response_promise<client_reply>();
        self->state.held.push_back(promise);
        return promise;
      },
      [=](read_atom) -> caf::result<client_reply> {
        ++self->state.book->reads;
        auto promise = self->make_response_promise<client_reply>();
        self->state.held.push_back(promise);
        return promise;
      },
      [=](join_atom, const std::string&, const std::string&) -> caf::result<client_reply> {
        client_reply busy;
        busy.status = reply_status::busy;
        return busy;
      },
      [=](remove_atom, const std::string&, bool) -> caf::result<client_reply> {
        client_reply busy;
        busy.status = reply_status::busy;
        return busy;
      },
      [=](transfer_atom, const std::string&) -> caf::result<client_reply> {
        client_reply busy;
        busy.status = reply_status::busy;
        return busy;
      },
      [=](status_atom) { return self->state.book->status; },
      [=](tick_atom) {},
      [=](flush_atom) {},
      [=](peer_up_atom, const std::string&, const caf::actor&) {},
      [=](peer_down_atom, const std::string&) {},
      [=](observer_atom, const caf::actor&) {},
      [=](release_atom, uint64_t which, const client_reply& result) {
        self->state.held.at(which).deliver(result);
      },
  };
}

/// The session's local reads: a real state machine holding `data`, published like the KV actor
/// does.
std::shared_ptr<local_read_view> view_with(const std::map<std::string, std::string>& data) {
  auto machine = std::make_shared<kv_state_machine>();
  uint64_t index = 0;
  for (const auto& [key, value] : data) {
    kv_command command;
    command.key = key;
    command.value = value;
    log_entry entry;
    entry.index = ++index;
    entry.term = 1;
    entry.kind = entry_kind::command;
    entry.data = encode_command(command);
    machine->apply(entry);
  }
  auto view = std::make_shared<local_read_view>();
  view->publish(machine);
  return view;
}

struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.inline-output", true);
    register_message_types(*this);
  }
};

client_reply reply_of(reply_status status, uint64_t index, uint64_t term, std::string leader) {
  client_reply reply;
  reply.status = status;
  reply.index = index;
  reply.term = term;
  reply.leader_id = std::move(leader);
  return reply;
}

client_reply ok_at(uint64_t index) {
  return reply_of(reply_status::ok, index, 1, "n1");
}

struct fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched =
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<raft_log_book> book = std::make_shared<raft_log_book>();
  std::shared_ptr<std::vector<http::api_response>> responses =
      std::make_shared<std::vector<http::api_response>>();
  caf::actor raft = caf::actor_cast<caf::actor>(sys.spawn(stub_raft, book));
  std::shared_ptr<local_read_view> view = view_with({{"a", "A"}, {"b", "B"}});
  caf::actor session;

  explicit fixture(std::function<void(http_session_config&)> tweak = nullptr) {
    http_session_config config;
    config.raft = caf::actor_cast<raft_node_actor>(raft);
    config.view = view;
    config.client_id = 0xC0FFEE;
    if (tweak)
      tweak(config);
    auto sink = responses;
    session = spawn_http_session(sys, config,
                                 [sink](http::api_response r) { sink->push_back(std::move(r)); });
    sched.run();
  }

  // Teardown gotcha (notes §4): the system hangs in its destructor while actors are alive.
  ~fixture() {
    for (auto& actor : {session, raft})
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    sched.run();
  }

  void submit(const std::string& method, const std::string& target, const std::string& body = "") {
    submit_http_request(session, http::parse_request(method, target, body));
    sched.run();
  }

  void set(const std::string& key, const std::string& value) {
    submit("POST", "/set", R"({"key":")" + key + R"(","value":")" + value + R"(","action":"set"})");
  }

  void release(uint64_t which, client_reply result) {
    caf::anon_send(raft, release_atom::value, which, result);
    sched.run();
  }

  boost::json::object body(size_t i) const {
    return boost::json::parse(responses->at(i).body).as_object();
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(pipelined_writes_are_answered_in_request_order) {
  fixture f;
  f.set("k1", "v1");
  f.set("k2", "v2");
  f.set("k3", "v3");
  BOOST_REQUIRE(f.book->proposals.size() == 3u);
  // The Raft node answers in reverse order; nothing may overtake the first response.
  f.release(2, ok_at(12));
  f.release(1, ok_at(11));
  BOOST_TEST(f.responses->empty());
  f.release(0, ok_at(10));
  BOOST_REQUIRE(f.responses->size() == 3u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST(f.responses->at(i).status == 200u);
    BOOST_TEST(f.body(i)["key"].as_string() == "k" + std::to_string(i + 1));
    BOOST_TEST(f.body(i)["index"].to_number<uint64_t>() == 10 + i);
  }
}

BOOST_AUTO_TEST_CASE(fast_answers_wait_behind_a_slow_write) {
  fixture f;
  f.set("k", "v");                                 // held by Raft
  f.submit("GET", "/get?key=a&consistency=stale"); // answered by KV at once
  f.submit("GET", "/nope");                        // codec error, immediate
  f.submit("GET", "/status");
  BOOST_TEST(f.responses->empty());
  f.release(0, ok_at(5));
  BOOST_REQUIRE(f.responses->size() == 4u);
  BOOST_TEST(f.responses->at(0).status == 200u);
  BOOST_TEST(f.body(0)["index"].to_number<uint64_t>() == 5u);
  BOOST_TEST(f.responses->at(1).status == 200u);
  BOOST_TEST(f.body(1)["value"].as_string() == "A");
  BOOST_TEST(f.responses->at(2).status == 404u);
  BOOST_TEST(f.responses->at(3).status == 200u);
  BOOST_TEST(f.body(3)["term"].to_number<uint64_t>() == 4u);
  // Later requests, with nothing in front of them, go straight out.
  f.submit("GET", "/get?key=zzz&consistency=stale");
  BOOST_REQUIRE(f.responses->size() == 5u);
  BOOST_TEST(f.responses->at(4).status == 404u);
}

BOOST_AUTO_TEST_CASE(reads_wait_for_earlier_writes_and_writes_for_earlier_reads) {
  fixture f;
  f.set("k1", "v1");
  f.set("k2", "v2"); // writes pipeline: both reach Raft at once
  f.submit("GET", "/get?key=a");
  f.submit("GET", "/get?key=b");
  f.set("k3", "v3");
  f.submit("GET", "/status"); // does not wait
  BOOST_TEST(f.book->proposals.size() == 2u);
  BOOST_TEST(f.book->reads == 0u);
  f.release(0, ok_at(1));
  BOOST_TEST(f.book->reads == 0u); // k2 still in flight
  f.release(1, ok_at(2));
  BOOST_TEST(f.book->reads == 2u); // both reads start together
  BOOST_TEST(f.book->proposals.size() == 2u);
  f.release(2, ok_at(2));
  BOOST_TEST(f.book->proposals.size() == 2u); // the second read is still in flight
  f.release(3, ok_at(2));
  BOOST_REQUIRE(f.book->proposals.size() == 3u);
  BOOST_TEST(f.book->proposals[2].key == "k3");
  f.release(4, ok_at(3));
  BOOST_REQUIRE(f.responses->size() == 6u);
  std::vector<unsigned> statuses;
  for (const auto& r : *f.responses)
    statuses.push_back(r.status);
  BOOST_TEST(statuses == (std::vector<unsigned>{200, 200, 200, 200, 200, 200}));
  BOOST_TEST(f.body(2)["value"].as_string() == "A");
  BOOST_TEST(f.body(4)["key"].as_string() == "k3");
  BOOST_TEST(f.body(5)["id"].as_string() == "n1");
}

BOOST_AUTO_TEST_CASE(commands_carry_client_id_and_increasing_sequences) {
  fixture f;
  f.set("a", "1");
  f.submit("POST", "/set", R"({"key":"a","action":"delete"})");
  f.submit("POST", "/set", R"({"key":"bad"})"); // rejected by the codec: takes no sequence
  f.set("b", "2");
  BOOST_REQUIRE(f.book->proposals.size() == 3u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST(f.book->proposals[i].client_id == 0xC0FFEEu);
    BOOST_TEST(f.book->proposals[i].sequence == i + 1);
  }
  BOOST_TEST((f.book->proposals[1].op == kv_op::del));
  BOOST_TEST(f.book->proposals[2].key == "b");
  BOOST_TEST(f.book->proposals[2].value == "2");
}

BOOST_AUTO_TEST_CASE(write_status_mapping) {
  fixture f;
  f.set("k", "v");
  f.set("k", "v");
  f.set("k", "v");
  f.set("k", "v");
  f.set("k", "v");
  f.release(0, reply_of(reply_status::not_leader, 0, 3, "n2"));
  f.release(1, reply_of(reply_status::no_leader, 0, 3, ""));
  f.release(2, reply_of(reply_status::leadership_lost, 9, 3, ""));
  f.release(3, reply_of(reply_status::timeout, 9, 3, "n1"));
  f.release(4, reply_of(reply_status::stopping, 0, 3, "n1"));
  BOOST_REQUIRE(f.responses->size() == 5u);
  BOOST_TEST(f.responses->at(0).status == 503u);
  BOOST_TEST(*f.responses->at(0).header("Retry-After") == "1");
  BOOST_TEST(f.body(0)["leader"].as_string() == "n2");
  BOOST_TEST(f.responses->at(1).status == 503u);
  BOOST_TEST(f.body(1)["leader"].is_null());
  for (size_t i = 2; i < 5; ++i) {
    BOOST_TEST(f.responses->at(i).status == 500u);
    BOOST_TEST(f.body(i)["error"].as_string().find("may or may not") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(linearizable_reads_pass_the_read_barrier) {
  fixture f;
  f.submit("GET", "/get?key=a");
  f.submit("GET", "/get?key=missing");
  f.submit("GET", "/get?key=b");
  BOOST_TEST(f.book->reads == 3u);
  BOOST_TEST(f.responses->empty()); // no local read before the barrier
  f.release(0, ok_at(3));
  f.release(1, ok_at(3));
  f.release(2, reply_of(reply_status::not_leader, 0, 2, "n3"));
  BOOST_REQUIRE(f.responses->size() == 3u);
  BOOST_TEST(f.responses->at(0).status == 200u);
  BOOST_TEST(f.body(0)["value"].as_string() == "A");
  BOOST_TEST(f.responses->at(1).status == 404u);
  BOOST_TEST(f.responses->at(2).status == 503u);
  BOOST_TEST(f.body(2)["leader"].as_string() == "n3");

  // Stale reads never take the read barrier.
  f.submit("GET", "/get?key=b&consistency=stale");
  BOOST_TEST(f.book->reads == 3u);
  BOOST_TEST(f.body(3)["value"].as_string() == "B");
}

// A removed node answers 409 "removed" to reads of both kinds: a stale read must not serve its
// frozen copy as if it were a member's.
BOOST_AUTO_TEST_CASE(a_removed_node_refuses_stale_and_linearizable_reads) {
  fixture f;
  f.view->set_removed_at_index(9); // what the Raft node publishes
  f.submit("GET", "/get?key=a&consistency=stale");
  f.submit("GET", "/get?key=a");
  auto removed = reply_of(reply_status::removed, 0, 4, "");
  removed.reason = "this node was removed from the cluster (configuration at index 9)";
  f.release(0, removed);
  BOOST_REQUIRE(f.responses->size() == 2u);
  for (size_t i = 0; i < 2; ++i) {
    BOOST_TEST(f.responses->at(i).status == 409u);
    BOOST_TEST(f.body(i)["reason"].as_string() == "removed");
    BOOST_TEST(f.body(i)["error"].as_string().find("index 9") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(unanswered_requests_time_out) {
  fixture f{[](http_session_config& c) {
    c.write_timeout = 5s;
    c.read_timeout = 2s;
    c.status_timeout = 1s;
  }};
  f.set("k", "v");               // never answered
  f.submit("GET", "/get?key=a"); // waits for the write, then is never answered either
  f.sched.advance_time(4999ms);
  f.sched.run();
  BOOST_TEST(f.responses->empty());
  BOOST_TEST(f.book->reads == 0u);
  f.sched.advance_time(1ms);
  f.sched.run();
  BOOST_REQUIRE(f.responses->size() == 1u);
  BOOST_TEST(f.responses->at(0).status == 500u);
  auto write_error = std::string{f.body(0)["error"].as_string()};
  BOOST_TEST(write_error.find("5000 ms") != std::string::npos, write_error);
  BOOST_TEST(write_error.find("may or may not") != std::string::npos);
  BOOST_TEST(f.book->reads == 1u); // the read starts once the write is answered
  f.sched.advance_time(1999ms);
  f.sched.run();
  BOOST_TEST(f.responses->size() == 1u);
  f.sched.advance_time(1ms);
  f.sched.run();
  BOOST_REQUIRE(f.responses->size() == 2u);
  BOOST_TEST(f.responses->at(1).status == 503u);
  BOOST_TEST(*f.responses->at(1).header("Retry-After") == "1");
  // Answers that come after their deadline are dropped: each request is answered once.
  f.release(0, ok_at(7));
  f.release(1, ok_at(7));
  BOOST_TEST(f.responses->size() == 2u);
  f.submit("GET", "/get?key=a&consistency=stale");
  BOOST_REQUIRE(f.responses->size() == 3u);
  BOOST_TEST(f.body(2)["value"].as_string() == "A");
}

BOOST_AUTO_TEST_CASE(status_times_out) {
  // A Raft stand-in that never answers anything.
  fixture f{[](http_session_config& c) { c.status_timeout = 1s; }};
  // Spawned with an argument: CAF 0.17's init_fun_factory dereferences a null argument tuple
  // for functions without one (UBSan reports it).
  using promises = std::shared_ptr<std::vector<caf::response_promise>>;
  auto silent = f.sys.spawn(
      [](caf::event_based_actor* self, promises held) -> caf::behavior {
        return {[=](status_atom) -> caf::result<raft_status> {
          held->push_back(self->make_response_promise());
          return caf::delegated<raft_status>{};
        }};
      },
      std::make_shared<std::vector<caf::response_promise>>());
  http_session_config config;
  // Only the status request matters here: a partial stand-in is enough (and cast like a remote).
  config.raft = caf::actor_cast<raft_node_actor>(silent);
  config.view = f.view;
  config.status_timeout = 1s;
  auto sink = f.responses;
  auto session = spawn_http_session(
      f.sys, config, [sink](http::api_response r) { sink->push_back(std::move(r)); });
  submit_http_request(session, http::parse_request("GET", "/status", ""));
  f.sched.run();
  BOOST_TEST(f.responses->empty());
  f.sched.advance_time(1s);
  f.sched.run();
  BOOST_REQUIRE(f.responses->size() == 1u);
  BOOST_TEST(f.responses->at(0).status == 503u);
  for (auto& actor : {silent, session})
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  f.sched.run();
}

BOOST_AUTO_TEST_CASE(dead_raft_node_fails_requests_without_hanging) {
  fixture f;
  caf::anon_send_exit(f.raft, caf::exit_reason::kill);
  f.sched.run();
  f.set("k", "v");
  f.submit("GET", "/get?key=a");
  f.submit("GET", "/status");
  f.sched.run();
  // Requests to a dead local actor fail at once (request_receiver_down), or at their timeout.
  while (f.responses->size() < 3 && f.sched.has_pending_timeout()) {
    f.sched.trigger_timeouts();
    f.sched.run();
  }
  BOOST_REQUIRE(f.responses->size() == 3u);
  BOOST_TEST(f.responses->at(0).status == 500u);
  BOOST_TEST(f.responses->at(1).status == 503u);
  BOOST_TEST(f.responses->at(2).status == 503u);
}

BOOST_AUTO_TEST_CASE(redirect_to_leader_when_asked_and_known) {
  fixture f;
  // A follower that knows the leader and the HTTP address it advertises.
  f.book->status.role = raft_role::follower;
  f.book->status.leader_id = "n2";
  f.book->status.leader_http = "127.0.0.1:8011";
  f.submit("POST", "/set?redirect=true", R"({"key":"k","value":"v","action":"set"})");
  f.submit("GET", "/get?key=a&redirect=1");
  f.submit("GET", "/get?key=a"); // no redirect asked: forwarded through Raft
  BOOST_REQUIRE(f.responses->size() == 2u);
  BOOST_TEST(f.responses->at(0).status == 307u);
  BOOST_TEST(*f.responses->at(0).header("Location") == "http://127.0.0.1:8011/set?redirect=true");
  BOOST_TEST(f.responses->at(1).status == 307u);
  BOOST_TEST(*f.responses->at(1).header("Location") ==
             "http://127.0.0.1:8011/get?key=a&redirect=1");
  BOOST_TEST(f.book->proposals.empty());
  BOOST_REQUIRE(f.book->reads == 1u);
  f.release(0, ok_at(3));
  BOOST_REQUIRE(f.responses->size() == 3u);
  BOOST_TEST(f.responses->at(2).status == 200u);

  // No leader known, or its address unknown: nothing to redirect to, the request goes through
  // Raft and fails there like any other.
  f.book->status.leader_id.clear();
  f.book->status.leader_http.clear();
  f.submit("GET", "/get?key=a&redirect=1");
  f.book->status.leader_id = "n9";
  f.submit("POST", "/set?redirect=1", R"({"key":"k","value":"v","action":"set"})");
  BOOST_REQUIRE(f.book->reads == 2u);
  f.release(1, reply_of(reply_status::no_leader, 0, 4, ""));
  BOOST_REQUIRE(f.book->proposals.size() == 1u); // the write waited for the read before it
  f.release(2, reply_of(reply_status::not_leader, 0, 4, "n9"));
  BOOST_REQUIRE(f.responses->size() == 5u);
  BOOST_TEST(f.responses->at(3).status == 503u);
  BOOST_TEST(f.responses->at(4).status == 503u);
}

BOOST_AUTO_TEST_CASE(probes_and_metrics_keep_their_place_and_read_the_raft_status) {
  auto counters = std::make_shared<metrics::node_metrics>();
  counters->record_request(metrics::route::get, 200, 1'000'000);
  auto storage = std::make_shared<std::string>();
  fixture f{[&](http_session_config& c) {
    c.metrics = counters;
    c.readiness.max_lag = 5;
    c.storage_check = [storage] { return *storage; };
  }};
  f.book->status.leader_commit = 10;
  f.book->status.applied_index = 10;
  f.set("k", "v"); // held: the probes behind it wait for their turn (pipelining order)
  f.submit("GET", "/health");
  f.submit("GET", "/ready");
  f.submit("GET", "/metrics");
  f.submit("GET", "/ui");
  BOOST_TEST(f.responses->empty());
  f.release(0, ok_at(11));
  BOOST_REQUIRE(f.responses->size() == 5u);
  BOOST_TEST(f.responses->at(1).status == 200u);
  BOOST_TEST(f.body(1)["status"].as_string() == "ok");
  BOOST_TEST(f.responses->at(2).status == 200u);
  BOOST_TEST(f.body(2)["ready"].as_bool());
  const auto& text = f.responses->at(3);
  BOOST_TEST(text.content_type.rfind("text/plain; version=0.0.4", 0) == 0u);
  BOOST_TEST(text.body.find("infinity_raft_term 4\n") != std::string::npos);
  BOOST_TEST(text.body.find(R"(infinity_http_requests_total{route="/get",code="200"} 1)") !=
             std::string::npos);
  BOOST_TEST(f.responses->at(4).content_type == "text/html; charset=utf-8");

  // Lagging, leaderless and storage problems each make /ready 503 and say so.
  f.book->status.applied_index = 4;
  f.book->status.leader_id.clear();
  *storage = "/data is on a read-only file system";
  f.submit("GET", "/ready");
  BOOST_REQUIRE(f.responses->size() == 6u);
  BOOST_TEST(f.responses->at(5).status == 503u);
  BOOST_TEST(f.body(5)["reasons"].as_array().size() == 3u);
  // Liveness does not depend on the cluster.
  f.submit("GET", "/health");
  BOOST_TEST(f.responses->at(6).status == 200u);
}

BOOST_AUTO_TEST_CASE(probes_fail_when_the_raft_node_is_gone) {
  fixture f;
  caf::anon_send_exit(f.raft, caf::exit_reason::kill);
  f.sched.run();
  f.submit("GET", "/health");
  f.submit("GET", "/ready");
  f.submit("GET", "/metrics");
  while (f.responses->size() < 3 && f.sched.has_pending_timeout()) {
    f.sched.trigger_timeouts();
    f.sched.run();
  }
  BOOST_REQUIRE(f.responses->size() == 3u);
  BOOST_TEST(f.responses->at(0).status == 503u);
  BOOST_TEST(f.body(0)["status"].as_string() == "unavailable");
  BOOST_TEST(f.responses->at(1).status == 503u);
  BOOST_TEST(!f.body(1)["ready"].as_bool());
  BOOST_TEST(f.responses->at(2).status == 503u);
}
