#define BOOST_TEST_MODULE http_api
#include <boost/test/unit_test.hpp>

#include <boost/json.hpp>

#include "net/http_api.hpp"

using namespace infinity;
using namespace infinity::http;

namespace {

client_reply make_reply(reply_status status, uint64_t index, uint64_t term, std::string leader) {
  client_reply reply;
  reply.status = status;
  reply.index = index;
  reply.term = term;
  reply.leader_id = std::move(leader);
  return reply;
}

} // namespace

namespace {

api_request expect_request(const parsed_request& parsed) {
  if (auto* error = std::get_if<api_error>(&parsed))
    BOOST_FAIL("expected a request, got " << error->status << " " << error->message);
  return std::get<api_request>(parsed);
}

api_error expect_error(const parsed_request& parsed, unsigned status) {
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<api_error>(parsed), "expected an error");
  auto error = std::get<api_error>(parsed);
  BOOST_TEST(error.status == status, "status " << error.status << ": " << error.message);
  BOOST_TEST(!error.message.empty());
  return error;
}

api_error set_error(const std::string& body, unsigned status = 400) {
  return expect_error(parse_request("POST", "/set", body), status);
}

boost::json::object body_of(const api_response& response) {
  return boost::json::parse(response.body).as_object();
}

} // namespace

// -- POST /set
// -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(set_and_delete_parse) {
  auto set =
      expect_request(parse_request("POST", "/set", R"({"key":"k","value":"v","action":"set"})"));
  const auto& write = std::get<write_request>(set.body);
  BOOST_TEST(write.command.key == "k");
  BOOST_TEST(write.command.value == "v");
  BOOST_TEST((write.command.op == kv_op::set));
  BOOST_TEST(write.command.client_id == 0u);
  BOOST_TEST(!set.redirect);

  auto del = expect_request(parse_request("POST", "/set", R"({"key":"k","action":"delete"})"));
  BOOST_TEST((std::get<write_request>(del.body).command.op == kv_op::del));
  // A value on delete is ignored whatever its type; unknown members are ignored.
  expect_request(parse_request("POST", "/set", R"({"key":"k","action":"delete","value":7,"x":1})"));
  // Empty values are values.
  auto empty =
      expect_request(parse_request("POST", "/set", R"({"key":"k","value":"","action":"set"})"));
  BOOST_TEST(std::get<write_request>(empty.body).command.value.empty());
}

