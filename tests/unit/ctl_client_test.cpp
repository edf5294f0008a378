// infinityctl's failover, redirects, retries, exit statuses and output, against a scripted
// network and a simulated clock.
#define BOOST_TEST_MODULE ctl_client
#include <boost/test/unit_test.hpp>

#include <deque>
#include <map>

#include <boost/json.hpp>

#include "app/ctl/ctl_commands.hpp"

using namespace infinity::ctl;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// Answers each endpoint (by display name) from its queue of scripted results; an endpoint
/// without one is unreachable. Every exchange takes 1 ms; a timeout lasts until the deadline.
class scripted_io : public client_io {
 public:
  struct sent {
    std::string to;
    http_request request;
    clock::duration time_left;
  };

  std::map<std::string, std::deque<exchange_result>> script;
  /// Answers for an endpoint whose queue ran dry (default: unreachable).
  std::map<std::string, exchange_result> forever;
  std::vector<sent> log;
  std::vector<clock::duration> sleeps;
  clock::time_point time{std::chrono::hours{1}};

  exchange_result exchange(const endpoint& to, const http_request& request,
                           clock::time_point deadline) override {
    log.push_back({to.display(), request, deadline - time});
    time += 1ms;
    auto& queue = script[to.display()];
    exchange_result result = transport_error{transport_error::kind::unreachable, false,
                                             "cannot connect: Connection refused"};
    if (!queue.empty()) {
      result = queue.front();
      queue.pop_front();
    } else if (auto it = forever.find(to.display()); it != forever.end()) {
      result = it->second;
    }
    if (auto* error = std::get_if<transport_error>(&result);
        error && error->what == transport_error::kind::timeout)
      time = std::max(time, deadline);
    return result;
  }
  clock::time_point now() override { return time; }
  void sleep_until(clock::time_point until) override {
    sleeps.push_back(until - time);
    time = until;
  }

  std::vector<std::string> targets() const {
    std::vector<std::string> out;
    for (const auto& entry : log)
      out.push_back(entry.to + " " + entry.request.method + " " + entry.request.target);
    return out;
  }
};

http_reply reply(unsigned status, std::string body, std::string location = {},
                 std::string retry_after = {}) {
  return http_reply{status, std::move(body), std::move(location), std::move(retry_after)};
}

http_reply no_leader() {
  return reply(503, R"({"error":"no leader known","leader":null})", {}, "1");
}

transport_error timed_out() {
  return transport_error{transport_error::kind::timeout, true, "while waiting for the response"};
}

command_line make_line(const std::vector<std::string>& args) {
  auto outcome = parse_command_line(args);
  BOOST_REQUIRE_MESSAGE(outcome.what == parse_outcome::action::run, outcome.text);
  return outcome.line;
}

/// Three endpoints a, b, c on ports 1, 2, 3 unless the args say otherwise.
command_output run(scripted_io& io, std::vector<std::string> args, const std::string& token = {}) {
  args.insert(args.begin(), {"--endpoints", "a:1,b:2,c:3"});
  return run_command(io, make_line(args), token);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

json::value parse(const std::string& text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  BOOST_REQUIRE_MESSAGE(!ec, "not JSON: " << text);
  return value;
}

const std::string status_a =
    R"({"id":"n1","role":"follower","term":2,"leader":"n2","commit_index":7,"applied_index":7,)"
    R"("last_log_index":7,"members":["n1","n2","n3"],"leader_http":"b:2","leader_raft":"b:12"})";
const std::string status_b =
    R"({"id":"n2","role":"leader","term":2,"leader":"n2","commit_index":7,"applied_index":7,)"
    R"("last_log_index":8,"members":["n1","n2","n3"],"leader_http":"b:2","leader_raft":"b:12"})";

} // namespace

BOOST_AUTO_TEST_SUITE(writes_and_reads)

