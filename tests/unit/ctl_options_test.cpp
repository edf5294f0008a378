#define BOOST_TEST_MODULE ctl_options
#include <boost/test/unit_test.hpp>

#include "app/ctl/ctl_options.hpp"

using namespace infinity::ctl;
using namespace std::chrono_literals;
using action = parse_outcome::action;

namespace infinity::ctl {

// Printers for failure messages.
std::ostream& operator<<(std::ostream& out, const endpoint& value) {
  return out << value.display();
}
std::ostream& operator<<(std::ostream& out, command_kind value) {
  return out << command_name(value);
}
std::ostream& operator<<(std::ostream& out, output_format value) {
  return out << (value == output_format::json ? "json" : "table");
}

} // namespace infinity::ctl

namespace {

endpoint expect_endpoint(const std::string& text) {
  auto parsed_endpoint = parse_endpoint(text);
  auto* error = std::get_if<problem>(&parsed_endpoint);
  BOOST_REQUIRE_MESSAGE(error == nullptr, text << " rejected: " << (error ? error->message : ""));
  return std::get<endpoint>(parsed_endpoint);
}

void expect_bad_endpoint(const std::string& text, const std::string& mentions) {
  auto parsed_endpoint = parse_endpoint(text);
  auto* error = std::get_if<problem>(&parsed_endpoint);
  BOOST_REQUIRE_MESSAGE(error != nullptr, "'" << text << "' should be rejected");
  BOOST_TEST(error->message.find(mentions) != std::string::npos,
             "'" << error->message << "' should mention '" << mentions << "'");
}

command_line expect_run(const std::vector<std::string>& args, const char* env = nullptr) {
  auto outcome = parse_command_line(args, env);
  BOOST_REQUIRE_MESSAGE(outcome.what == action::run, "unexpected outcome: " << outcome.text);
  return outcome.line;
}

/// A usage error: one line that mentions `mentions`.
void expect_fail(const std::vector<std::string>& args, const std::string& mentions,
                 const char* env = nullptr) {
  auto outcome = parse_command_line(args, env);
  BOOST_REQUIRE_MESSAGE(outcome.what == action::fail, "expected a usage error mentioning "
                                                          << mentions << ", got: " << outcome.text);
  BOOST_TEST(outcome.text.find(mentions) != std::string::npos,
             "'" << outcome.text << "' should mention '" << mentions << "'");
  BOOST_TEST(outcome.text.find('\n') == std::string::npos, "one line: " << outcome.text);
}

std::string expect_help(const std::vector<std::string>& args) {
  auto outcome = parse_command_line(args);
  BOOST_REQUIRE_MESSAGE(outcome.what == action::help, "expected help, got: " << outcome.text);
  return outcome.text;
}

} // namespace

BOOST_AUTO_TEST_SUITE(endpoints)

BOOST_AUTO_TEST_CASE(accepted_forms) {
  auto plain = expect_endpoint("127.0.0.1:8001");
  BOOST_TEST(!plain.tls);
  BOOST_TEST(plain.host == "127.0.0.1");
  BOOST_TEST(plain.port == 8001);
  BOOST_TEST(plain.display() == "127.0.0.1:8001");

  auto named = expect_endpoint("http://node-1.example:80/");
  BOOST_TEST(!named.tls);
  BOOST_TEST(named.host == "node-1.example");
  BOOST_TEST(named.port == 80);

  auto secure = expect_endpoint("https://localhost:8443");
  BOOST_TEST(secure.tls);
  BOOST_TEST(secure.display() == "https://localhost:8443");
  BOOST_TEST(secure.authority() == "localhost:8443");

  auto v6 = expect_endpoint("[::1]:65535");
  BOOST_TEST(v6.host == "::1");
  BOOST_TEST(v6.port == 65535);
  BOOST_TEST(v6.authority() == "[::1]:65535");
  BOOST_TEST(expect_endpoint("https://[fe80::1]:1").display() == "https://[fe80::1]:1");
}

BOOST_AUTO_TEST_CASE(rejected_forms_say_why) {
  expect_bad_endpoint("", "missing :PORT");
  expect_bad_endpoint("localhost", "missing :PORT");
  expect_bad_endpoint("localhost:", "port");
  expect_bad_endpoint(":8001", "missing host");
  expect_bad_endpoint("h:0", "from 1 to 65535");
  expect_bad_endpoint("h:65536", "from 1 to 65535");
  expect_bad_endpoint("h:80a", "from 1 to 65535");
  expect_bad_endpoint("h:123456", "from 1 to 65535");
  expect_bad_endpoint("ftp://h:21", "only http:// and https://");
  expect_bad_endpoint("http://h:80/get", "without a path");
  expect_bad_endpoint("user@h:80", "without a path or user");
  expect_bad_endpoint("h_1:80", "letters, digits");
  expect_bad_endpoint("::1:8001", "brackets");
  expect_bad_endpoint("[::1]", "missing :PORT");
  expect_bad_endpoint("[::1:80", "unclosed");
  expect_bad_endpoint("[host]:80", "IPv6");
  // The input is quoted so the user sees which entry of a list is wrong.
  expect_bad_endpoint("bogus", "'bogus'");
}