BOOST_AUTO_TEST_CASE(set_json_escapes_and_unicode_round_trip) {
  auto req = expect_request(parse_request(
      "POST", "/set", R"({"key":"k\"\\\n\u00e9\ud83d\ude00","value":"a\u0000b","action":"set"})"));
  const auto& cmd = std::get<write_request>(req.body).command;
  BOOST_TEST(cmd.key == "k\"\\\n\xc3\xa9\xf0\x9f\x98\x80");
  BOOST_TEST(cmd.value == std::string("a\0b", 3));
  // And back out: valid JSON that decodes to the same bytes.
  auto response = get_response(cmd.key, true, cmd.value);
  auto body = body_of(response);
  BOOST_TEST(body["key"].as_string() == cmd.key);
  BOOST_TEST(std::string(body["value"].as_string().c_str(), body["value"].as_string().size()) ==
             cmd.value);
  BOOST_TEST(response.body.find('\n') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(set_rejects_bad_bodies_with_400) {
  set_error("");
  set_error("not json");
  set_error(R"({"key":"k","value":"v","action":"set"} trailing)");
  set_error(R"({"key":"k","value":"v",)");
  set_error(R"(["key","value"])");
  set_error(R"("just a string")");
  set_error("null");
  set_error(R"({"value":"v","action":"set"})");         // missing key
  set_error(R"({"key":5,"value":"v","action":"set"})"); // non-string key
  set_error(R"({"key":null,"value":"v","action":"set"})");
  set_error(R"({"key":"","value":"v","action":"set"})");  // empty key
  set_error(R"({"key":"k","value":"v"})");                // missing action
  set_error(R"({"key":"k","value":"v","action":1})");     // non-string action
  set_error(R"({"key":"k","value":"v","action":"SET"})"); // unknown action
  set_error(R"({"key":"k","value":"v","action":"remove"})");
  set_error(R"({"key":"k","action":"set"})");            // set without value
  set_error(R"({"key":"k","value":42,"action":"set"})"); // non-string value
  set_error(R"({"key":"k","value":{"a":1},"action":"set"})");
  set_error("{\"key\":\"\xff\",\"value\":\"v\",\"action\":\"set\"}"); // invalid UTF-8 in JSON
  auto error = set_error(R"({"key":"k","value":"v"})");
  BOOST_TEST(error.message.find("action") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(set_limits) {
  api_limits limits;
  std::string key(limits.max_key_bytes, 'k');
  expect_request(parse_request("POST", "/set", R"({"key":")" + key + R"(","action":"delete"})"));
  expect_error(parse_request("POST", "/set", R"({"key":")" + key + R"(k","action":"delete"})"),
               400);

  std::string value(limits.max_value_bytes, 'v');
  expect_request(
      parse_request("POST", "/set", R"({"key":"k","value":")" + value + R"(","action":"set"})"));
  expect_error(
      parse_request("POST", "/set", R"({"key":"k","value":")" + value + R"(v","action":"set"})"),
      413);

  api_limits small{100, 10, 20};
  std::string body(101, ' ');
  expect_error(parse_request("POST", "/set", body, small), 413);
  expect_error(parse_request("POST", "/set", R"({"key":"01234567890","action":"delete"})", small),
               400);
}

// -- GET /get
// --------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(get_parses_consistency_and_decodes_keys) {
  auto plain = expect_request(parse_request("GET", "/get?key=abc", ""));
  BOOST_TEST(std::get<get_request>(plain.body).key == "abc");
  BOOST_TEST((std::get<get_request>(plain.body).consistency == read_consistency::linearizable));
  BOOST_TEST(plain.target == "/get?key=abc");

  auto stale =
      expect_request(parse_request("GET", "/get?consistency=stale&key=a+b%2Bc%20d%2f", ""));
  BOOST_TEST(std::get<get_request>(stale.body).key == "a b+c d/");
  BOOST_TEST((std::get<get_request>(stale.body).consistency == read_consistency::stale));

  auto lin =
      expect_request(parse_request("GET", "/get?key=x&consistency=linearizable&other=1", ""));
  BOOST_TEST((std::get<get_request>(lin.body).consistency == read_consistency::linearizable));

  auto utf8 = expect_request(parse_request("GET", "/get?key=%C3%A9t%C3%A9", ""));
  BOOST_TEST(std::get<get_request>(utf8.body).key == "\xc3\xa9t\xc3\xa9");

  auto redirect = expect_request(parse_request("GET", "/get?key=x&redirect=true", ""));
  BOOST_TEST(redirect.redirect);
  BOOST_TEST(!expect_request(parse_request("GET", "/get?key=x&redirect=0", "")).redirect);
}

BOOST_AUTO_TEST_CASE(get_rejects_bad_queries_with_400) {
  expect_error(parse_request("GET", "/get", ""), 400);
  expect_error(parse_request("GET", "/get?", ""), 400);
  expect_error(parse_request("GET", "/get?other=1", ""), 400);
  expect_error(parse_request("GET", "/get?key=", ""), 400);
  expect_error(parse_request("GET", "/get?key", ""), 400);
  expect_error(parse_request("GET", "/get?key=a%", ""), 400);
  expect_error(parse_request("GET", "/get?key=a%4", ""), 400);
  expect_error(parse_request("GET", "/get?key=a%zz", ""), 400);
  expect_error(parse_request("GET", "/get?key=%FF", ""), 400); // not UTF-8
  expect_error(parse_request("GET", "/get?key=a&key=b", ""), 400);
  expect_error(parse_request("GET", "/get?key=a&consistency=eventual", ""), 400);
  expect_error(parse_request("GET", "/get?key=a&redirect=maybe", ""), 400);
  expect_error(parse_request("GET", "/get?key=" + std::string(1025, 'k'), ""), 400);
}

BOOST_AUTO_TEST_CASE(url_decoding) {
  BOOST_TEST(*url_decode("") == "");
  BOOST_TEST(*url_decode("a+b") == "a b");
  BOOST_TEST(*url_decode("%2B%2b%41%7e") == "++A~");
  BOOST_TEST(*url_decode("%00") == std::string(1, '\0'));
  BOOST_TEST(*url_decode("100%25") == "100%");
  BOOST_TEST(!url_decode("%"));
  BOOST_TEST(!url_decode("%1"));
  BOOST_TEST(!url_decode("%G0"));
  BOOST_TEST(!url_decode("ab%"));
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
  BOOST_TEST(is_valid_utf8(""));
  BOOST_TEST(is_valid_utf8("plain"));
  BOOST_TEST(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  BOOST_TEST(!is_valid_utf8("\xc3"));             // truncated
  BOOST_TEST(!is_valid_utf8("\xc0\xaf"));         // overlong
  BOOST_TEST(!is_valid_utf8("\xed\xa0\x80"));     // surrogate
  BOOST_TEST(!is_valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
  BOOST_TEST(!is_valid_utf8("\x80"));
}

// -- routing
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(unknown_paths_are_404_and_wrong_methods_405_with_allow) {
  for (const char* path : {"/", "/sets", "/set/", "/GET", "/get/x", "", "*"}) {
    auto error = expect_error(parse_request("GET", path, ""), 404);
    BOOST_TEST(body_of(error_response(error)).contains("error"));
  }
  struct method_case {
    const char* method;
    const char* target;
    const char* allow;
  };
  for (auto c : {method_case{"GET", "/set", "POST"}, method_case{"PUT", "/set", "POST"},
                 method_case{"POST", "/get?key=a", "GET"}, method_case{"DELETE", "/get", "GET"},
                 method_case{"HEAD", "/status", "GET"}, method_case{"GET", "/join", "POST"}}) {
    auto error = expect_error(parse_request(c.method, c.target, ""), 405);
    BOOST_TEST(error.allow == c.allow);
    auto response = error_response(error);
    BOOST_TEST(response.status == 405u);
    BOOST_TEST(*response.header("Allow") == c.allow);
    BOOST_TEST(body_of(response)["error"].is_string());
  }
  // A hostile path is not echoed raw into the error.
  auto error = expect_error(parse_request("GET", "/\xff\xfe", ""), 404);
  BOOST_TEST(is_valid_utf8(error.message));
  boost::json::parse(error_response(error).body);
}

BOOST_AUTO_TEST_CASE(join_is_validated) {
  auto join =
      expect_request(parse_request("POST", "/join?nodeid=node4&nodeaddr=127.0.0.1:8030", ""));
  BOOST_TEST(std::get<join_request>(join.body).node_id == "node4");
  BOOST_TEST(std::get<join_request>(join.body).node_addr == "127.0.0.1:8030");
  expect_request(parse_request("POST", "/join?nodeid=n&nodeaddr=host-a.example:1", ""));
  expect_request(parse_request("POST", "/join?nodeid=n&nodeaddr=%5B::1%5D:9000", ""));

  expect_error(parse_request("POST", "/join", ""), 400);
  expect_error(parse_request("POST", "/join?nodeid=n4", ""), 400);
  expect_error(parse_request("POST", "/join?nodeaddr=127.0.0.1:8030", ""), 400);
  expect_error(parse_request("POST", "/join?nodeid=&nodeaddr=127.0.0.1:8030", ""), 400);
  expect_error(parse_request("POST", "/join?nodeid=a%20b&nodeaddr=127.0.0.1:8030", ""), 400);
  for (const char* addr : {"127.0.0.1", "127.0.0.1:", ":8030", "127.0.0.1:0", "127.0.0.1:65536",
                           "127.0.0.1:80x", "::1:80", "a b:80", "127.0.0.1:-1"})
    expect_error(parse_request("POST", std::string{"/join?nodeid=n&nodeaddr="} + addr, ""), 400);

  const auto& request = std::get<join_request>(join.body);
  client_reply added;
  added.index = 12;
  auto response = join_result_response(request, added);
  BOOST_TEST(response.status == 200u);
  BOOST_TEST(body_of(response)["nodeid"].as_string() == "node4");
  BOOST_TEST(body_of(response)["index"].to_number<uint64_t>() == 12u);
  client_reply refused;
  refused.status = reply_status::rejected;
  refused.reason = "node node4 holds 3 writes of its own";
  response = join_result_response(request, refused);
  BOOST_TEST(response.status == 409u);
  BOOST_TEST(body_of(response)["error"].as_string().find("holds 3 writes") != std::string::npos);
  client_reply busy;
  busy.status = reply_status::busy;
  BOOST_TEST(join_result_response(request, busy).status == 503u);
  client_reply unreachable;
  unreachable.status = reply_status::unreachable;
  unreachable.reason = "node node4 did not answer";
  response = join_result_response(request, unreachable);
  BOOST_TEST(response.status == 503u);
  BOOST_TEST(body_of(response)["error"].as_string().find("nothing was changed") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(host_port_parsing) {
  auto hp = parse_host_port("localhost:8000");
  BOOST_TEST(hp->host == "localhost");
  BOOST_TEST(hp->port == 8000);
  BOOST_TEST(!parse_host_port(":8001"));
  BOOST_TEST(parse_host_port(":8001", {true, false})->host.empty());
  BOOST_TEST(!parse_host_port("127.0.0.1:0"));
  BOOST_TEST(parse_host_port("127.0.0.1:0", {false, true})->port == 0);
  BOOST_TEST(parse_host_port("[::1]:443")->host == "::1");
  BOOST_TEST(!parse_host_port("[]:443"));
  BOOST_TEST(!parse_host_port("[::1]443"));
  BOOST_TEST(!parse_host_port("8000"));
  BOOST_TEST(!parse_host_port("host:123456"));
}

BOOST_AUTO_TEST_CASE(status_request_and_response) {
  auto req = expect_request(parse_request("GET", "/status", ""));
  BOOST_TEST(std::holds_alternative<status_request>(req.body));

  raft_status status;
  status.id = "node1";
  status.role = raft_role::leader;
  status.term = 3;
  status.leader_id = "node1";
  status.commit_index = 10;
  status.applied_index = 9;
  status.last_log_index = 11;
  status.members = {"node1", "node2", "node3"};
  auto response = status_response(status);
  BOOST_TEST(response.status == 200u);
  auto body = body_of(response);
  BOOST_TEST(body["id"].as_string() == "node1");
  BOOST_TEST(body["role"].as_string() == "leader");
  BOOST_TEST(body["term"].to_number<uint64_t>() == 3u);
  BOOST_TEST(body["leader"].as_string() == "node1");
  BOOST_TEST(body["commit_index"].to_number<uint64_t>() == 10u);
  BOOST_TEST(body["applied_index"].to_number<uint64_t>() == 9u);
  BOOST_TEST(body["last_log_index"].to_number<uint64_t>() == 11u);
  BOOST_TEST(body["members"].as_array().size() == 3u);
  BOOST_TEST(body["leader_http"].is_null());
  status.leader_http = "127.0.0.1:8001";
  BOOST_TEST(body_of(status_response(status))["leader_http"].as_string() == "127.0.0.1:8001");

  status.leader_id.clear();
  status.role = raft_role::pre_candidate;
  auto unknown = body_of(status_response(status));
  BOOST_TEST(unknown["leader"].is_null());
  BOOST_TEST(unknown["role"].as_string() == "pre-candidate");
}

// -- responses
// -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(write_status_mapping) {
  write_request set;
  set.command.key = "k";
  set.command.op = kv_op::set;

  auto ok = write_response(set, make_reply(reply_status::ok, 42, 2, "n1"));
  BOOST_TEST(ok.status == 200u);
  auto body = body_of(ok);
  BOOST_TEST(body["key"].as_string() == "k");
  BOOST_TEST(body["action"].as_string() == "set");
  BOOST_TEST(body["index"].to_number<uint64_t>() == 42u);

  write_request del = set;
  del.command.op = kv_op::del;
  BOOST_TEST(body_of(write_response(del, client_reply{}))["action"].as_string() == "delete");

  auto not_leader = write_response(set, make_reply(reply_status::not_leader, 0, 2, "node2"));
  BOOST_TEST(not_leader.status == 503u);
  BOOST_TEST(*not_leader.header("Retry-After") == "1");
  auto nl = body_of(not_leader);
  BOOST_TEST(nl["leader"].as_string() == "node2");
  BOOST_TEST(nl["error"].as_string().find("node2") != std::string::npos);

  auto no_leader = write_response(set, make_reply(reply_status::no_leader, 0, 2, ""));
  BOOST_TEST(no_leader.status == 503u);
  BOOST_TEST(*no_leader.header("Retry-After") == "1");
  BOOST_TEST(body_of(no_leader)["leader"].is_null());

  for (auto status :
       {reply_status::leadership_lost, reply_status::timeout, reply_status::stopping}) {
    auto response = write_response(set, make_reply(status, 7, 2, "n1"));
    BOOST_TEST(response.status == 500u);
    BOOST_TEST(!response.header("Retry-After"));
    BOOST_TEST(body_of(response)["error"].as_string().find("may or may not") != std::string::npos);
  }
  auto busy = write_response(set, make_reply(reply_status::busy, 0, 2, "n1"));
  BOOST_TEST(busy.status == 503u);
  BOOST_TEST(*busy.header("Retry-After") == "1");
  BOOST_TEST(body_of(busy)["reason"].as_string() == "busy");
  auto no_room = make_reply(reply_status::rejected, 0, 2, "n1");
  no_room.reason = "no room";
  auto rejected = write_response(set, no_room);
  BOOST_TEST(rejected.status == 409u);
  BOOST_TEST(body_of(rejected)["error"].as_string().find("no room") != std::string::npos);

  auto failed = write_failed_response(set, "no answer within 5000 ms");
  BOOST_TEST(failed.status == 500u);
  BOOST_TEST(body_of(failed)["error"].as_string().find("may or may not") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(join_result_mapping) {
  join_request join{"n4", "127.0.0.1:8030"};
  auto ok = join_result_response(join, make_reply(reply_status::ok, 9, 2, "n1"));
  BOOST_TEST(ok.status == 200u);
  BOOST_TEST(body_of(ok)["nodeid"].as_string() == "n4");
  BOOST_TEST(body_of(ok)["index"].to_number<uint64_t>() == 9u);
  BOOST_TEST(join_result_response(join, make_reply(reply_status::not_leader, 0, 2, "n2")).status ==
             503u);
  BOOST_TEST(join_result_response(join, make_reply(reply_status::busy, 0, 2, "")).status == 503u);
  BOOST_TEST(
      join_result_response(join, make_reply(reply_status::rejected, 0, 2, "has data")).status ==
      409u);
  auto lost = join_result_response(join, make_reply(reply_status::leadership_lost, 0, 2, ""));
  BOOST_TEST(lost.status == 500u);
  BOOST_TEST(body_of(lost)["error"].as_string().find("join may or may not") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(read_status_mapping) {
  for (auto status : {reply_status::not_leader, reply_status::no_leader,
                      reply_status::leadership_lost, reply_status::timeout, reply_status::stopping,
                      reply_status::busy, reply_status::rejected}) {
    auto response = read_barrier_response(make_reply(status, 0, 1, ""));
    BOOST_TEST(response.status == 503u);
    BOOST_TEST(*response.header("Retry-After") == "1");
    BOOST_TEST(body_of(response)["error"].is_string());
  }
  auto named = body_of(read_barrier_response(make_reply(reply_status::not_leader, 0, 1, "n3")));
  BOOST_TEST(named["leader"].as_string() == "n3");
  BOOST_TEST(read_failed_response("x").status == 503u);
  BOOST_TEST(status_failed_response("x").status == 503u);

  auto missing = get_response("k", false, "");
  BOOST_TEST(missing.status == 404u);
  BOOST_TEST(body_of(missing)["error"].is_string());
  auto found = get_response("k", true, "v");
  BOOST_TEST(found.status == 200u);
  BOOST_TEST(found.body == R"({"key":"k","value":"v"})");
}

// A removed node answers every read, write and admin request alike: 409, reason "removed" (409:
// retrying on this node never helps, unlike the 503s that mean "retry shortly").
BOOST_AUTO_TEST_CASE(removed_node_answers_409_everywhere) {
  auto removed = make_reply(reply_status::removed, 0, 4, "");
  removed.reason = "this node was removed from the cluster (configuration at index 9)";
  write_request set;
  set.command.key = "k";
  std::vector<api_response> responses{
      write_response(set, removed),
      read_barrier_response(removed),
      join_result_response(join_request{"n4", "127.0.0.1:8030"}, removed),
      remove_result_response(remove_request{"n2", false}, removed),
      transfer_result_response(transfer_request{"n2"}, removed),
      removed_response(removed.reason),
  };
  for (const auto& response : responses) {
    BOOST_TEST(response.status == 409u);
    BOOST_TEST(!response.header("Retry-After"));
    auto body = body_of(response);
    BOOST_TEST(body["reason"].as_string() == "removed");
    BOOST_TEST(body["error"].as_string().find("index 9") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(control_characters_are_escaped) {
  auto response = get_response("k", true, std::string("\x01\t\"\\</", 6));
  auto parsed = body_of(response);
  BOOST_TEST(parsed["value"].as_string() == std::string("\x01\t\"\\</", 6));
  for (char c : response.body)
    BOOST_TEST(static_cast<unsigned char>(c) >= 0x20);
}

BOOST_AUTO_TEST_CASE(redirect_response_has_location) {
  auto response = redirect_response("http://127.0.0.1:8011/get?key=a", "node2");
  BOOST_TEST(response.status == 307u);
  BOOST_TEST(*response.header("Location") == "http://127.0.0.1:8011/get?key=a");
  BOOST_TEST(body_of(response)["leader"].as_string() == "node2");
}

// -- targets and access
// ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(absolute_form_targets_route_like_origin_form) {
  BOOST_TEST(origin_form("/get?key=a") == "/get?key=a");
  BOOST_TEST(origin_form("http://127.0.0.1:8001/get?key=a") == "/get?key=a");
  BOOST_TEST(origin_form("HTTPS://[::1]:8001/status") == "/status");
  BOOST_TEST(origin_form("http://host") == "/");
  BOOST_TEST(origin_form("http://host?key=a") == "/");
  BOOST_TEST(origin_form("http://user@host/set") == "/set");
  BOOST_TEST(origin_form("*") == "*");
  BOOST_TEST(origin_form("ftp://host/get") == "ftp://host/get"); // not ours: a 404 below
  BOOST_TEST(origin_form("/http://host/get") == "/http://host/get");

  auto get = expect_request(parse_request("GET", "http://127.0.0.1:8001/get?key=a", ""));
  BOOST_TEST(std::get<get_request>(get.body).key == "a");
  // The stored target is the origin form, so a redirect to the leader stays well formed.
  BOOST_TEST(get.target == "/get?key=a");
  auto set = expect_request(parse_request("POST", "http://localhost:8001/set",
                                          R"({"key":"k","value":"v","action":"set"})"));
  BOOST_TEST(std::get<write_request>(set.body).command.key == "k");
  expect_request(parse_request("GET", "http://h/status", ""));
  expect_error(parse_request("GET", "http://h", ""), 404);
  expect_error(parse_request("GET", "ftp://h/status", ""), 404);
  expect_error(parse_request("POST", "http://h/get?key=a", ""), 405);
}

BOOST_AUTO_TEST_CASE(bearer_tokens_are_parsed_strictly) {
  BOOST_TEST(bearer_token("Bearer abc.DEF-123_~+/==").value() == "abc.DEF-123_~+/==");
  BOOST_TEST(bearer_token("bearer   tok  ").value() == "tok");
  BOOST_TEST(bearer_token("BEARER tok").value() == "tok");
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearertok", "Basic dXNlcjpwYXNz",
                          "Bearer two words", "Bearer a=b", "Bearer ==", "Bearer tok\"en"})
    BOOST_TEST(!bearer_token(bad).has_value(), bad);
  BOOST_TEST(is_valid_bearer_token("0123456789abcdef"));
  BOOST_TEST(!is_valid_bearer_token(""));
  BOOST_TEST(!is_valid_bearer_token("has space"));
  BOOST_TEST(!is_valid_bearer_token("new\nline"));

  BOOST_TEST(token_matches("secret-token", "secret-token"));
  BOOST_TEST(!token_matches("secret-tokeN", "secret-token"));
  BOOST_TEST(!token_matches("secret-token-longer", "secret-token"));
  BOOST_TEST(!token_matches("secret", "secret-token"));
  BOOST_TEST(!token_matches("", "secret-token"));
  BOOST_TEST(!token_matches("", "")); // an unset secret matches nothing
  BOOST_TEST(!token_matches(std::string_view{"secret-token\0", 13}, "secret-token"));
}

namespace {

/// The status check_access answers (200 when it lets the request through).
unsigned access_status(const std::string& target, const char* authorization,
                       const access_tokens& tokens) {
  std::optional<std::string_view> header;
  if (authorization != nullptr)
    header = authorization;
  auto denied = check_access(target, header, tokens);
  if (!denied)
    return 200;
  if (denied->error.status == 401)
    BOOST_TEST(denied->www_authenticate.rfind("Bearer", 0) == 0u, denied->www_authenticate);
  else
    BOOST_TEST(denied->www_authenticate.empty());
  BOOST_TEST(!denied->error.message.empty());
  return denied->error.status;
}

} // namespace

BOOST_AUTO_TEST_CASE(access_without_tokens_is_open) {
  access_tokens none;
  for (const char* target : {"/join?nodeid=a&nodeaddr=h:1", "/get?key=a", "/status", "/nope"})
    BOOST_TEST(access_status(target, nullptr, none) == 200u, target);
  BOOST_TEST(access_status("/join", "Bearer whatever", none) == 200u);
}

BOOST_AUTO_TEST_CASE(admin_token_protects_admin_endpoints_only) {
  access_tokens tokens{"admin-token-0123456789", ""};
  const char* admin = "Bearer admin-token-0123456789";
  for (const char* path : {"/join?nodeid=a&nodeaddr=h:1", "/remove", "/transfer-leader",
                           "http://127.0.0.1:8001/join?nodeid=a", "HTTP://h/remove"}) {
    BOOST_TEST(access_status(path, nullptr, tokens) == 401u, path);
    BOOST_TEST(access_status(path, "Bearer wrong-token-0123456789", tokens) == 401u, path);
    BOOST_TEST(access_status(path, "Basic YWRtaW46YWRtaW4=", tokens) == 401u, path);
    BOOST_TEST(access_status(path, "Bearer admin-token-012345678", tokens) == 401u, path);
    BOOST_TEST(access_status(path, admin, tokens) == 200u, path);
  }
  // Client endpoints stay open when no client token is configured.
  BOOST_TEST(access_status("/get?key=a", nullptr, tokens) == 200u);
  BOOST_TEST(access_status("/set", nullptr, tokens) == 200u);
  // Paths that only look like admin ones are routed (404) like any client path.
  BOOST_TEST(access_status("/join/", nullptr, tokens) == 200u);
  BOOST_TEST(access_status("/jo%69n", nullptr, tokens) == 200u);

  auto denied = check_access("/join", std::nullopt, tokens);
  BOOST_REQUIRE(denied.has_value());
  BOOST_TEST(denied->www_authenticate == R"(Bearer realm="infinitystore")");
  auto wrong = check_access("/join", std::string_view{"Bearer nope"}, tokens);
  BOOST_REQUIRE(wrong.has_value());
  BOOST_TEST(wrong->www_authenticate.find(R"(error="invalid_token")") != std::string::npos);
  auto response = error_response(denied->error);
  BOOST_TEST(response.status == 401u);
  BOOST_TEST(body_of(response)["error"].is_string());
}

BOOST_AUTO_TEST_CASE(client_token_protects_everything_else) {
  access_tokens tokens{"admin-token-0123456789", "client-token-0123456789"};
  const char* admin = "Bearer admin-token-0123456789";
  const char* client = "Bearer client-token-0123456789";
  for (const char* path : {"/get?key=a", "/set", "/status", "/unknown", "http://h:1/get?key=a"}) {
    BOOST_TEST(access_status(path, nullptr, tokens) == 401u, path);
    BOOST_TEST(access_status(path, "Bearer client-token-012345678", tokens) == 401u, path);
    BOOST_TEST(access_status(path, client, tokens) == 200u, path);
    BOOST_TEST(access_status(path, admin, tokens) == 200u, path); // admin may do anything
  }
  BOOST_TEST(access_status("/join?nodeid=a&nodeaddr=h:1", client, tokens) == 403u);
  BOOST_TEST(access_status("/join?nodeid=a&nodeaddr=h:1", admin, tokens) == 200u);
  BOOST_TEST(access_status("/join", nullptr, tokens) == 401u);

  // Client tokens without an admin token: admin endpoints are closed to everyone, rather than
  // opened to every client.
  access_tokens client_only{"", "client-token-0123456789"};
  BOOST_TEST(access_status("/join", client, client_only) == 403u);
  BOOST_TEST(access_status("/join", nullptr, client_only) == 401u);
  BOOST_TEST(access_status("/get?key=a", client, client_only) == 200u);
  BOOST_TEST(access_status("/get?key=a", "Bearer x", client_only) == 401u);
}

BOOST_AUTO_TEST_CASE(server_generated_errors) {
  auto busy = too_many_connections_response(4096);
  BOOST_TEST(busy.status == 503u);
  BOOST_TEST(*busy.header("Retry-After") == "1");
  BOOST_TEST(body_of(busy)["error"].as_string().find("4096") != std::string::npos);
  auto plain = plaintext_on_tls_port_response();
  BOOST_TEST(plain.status == 400u);
  BOOST_TEST(body_of(plain)["error"].as_string().find("HTTPS") != std::string::npos);
}

// -- probes, metrics and the dashboard ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(probe_metrics_and_ui_routes_parse) {
  BOOST_TEST(std::holds_alternative<health_request>(
      expect_request(parse_request("GET", "/health", "")).body));
  BOOST_TEST(std::holds_alternative<ready_request>(
      expect_request(parse_request("GET", "/ready?verbose=1", "")).body));
  BOOST_TEST(std::holds_alternative<metrics_request>(
      expect_request(parse_request("GET", "http://h:1/metrics", "")).body));
  BOOST_TEST(
      std::holds_alternative<ui_request>(expect_request(parse_request("GET", "/ui", "")).body));
  auto post = expect_error(parse_request("POST", "/health", ""), 405);
  BOOST_TEST(post.allow == "GET");
  expect_error(parse_request("GET", "/metrics/", ""), 404);
  expect_error(parse_request("GET", "/ready?%zz", ""), 400);
}

BOOST_AUTO_TEST_CASE(probes_and_page_are_public_data_is_not) {
  access_tokens tokens{"admin-token-0123456789", "client-token-0123456789"};
  for (const char* path : {"/health", "/ready", "/ui", "/ready?x=1", "http://h:1/health"})
    BOOST_TEST(access_status(path, nullptr, tokens) == 200u, path);
  for (const char* path : {"/metrics", "/status", "/health/", "/uix"})
    BOOST_TEST(access_status(path, nullptr, tokens) == 401u, path);
}

namespace {

raft_status healthy_follower() {
  raft_status status;
  status.id = "n2";
  status.role = raft_role::follower;
  status.term = 3;
  status.leader_id = "n1";
  status.commit_index = 90;
  status.applied_index = 90;
  status.leader_commit = 100;
  return status;
}

} // namespace

BOOST_AUTO_TEST_CASE(readiness_needs_a_leader_a_small_lag_and_writable_storage) {
  readiness_limits limits{10};
  auto status = healthy_follower();
  BOOST_TEST(readiness_problems(status, limits, "").empty());
  auto ready = ready_response(status, limits, "");
  BOOST_TEST(ready.status == 200u);
  BOOST_TEST(body_of(ready)["ready"].as_bool());
  BOOST_TEST(body_of(ready)["lag"].as_int64() == 10);

  status.applied_index = 89; // 11 behind, limit 10
  auto lagging = readiness_problems(status, limits, "");
  BOOST_REQUIRE(lagging.size() == 1u);
  BOOST_TEST(lagging[0].find("11 entries behind") != std::string::npos, lagging[0]);
  status.applied_index = 90;

  status.leader_id.clear();
  auto leaderless = ready_response(status, limits, "/data is on a read-only file system");
  BOOST_TEST(leaderless.status == 503u);
  BOOST_TEST(*leaderless.header("Retry-After") == "1");
  auto reasons = body_of(leaderless)["reasons"].as_array();
  BOOST_REQUIRE(reasons.size() == 2u);
  BOOST_TEST(reasons[0].as_string() == "no leader is known");
  BOOST_TEST(std::string{reasons[1].as_string()}.find("read-only") != std::string::npos);
  BOOST_TEST(!body_of(leaderless)["ready"].as_bool());

  status.leader_id = "n1";
  status.removed = true;
  BOOST_TEST(readiness_problems(status, limits, "").size() == 1u);
  status.removed = false;
  status.repair_until_index = 95;
  BOOST_TEST(readiness_problems(status, limits, "").size() == 1u);

  // A leader ahead of what followers were told never counts as negative lag.
  status = healthy_follower();
  status.leader_commit = 0;
  BOOST_TEST(readiness_problems(status, readiness_limits{0}, "").empty());

  auto failed = ready_failed_response("no answer within 1000 ms");
  BOOST_TEST(failed.status == 503u);
  BOOST_TEST(!body_of(failed)["ready"].as_bool());
}

BOOST_AUTO_TEST_CASE(health_answers) {
  auto ok = health_response(healthy_follower());
  BOOST_TEST(ok.status == 200u);
  BOOST_TEST(body_of(ok)["status"].as_string() == "ok");
  BOOST_TEST(body_of(ok)["role"].as_string() == "follower");
  auto down = health_failed_response("the node's actors are not running");
  BOOST_TEST(down.status == 503u);
  BOOST_TEST(body_of(down)["status"].as_string() == "unavailable");
}

BOOST_AUTO_TEST_CASE(metrics_and_page_have_their_content_types) {
  auto metrics = metrics_text_response("x 1\n");
  BOOST_TEST(metrics.content_type.rfind("text/plain; version=0.0.4", 0) == 0u);
  BOOST_TEST(metrics.body == "x 1\n");
  BOOST_TEST(status_response(healthy_follower()).content_type == "application/json");
  BOOST_TEST(*status_response(healthy_follower()).header("Access-Control-Allow-Origin") == "*");
  auto page = ui_response();
  BOOST_TEST(page.content_type == "text/html; charset=utf-8");
  BOOST_TEST(page.header("Content-Security-Policy").has_value());
}

BOOST_AUTO_TEST_CASE(the_page_is_self_contained) {
  auto page = std::string{ui_page()};
  BOOST_TEST(page.rfind("<!doctype html>", 0) == 0u);
  BOOST_TEST(page.find("</html>") != std::string::npos);
  // Nothing loaded from elsewhere: no external scripts, styles, fonts or images.
  for (const char* forbidden : {"<script src", "<link", "@import", "url(", "http://", "https://"})
    BOOST_TEST(page.find(forbidden) == std::string::npos, forbidden);
  // What the browser test looks for.
  BOOST_TEST(page.find("id=\"leader\"") != std::string::npos);
  BOOST_TEST(page.find("data-member") == std::string::npos); // set from script, not markup
  BOOST_TEST(page.find("dataset.member") != std::string::npos);
  BOOST_TEST(page.find("name=\"viewport\"") != std::string::npos); // readable on a phone
}