BOOST_AUTO_TEST_CASE(put_sends_json_and_prints_ok_with_the_index) {
  scripted_io io;
  io.script["a:1"] = {reply(200, R"({"key":"k","action":"set","index":7})")};
  auto out = run(io, {"put", "k", "hello \"world\" \xC3\xBC"}, "tok");
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "OK (index 7)\n");
  BOOST_TEST(out.err.empty());
  BOOST_REQUIRE(io.log.size() == 1u);
  const auto& request = io.log[0].request;
  BOOST_TEST(request.method == "POST");
  BOOST_TEST(request.target == "/set");
  BOOST_TEST(request.bearer_token == "tok");
  auto body = parse(request.body).as_object();
  BOOST_TEST(body.at("key").as_string() == "k");
  BOOST_TEST(body.at("value").as_string() == "hello \"world\" \xC3\xBC");
  BOOST_TEST(body.at("action").as_string() == "set");
  // Each request may take --timeout (5 s by default).
  BOOST_TEST((io.log[0].time_left == clock::duration{5s}));
}

BOOST_AUTO_TEST_CASE(del_and_json_output) {
  scripted_io io;
  const std::string server = R"({"key":"k","action":"delete","index":9})";
  io.script["a:1"] = {reply(200, server), reply(200, server)};
  auto out = run(io, {"del", "k"});
  BOOST_TEST(out.out == "OK (index 9)\n");
  auto body = parse(io.log[0].request.body).as_object();
  BOOST_TEST(body.at("action").as_string() == "delete");
  BOOST_TEST(!body.contains("value"));
  auto as_json = run(io, {"-o", "json", "del", "k"});
  BOOST_TEST(as_json.out == server + "\n");
}