BOOST_AUTO_TEST_CASE(lists) {
  auto list =
      std::get<std::vector<endpoint>>(parse_endpoint_list("127.0.0.1:1,https://b:2,[::1]:3"));
  BOOST_TEST(list.size() == 3u);
  BOOST_TEST(list[0].port == 1);
  BOOST_TEST(list[1].tls);
  BOOST_TEST(list[2].host == "::1");
  for (const char* bad : {"", ",", "a:1,", ",a:1", "a:1,,b:2"}) {
    auto parsed_list = parse_endpoint_list(bad);
    BOOST_TEST(std::holds_alternative<problem>(parsed_list), "'" << bad << "' accepted");
  }
  auto error = std::get<problem>(parse_endpoint_list("a:1,b"));
  BOOST_TEST(error.message.find("'b'") != std::string::npos, error.message);
}

BOOST_AUTO_TEST_CASE(redirect_locations) {
  endpoint from{false, "127.0.0.1", 8001};
  auto absolute = std::get<std::pair<endpoint, std::string>>(
      parse_location("http://127.0.0.1:8011/set?redirect=1", from));
  BOOST_TEST(absolute.first.port == 8011);
  BOOST_TEST(!absolute.first.tls);
  BOOST_TEST(absolute.second == "/set?redirect=1");

  auto secure = std::get<std::pair<endpoint, std::string>>(
      parse_location("https://[::1]:9443/get?key=a%20b", from));
  BOOST_TEST(secure.first.tls);
  BOOST_TEST(secure.first.host == "::1");
  BOOST_TEST(secure.second == "/get?key=a%20b");

  auto no_path =
      std::get<std::pair<endpoint, std::string>>(parse_location("http://leader:8021", from));
  BOOST_TEST(no_path.second == "/");

  auto relative = std::get<std::pair<endpoint, std::string>>(parse_location("/status", from));
  BOOST_TEST(relative.first == from);
  BOOST_TEST(relative.second == "/status");

  for (const char* bad : {"", "status", "ftp://h:1/x", "http://h/x", "http://h:0/"})
    BOOST_TEST(std::holds_alternative<problem>(parse_location(bad, from)), "'" << bad << "'");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(durations) {
  BOOST_TEST((parse_duration("5s").value() == 5000ms));
  BOOST_TEST((parse_duration("500ms").value() == 500ms));
  BOOST_TEST((parse_duration("1m").value() == 60000ms));
  BOOST_TEST((parse_duration("1h").value() == 3600000ms));
  BOOST_TEST((parse_duration("2.5").value() == 2500ms));
  BOOST_TEST((parse_duration("0.25s").value() == 250ms));
  BOOST_TEST((parse_duration(".5").value() == 500ms));
  BOOST_TEST((parse_duration("1ms").value() == 1ms));
  for (const char* bad :
       {"", "0", "0s", "0.0001", "-1s", "5x", "5 s", "s", ".", "1.2.3", "61m", "2h", "1e3", "ms"})
    BOOST_TEST(!parse_duration(bad).has_value(), "'" << bad << "' accepted");
}

BOOST_AUTO_TEST_CASE(token_files) {
  BOOST_TEST(std::get<std::string>(token_from_file_contents("s3cr3t\n")) == "s3cr3t");
  BOOST_TEST(std::get<std::string>(token_from_file_contents("  abc.def \r\n\n")) == "abc.def");
  BOOST_TEST(std::holds_alternative<problem>(token_from_file_contents("")));
  BOOST_TEST(std::holds_alternative<problem>(token_from_file_contents(" \n")));
  // A second line would end up in a header of its own.
  BOOST_TEST(std::holds_alternative<problem>(token_from_file_contents("a\nb\n")));
  BOOST_TEST(std::holds_alternative<problem>(token_from_file_contents("a\x01z")));
}

BOOST_AUTO_TEST_CASE(url_encoding_and_utf8) {
  BOOST_TEST(url_encode("plain-key_1.~") == "plain-key_1.~");
  BOOST_TEST(url_encode("a b/&=?+%") == "a%20b%2F%26%3D%3F%2B%25");
  BOOST_TEST(url_encode("\xC3\xBC") == "%C3%BC");
  BOOST_TEST(is_valid_utf8("gr\xC3\xBC\xC3\x9F dich \xF0\x9F\x91\x8B"));
  BOOST_TEST(!is_valid_utf8("\xC3"));
  BOOST_TEST(!is_valid_utf8("\xC0\x80"));     // overlong
  BOOST_TEST(!is_valid_utf8("\xED\xA0\x80")); // surrogate
  BOOST_TEST(!is_valid_utf8("\xFF"));
}

BOOST_AUTO_TEST_SUITE(command_lines)

BOOST_AUTO_TEST_CASE(defaults) {
  auto line = expect_run({"get", "k"});
  BOOST_TEST(line.command == command_kind::get);
  BOOST_TEST(line.key == "k");
  BOOST_REQUIRE(line.options.endpoints.size() == 1u);
  BOOST_TEST(line.options.endpoints[0].display() == "127.0.0.1:8001");
  BOOST_TEST(line.options.output == output_format::table);
  BOOST_TEST(!line.options.stale);
  BOOST_TEST((line.options.request_timeout == 5000ms));
  BOOST_TEST((line.options.command_timeout == 15000ms));
  BOOST_TEST(line.options.token_file.empty());
  BOOST_TEST(line.options.cacert_file.empty());
}

BOOST_AUTO_TEST_CASE(every_command_and_its_arguments) {
  auto put = expect_run({"put", "k", "hello world"});
  BOOST_TEST(put.value == "hello world");
  BOOST_TEST(!put.value_from_stdin);
  auto from_stdin = expect_run({"put", "k", "-"});
  BOOST_TEST(from_stdin.value_from_stdin);
  BOOST_TEST(expect_run({"put", "k", ""}).value.empty());
  BOOST_TEST(expect_run({"del", "k"}).command == command_kind::del);
  BOOST_TEST(expect_run({"status"}).command == command_kind::status);
  BOOST_TEST(expect_run({"members"}).command == command_kind::members);
  auto join = expect_run({"join", "n4", "127.0.0.1:9030"});
  BOOST_TEST(join.node_id == "n4");
  BOOST_TEST(join.node_addr == "127.0.0.1:9030");
  BOOST_TEST(expect_run({"remove", "n4"}).node_id == "n4");
  BOOST_TEST(expect_run({"transfer-leader"}).node_id.empty());
  BOOST_TEST(expect_run({"transfer-leader", "n2"}).node_id == "n2");
  BOOST_TEST(expect_run({"transfer-leader"}).command == command_kind::transfer_leader);
}

BOOST_AUTO_TEST_CASE(wrong_arguments_are_usage_errors) {
  expect_fail({}, "no command");
  expect_fail({"frob"}, "unknown command 'frob'");
  expect_fail({"put", "k"}, "put takes KEY VALUE");
  expect_fail({"put", "k", "v", "w"}, "put takes KEY VALUE");
  expect_fail({"get"}, "get takes exactly one KEY");
  expect_fail({"get", "a", "b"}, "get takes exactly one KEY");
  expect_fail({"get", ""}, "key must not be empty");
  expect_fail({"get", "\xFF"}, "UTF-8");
  expect_fail({"put", "k", "\xC3"}, "value must be UTF-8");
  expect_fail({"del"}, "del takes exactly one KEY");
  expect_fail({"status", "x"}, "unexpected argument 'x'");
  expect_fail({"members", "x"}, "unexpected argument 'x'");
  expect_fail({"join", "n4"}, "join takes ID and RAFT_ADDR");
  expect_fail({"join", "n 4", "127.0.0.1:1"}, "invalid node id");
  expect_fail({"join", "n4", "127.0.0.1"}, "invalid RAFT_ADDR '127.0.0.1'");
  expect_fail({"join", "n4", "http://h:1"}, "invalid RAFT_ADDR");
  expect_fail({"remove"}, "remove takes exactly one node ID");
  expect_fail({"remove", std::string(65, 'x')}, "invalid node id");
  expect_fail({"transfer-leader", "a", "b"}, "at most one node ID");
  expect_fail({"transfer-leader", "a/b"}, "invalid node id");
}

BOOST_AUTO_TEST_CASE(options_anywhere_and_in_every_spelling) {
  auto line = expect_run({"--endpoints", "a:1,b:2", "get", "k", "-o", "json", "--timeout=2s",
                          "--command-timeout", "1m", "--token-file=/t", "--cacert", "/ca.pem",
                          "--consistency", "stale"});
  BOOST_TEST(line.options.endpoints.size() == 2u);
  BOOST_TEST(line.options.output == output_format::json);
  BOOST_TEST((line.options.request_timeout == 2000ms));
  BOOST_TEST((line.options.command_timeout == 60000ms));
  BOOST_TEST(line.options.token_file == "/t");
  BOOST_TEST(line.options.cacert_file == "/ca.pem");
  BOOST_TEST(line.options.stale);
  BOOST_TEST(expect_run({"-ojson", "status"}).options.output == output_format::json);
  BOOST_TEST(expect_run({"-o=json", "status"}).options.output == output_format::json);
  BOOST_TEST(expect_run({"--output", "table", "status"}).options.output == output_format::table);
  BOOST_TEST(!expect_run({"get", "--consistency=linearizable", "k"}).options.stale);
  // The last one wins, so an alias with options can be overridden.
  BOOST_TEST(expect_run({"-o", "json", "-o", "table", "status"}).options.output ==
             output_format::table);
  // After `--` everything is an argument, even what looks like an option.
  auto dashed = expect_run({"put", "--", "--key", "-v"});
  BOOST_TEST(dashed.key == "--key");
  BOOST_TEST(dashed.value == "-v");
}

BOOST_AUTO_TEST_CASE(endpoints_from_the_environment) {
  auto from_env = expect_run({"status"}, "https://x:1,y:2");
  BOOST_REQUIRE(from_env.options.endpoints.size() == 2u);
  BOOST_TEST(from_env.options.endpoints[0].tls);
  auto flag_wins = expect_run({"--endpoints", "z:3", "status"}, "x:1");
  BOOST_REQUIRE(flag_wins.options.endpoints.size() == 1u);
  BOOST_TEST(flag_wins.options.endpoints[0].host == "z");
  // Empty counts as unset.
  BOOST_TEST(expect_run({"status"}, "").options.endpoints[0].display() == "127.0.0.1:8001");
  expect_fail({"status"}, "INFINITYCTL_ENDPOINTS: invalid endpoint 'nope'", "nope");
  expect_fail({"--endpoints", "a:1,", "status"}, "--endpoints: empty entry");
}

BOOST_AUTO_TEST_CASE(bad_options_are_usage_errors) {
  expect_fail({"--frob", "status"}, "unknown option '--frob'");
  expect_fail({"-x", "status"}, "unknown option '-x'");
  expect_fail({"status", "--timeout"}, "--timeout needs a value");
  expect_fail({"--version=1"}, "--version takes no value");
  expect_fail({"-o", "yaml", "status"}, "invalid --output 'yaml'");
  expect_fail({"--timeout", "0", "status"}, "invalid --timeout '0'");
  expect_fail({"--command-timeout", "soon", "status"}, "invalid --command-timeout 'soon'");
  expect_fail({"--consistency", "eventual", "get", "k"}, "invalid --consistency 'eventual'");
  expect_fail({"--consistency", "stale", "put", "k", "v"}, "applies to get only");
  expect_fail({"--token-file=", "status"}, "--token-file needs a file name");
  expect_fail({"--cacert", "", "status"}, "--cacert needs a file name");
  expect_fail({"--endpoints", "localhost", "status"}, "invalid endpoint 'localhost'");
  // Argument errors are reported even when the options are fine, and the other way round.
  expect_fail({"-o", "json", "get"}, "get takes exactly one KEY");
}

BOOST_AUTO_TEST_CASE(help_and_version) {
  auto tool = expect_help({"--help"});
  for (const char* topic : {"put KEY VALUE", "transfer-leader", "--endpoints", "--cacert",
                            "INFINITYCTL_ENDPOINTS", "Exit status", "4  refused"})
    BOOST_TEST(tool.find(topic) != std::string::npos, "tool help lacks " << topic);
  BOOST_TEST(expect_help({"-h"}) == tool);
  BOOST_TEST(expect_help({"help"}) == tool);
  BOOST_TEST(expect_help({"frob", "--help"}) == tool);
  for (const char* command :
       {"put", "get", "del", "status", "members", "join", "remove", "transfer-leader"}) {
    auto text = expect_help({command, "--help"});
    BOOST_TEST(text.find(std::string{"infinityctl [options] "} + command) != std::string::npos,
               command << " help: " << text);
    BOOST_TEST(text.find("Exit status") != std::string::npos, command);
    BOOST_TEST(expect_help({"help", command}) == text);
  }
  // --help wins over whatever else is wrong on the line.
  BOOST_TEST(expect_help({"put", "--bogus", "--help"}).find("put KEY VALUE") != std::string::npos);
  expect_fail({"help", "frob"}, "help takes one command name");

  auto version = parse_command_line({"--version"});
  BOOST_TEST((version.what == action::version));
  BOOST_TEST(version.text == std::string{"infinityctl "} + INFINITYSTORE_VERSION);
}

BOOST_AUTO_TEST_SUITE_END()