BOOST_AUTO_TEST_CASE(get_prints_the_bare_value) {
  scripted_io io;
  io.script["a:1"] = {reply(200, R"({"key":"k v","value":"line one\nzwei \u00fc"})"),
                      reply(200, R"({"key":"k","value":"x"})")};
  auto out = run(io, {"get", "k v"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "line one\nzwei \xC3\xBC\n");
  BOOST_TEST(io.log[0].request.method == "GET");
  BOOST_TEST(io.log[0].request.target == "/get?key=k%20v");
  run(io, {"get", "--consistency", "stale", "k"});
  BOOST_TEST(io.log[1].request.target == "/get?key=k&consistency=stale");
}

BOOST_AUTO_TEST_CASE(missing_key_exits_1_and_a_foreign_404_exits_3) {
  scripted_io io;
  io.script["a:1"] = {reply(404, R"({"error":"key not found","key":"k"})"),
                      reply(404, R"({"error":"no such endpoint: '/get'"})")};
  auto missing = run(io, {"get", "k"});
  BOOST_TEST(missing.exit_code == exit_not_found);
  BOOST_TEST(missing.out.empty());
  BOOST_TEST(contains(missing.err, "key 'k' not found"), missing.err);
  auto foreign = run(io, {"get", "k"});
  BOOST_TEST(foreign.exit_code == exit_unavailable);
  BOOST_TEST(contains(foreign.err, "does not support get (404"), foreign.err);
}

BOOST_AUTO_TEST_CASE(client_errors_exit_4_with_the_servers_message) {
  for (unsigned status : {400u, 401u, 403u, 409u, 413u}) {
    scripted_io io;
    io.script["a:1"] = {reply(status, R"({"error":"value too large, sorry"})")};
    auto out = run(io, {"put", "k", "v"});
    BOOST_TEST(out.exit_code == exit_refused, status);
    BOOST_TEST(out.out.empty());
    BOOST_TEST(contains(out.err,
                        "refused by a:1 (" + std::to_string(status) + "): value too large, sorry"),
               out.err);
    BOOST_TEST(io.log.size() == 1u, "a refusal is final, not a reason to fail over");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(failover)

BOOST_AUTO_TEST_CASE(unreachable_and_503_endpoints_are_skipped_in_order) {
  scripted_io io;
  io.script["b:2"] = {no_leader()};
  io.script["c:3"] = {reply(200, R"({"key":"k","value":"v"})")};
  auto out = run(io, {"get", "k"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "v\n");
  BOOST_TEST(io.targets() == (std::vector<std::string>{"a:1 GET /get?key=k", "b:2 GET /get?key=k",
                                                       "c:3 GET /get?key=k"}));
  BOOST_TEST(io.sleeps.empty());
}

BOOST_AUTO_TEST_CASE(nothing_listening_anywhere_fails_at_once) {
  scripted_io io;
  auto out = run(io, {"get", "k"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(io.log.size() == 3u, "one round only");
  BOOST_TEST(io.sleeps.empty());
  for (const char* name : {"a:1: cannot connect", "b:2: cannot connect", "c:3: cannot connect"})
    BOOST_TEST(contains(out.err, name), out.err);
  BOOST_TEST(out.err.find('\n') == out.err.size() - 1, "one line: " << out.err);
}

BOOST_AUTO_TEST_CASE(a_cluster_without_leader_is_retried_until_it_has_one) {
  scripted_io io;
  // Two rounds of 503 (an election), then the leader answers.
  io.script["a:1"] = {no_leader(), no_leader()};
  io.script["b:2"] = {no_leader(), no_leader(),
                      reply(200, R"({"key":"k","action":"set",)"
                                 R"("index":3})")};
  io.script["c:3"] = {no_leader(), no_leader()};
  auto out = run(io, {"put", "k", "v"});
  BOOST_TEST(out.exit_code == exit_ok, out.err);
  BOOST_TEST(io.log.size() == 8u);
  // Retry-After: 1 is honoured between rounds.
  BOOST_TEST((io.sleeps == std::vector<clock::duration>{1s, 1s}));
}

BOOST_AUTO_TEST_CASE(retries_stop_at_the_command_timeout) {
  scripted_io io;
  for (const char* name : {"a:1", "b:2", "c:3"})
    io.forever[name] = no_leader();
  auto start = io.time;
  auto out = run(io, {"--command-timeout", "3s", "get", "k"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(contains(out.err, "503 no leader known"), out.err);
  BOOST_TEST(contains(out.err, "gave up after --command-timeout 3s"), out.err);
  BOOST_TEST((io.time - start <= clock::duration{3s}));
  BOOST_TEST(io.sleeps.size() == 2u);
}

BOOST_AUTO_TEST_CASE(timeouts_fail_over_within_the_command_deadline) {
  scripted_io io;
  io.script["a:1"] = {timed_out()};
  io.script["b:2"] = {timed_out()};
  io.script["c:3"] = {timed_out()};
  auto out = run(io, {"--timeout", "2s", "--command-timeout", "5s", "get", "k"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  // a and b get 2 s each; c only what is left of the 5 s.
  BOOST_REQUIRE(io.log.size() == 3u);
  BOOST_TEST((io.log[0].time_left == clock::duration{2s}));
  BOOST_TEST((io.log[2].time_left < clock::duration{1s + 1ms}));
  BOOST_TEST(contains(out.err, "a:1: no answer within --timeout 2s"), out.err);
  BOOST_TEST(contains(out.err, "c:3: --command-timeout 5s expired"), out.err);
}

BOOST_AUTO_TEST_CASE(a_write_that_timed_out_everywhere_has_an_unknown_outcome) {
  scripted_io io;
  for (const char* name : {"a:1", "b:2", "c:3"})
    io.forever[name] = timed_out();
  auto out = run(io, {"--timeout", "1s", "--command-timeout", "2500ms", "put", "k", "v"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(contains(out.err, "may or may not have taken effect"), out.err);
}

BOOST_AUTO_TEST_CASE(a_write_answered_500_is_not_retried) {
  scripted_io io;
  io.script["a:1"] = {reply(500, R"({"error":"request timed out","reason":"timeout"})")};
  io.script["b:2"] = {reply(200, R"({"key":"k","action":"set","index":3})")};
  auto out = run(io, {"put", "k", "v"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(io.log.size() == 1u);
  BOOST_TEST(contains(out.err, "a:1 answered 500: request timed out; the put may or may not"),
             out.err);
}

BOOST_AUTO_TEST_CASE(a_read_answered_500_fails_over) {
  scripted_io io;
  io.script["a:1"] = {reply(500, R"({"error":"internal"})")};
  io.script["b:2"] = {reply(200, R"({"key":"k","value":"v"})")};
  auto out = run(io, {"get", "k"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "v\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redirects)

BOOST_AUTO_TEST_CASE(a_307_is_followed_with_the_same_method_and_body) {
  scripted_io io;
  io.script["a:1"] = {
      reply(307, R"({"error":"not the leader","leader":"n2"})", "http://b:2/set?redirect=1")};
  io.script["b:2"] = {reply(200, R"({"key":"k","action":"set","index":4})")};
  auto out = run(io, {"put", "k", "v"}, "tok");
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "OK (index 4)\n");
  BOOST_REQUIRE(io.log.size() == 2u);
  BOOST_TEST(io.log[1].to == "b:2");
  BOOST_TEST(io.log[1].request.target == "/set?redirect=1");
  BOOST_TEST(io.log[1].request.method == "POST");
  BOOST_TEST(io.log[1].request.body == io.log[0].request.body);
  BOOST_TEST(io.log[1].request.bearer_token == "tok");
}

BOOST_AUTO_TEST_CASE(at_most_three_hops_then_the_next_endpoint) {
  scripted_io io;
  // a -> x -> y -> z -> x ...: a loop; after 3 hops a is given up and b asked.
  io.script["a:1"] = {reply(307, "", "http://x:9/get?key=k")};
  io.script["x:9"] = {reply(307, "", "http://y:9/get?key=k")};
  io.script["y:9"] = {reply(307, "", "http://z:9/get?key=k")};
  io.script["z:9"] = {reply(307, "", "http://x:9/get?key=k")};
  io.script["b:2"] = {reply(200, R"({"key":"k","value":"v"})")};
  auto out = run(io, {"get", "k"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(io.targets() == (std::vector<std::string>{"a:1 GET /get?key=k", "x:9 GET /get?key=k",
                                                       "y:9 GET /get?key=k", "z:9 GET /get?key=k",
                                                       "b:2 GET /get?key=k"}));
}

BOOST_AUTO_TEST_CASE(a_redirect_loop_everywhere_exits_3) {
  scripted_io io;
  io.forever["a:1"] = reply(307, "", "/get?key=k");
  auto out = run_command(io, make_line({"--endpoints", "a:1", "get", "k"}), "");
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(contains(out.err, "more than 3 redirects"), out.err);
  BOOST_TEST(io.log.size() == 4u);
}

BOOST_AUTO_TEST_CASE(no_downgrade_from_https_to_http) {
  scripted_io io;
  io.script["https://a:1"] = {reply(307, "", "http://b:2/get?key=k")};
  auto out = run_command(io, make_line({"--endpoints", "https://a:1", "get", "k"}), "tok");
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(contains(out.err, "refusing a redirect from https to b:2"), out.err);
  BOOST_TEST(io.log.size() == 1u, "nothing, token included, sent in the clear");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cluster_commands)

BOOST_AUTO_TEST_CASE(status_asks_every_endpoint) {
  scripted_io io;
  io.script["a:1"] = {reply(200, status_a)};
  io.script["b:2"] = {reply(200, status_b)};
  io.script["c:3"] = {reply(200, status_a)};
  auto out = run(io, {"status"});
  BOOST_TEST(out.exit_code == exit_ok, out.err);
  BOOST_TEST(out.out == "ENDPOINT  ID  ROLE      TERM  LEADER  COMMIT  APPLIED  LAST INDEX\n"
                        "a:1       n1  follower  2     n2      7       7        7\n"
                        "b:2       n2  leader    2     n2      7       7        8\n"
                        "c:3       n1  follower  2     n2      7       7        7\n");
}

BOOST_AUTO_TEST_CASE(status_with_an_endpoint_down_exits_3_and_lists_the_rest) {
  scripted_io io;
  io.script["a:1"] = {reply(200, status_a)};
  io.script["c:3"] = {reply(200, status_b)};
  auto out = run(io, {"-o", "json", "status"});
  BOOST_TEST(out.exit_code == exit_unavailable);
  BOOST_TEST(contains(out.err, "b:2: cannot connect"), out.err);
  auto document = parse(out.out).as_object();
  auto& endpoints = document.at("endpoints").as_array();
  BOOST_REQUIRE(endpoints.size() == 3u);
  BOOST_TEST(endpoints[0].at("endpoint").as_string() == "a:1");
  BOOST_TEST(endpoints[0].at("status").at("id").as_string() == "n1");
  BOOST_TEST(endpoints[1].as_object().contains("error"));
  BOOST_TEST(endpoints[2].at("status").at("role").as_string() == "leader");
}

BOOST_AUTO_TEST_CASE(members_from_status_when_the_server_has_no_members_endpoint) {
  scripted_io io;
  io.script["a:1"] = {reply(404, R"({"error":"no such endpoint: '/members'"})"),
                      reply(200, status_a)};
  io.script["b:2"] = {reply(200, status_b)};
  io.script["c:3"] = {reply(200, status_a)};
  auto out = run(io, {"members"});
  BOOST_TEST(out.exit_code == exit_ok, out.err);
  BOOST_TEST(out.out == "ID  LEADER  HTTP ADDR  RAFT ADDR\n"
                        "n1  no      a:1        -\n"
                        "n2  yes     b:2        b:12\n"
                        "n3  no      -          -\n");
  BOOST_TEST(io.log[0].request.target == "/members");
}

BOOST_AUTO_TEST_CASE(members_as_json_and_with_endpoints_down) {
  scripted_io io;
  io.script["a:1"] = {reply(404, R"({"error":"no such endpoint: '/members'"})"),
                      reply(200, status_a)};
  auto out = run(io, {"-o", "json", "members"});
  BOOST_TEST(out.exit_code == exit_ok, out.err);
  BOOST_TEST(contains(out.err, "warning: b:2: cannot connect"), out.err);
  auto document = parse(out.out).as_object();
  BOOST_TEST(document.at("leader").as_string() == "n2");
  auto& members = document.at("members").as_array();
  BOOST_REQUIRE(members.size() == 3u);
  BOOST_TEST(members[1].at("id").as_string() == "n2");
  BOOST_TEST(members[1].at("leader").as_bool());
  BOOST_TEST(members[1].at("http_addr").as_string() == "b:2");
  BOOST_TEST(members[2].at("http_addr").is_null());
}

BOOST_AUTO_TEST_CASE(a_members_endpoint_is_used_when_there_is_one) {
  scripted_io io;
  const std::string server =
      R"({"members":[{"id":"n1","raft_addr":"a:11"},{"id":"n2","raft_addr":"b:12"}]})";
  io.script["a:1"] = {reply(200, server), reply(200, server)};
  auto table = run(io, {"members"});
  BOOST_TEST(table.exit_code == exit_ok);
  BOOST_TEST(table.out == "ID  RAFT ADDR\nn1  a:11\nn2  b:12\n");
  auto as_json = run(io, {"-o", "json", "members"});
  BOOST_TEST(as_json.out == server + "\n");
  BOOST_TEST(io.log.size() == 2u, "no /status needed");
}

BOOST_AUTO_TEST_CASE(join_sends_the_id_and_address) {
  scripted_io io;
  io.script["a:1"] = {reply(200, R"({"nodeid":"n4","nodeaddr":"127.0.0.1:9030","index":12})")};
  auto out = run(io, {"join", "n4", "127.0.0.1:9030"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "OK (index 12)\n");
  BOOST_TEST(io.log[0].request.method == "POST");
  BOOST_TEST(io.log[0].request.target == "/join?nodeid=n4&nodeaddr=127.0.0.1%3A9030");
}

BOOST_AUTO_TEST_CASE(unsupported_commands_exit_3_with_a_clear_message) {
  scripted_io io;
  const auto unknown_path = reply(404, R"({"error":"no such endpoint: '/remove'"})");
  io.script["a:1"] = {unknown_path, unknown_path, unknown_path};
  auto remove = run(io, {"remove", "n3"});
  BOOST_TEST(remove.exit_code == exit_unavailable);
  BOOST_TEST(contains(remove.err, "this server does not support remove (404"), remove.err);
  BOOST_TEST(io.log[0].request.target == "/remove?nodeid=n3");
  auto transfer = run(io, {"transfer-leader"});
  BOOST_TEST(transfer.exit_code == exit_unavailable);
  BOOST_TEST(contains(transfer.err, "does not support transfer-leader (404"), transfer.err);
  BOOST_TEST(io.log[1].request.target == "/transfer-leader");
  run(io, {"transfer-leader", "n2"});
  BOOST_TEST(io.log[2].request.target == "/transfer-leader?nodeid=n2");
  BOOST_TEST(io.log.size() == 3u, "a 404 is final");
}

BOOST_AUTO_TEST_CASE(a_server_supporting_remove_gets_ok) {
  scripted_io io;
  io.script["a:1"] = {reply(200, R"({"nodeid":"n3","index":20})")};
  auto out = run(io, {"remove", "n3"});
  BOOST_TEST(out.exit_code == exit_ok);
  BOOST_TEST(out.out == "OK (index 20)\n");
}

BOOST_AUTO_TEST_SUITE_END()
