#define BOOST_TEST_MODULE node_options
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <unistd.h>

#include <boost/json.hpp>

#include "app/logger.hpp"
#include "app/node_options.hpp"

using namespace infinity;
using action = options_outcome::action;

namespace {

/// A config file in a fresh temporary directory, removed with the fixture.
struct config_file {
  std::filesystem::path dir;
  std::filesystem::path path;

  explicit config_file(const std::string& text) {
    dir = std::filesystem::temp_directory_path() /
          ("node_options_test." + std::to_string(::getpid()) + "." + std::to_string(counter()++));
    std::filesystem::create_directories(dir);
    path = dir / "node.conf";
    std::ofstream{path} << text;
  }
  ~config_file() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

node_options expect_run(const std::vector<std::string>& args) {
  auto outcome = parse_node_options(args);
  BOOST_REQUIRE_MESSAGE(outcome.what == action::run, "unexpected failure: " << outcome.text);
  return outcome.options;
}

std::string expect_fail(const std::vector<std::string>& args, const std::string& mentions) {
  auto outcome = parse_node_options(args);
  BOOST_REQUIRE_MESSAGE(outcome.what == action::fail, "expected a failure for " << mentions);
  BOOST_TEST(outcome.text.find(mentions) != std::string::npos,
             "'" << outcome.text << "' should mention '" << mentions << "'");
  BOOST_TEST(outcome.text.find('\n') == std::string::npos, "one line: " << outcome.text);
  return outcome.text;
}

} // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  auto opts = expect_run({});
  BOOST_TEST(opts.node_id == "node1");
  BOOST_TEST(opts.raft_addr == "localhost:8000");
  BOOST_TEST(opts.http_addr == ":8001");
  BOOST_TEST(opts.data_dir == "data/node1");
  BOOST_TEST(opts.join.empty());
  BOOST_TEST(opts.initial_cluster.empty());
  BOOST_TEST((opts.level == log_level::info));
  BOOST_TEST(opts.max_body_bytes == 1048576u);
  BOOST_TEST(opts.request_timeout_ms == 5000u);
  BOOST_TEST(opts.config_file.empty());
  BOOST_TEST(opts.http_max_connections == 4096u);
  BOOST_TEST(opts.http_max_queued_response_bytes == 4194304u);
  BOOST_TEST(opts.http_max_header_bytes == 16384u);
  BOOST_TEST(opts.http_idle_timeout_ms == 60000u);
  BOOST_TEST(opts.http_header_timeout_ms == 10000u);
  BOOST_TEST(opts.http_body_timeout_ms == 30000u);
  BOOST_TEST(opts.http_write_timeout_ms == 30000u);
  BOOST_TEST(opts.http_tls_cert.empty());
  BOOST_TEST(opts.http_tls_key.empty());
  BOOST_TEST(opts.admin_token.empty());
  BOOST_TEST(opts.client_token.empty());
}

BOOST_AUTO_TEST_CASE(flags) {
  auto opts =
      expect_run({"--node-id", "node2", "--raft-addr", "127.0.0.1:8010", "--http-addr",
                  "127.0.0.1:0", "--join", "127.0.0.1:8000", "--log-level=debug",
                  "--max-body-bytes", "2048", "--request-timeout-ms", "250", "--initial-cluster",
                  "node1=127.0.0.1:8000,node2=127.0.0.1:8010,node3=127.0.0.1:8020"});
  BOOST_TEST(opts.node_id == "node2");
  BOOST_TEST(opts.raft_addr == "127.0.0.1:8010");
  BOOST_TEST(opts.http_addr == "127.0.0.1:0");
  BOOST_TEST(opts.data_dir == "data/node2"); // follows --node-id
  BOOST_TEST(opts.join == "127.0.0.1:8000");
  BOOST_TEST((opts.level == log_level::debug));
  BOOST_TEST(opts.max_body_bytes == 2048u);
  BOOST_TEST(opts.request_timeout_ms == 250u);
  BOOST_TEST(opts.initial_cluster.size() == 3u);
  BOOST_TEST(opts.initial_cluster.at("node3") == "127.0.0.1:8020");
  BOOST_TEST(expect_run({"--data-dir", "/var/lib/x"}).data_dir == "/var/lib/x");
}

BOOST_AUTO_TEST_CASE(help_and_version) {
  auto help = parse_node_options({"--help"});
  BOOST_TEST((help.what == action::help));
  for (const char* name : {"--node-id",
                           "--raft-addr",
                           "--http-addr",
                           "--config",
                           "--data-dir",
                           "--join",
                           "--initial-cluster",
                           "--log-level",
                           "--log-format",
                           "--ready-max-lag",
                           "--max-body-bytes",
                           "--version",
                           "--http-max-connections",
                           "--http-max-queued-response-bytes",
                           "--http-max-header-bytes",
                           "--http-idle-timeout-ms",
                           "--http-header-timeout-ms",
                           "--http-body-timeout-ms",
                           "--http-write-timeout-ms",
                           "--http-tls-cert",
                           "--http-tls-key",
                           "--admin-token-file",
                           "--client-token-file"})
    BOOST_TEST(help.text.find(name) != std::string::npos, name);
  BOOST_TEST((parse_node_options({"-h"}).what == action::help));
  auto version = parse_node_options({"--version"});
  BOOST_TEST((version.what == action::version));
  BOOST_TEST(version.text == std::string{"infinitystore "} + INFINITYSTORE_VERSION);
}

BOOST_AUTO_TEST_CASE(config_file_and_flag_override) {
  config_file file{
      "# comment\n"
      "node-id = node3\n"
      "raft-addr = 127.0.0.1:8020\n"
      "http-addr = 127.0.0.1:8021\n"
      "data-dir = data/node3\n"
      "initial-cluster = node1=127.0.0.1:8000,node2=127.0.0.1:8010,node3=127.0.0.1:8020\n"
      "log-level = warn\n"
      "max-body-bytes = 4096\n"};
  auto from_file = expect_run({"--config", file.path.string()});
  BOOST_TEST(from_file.node_id == "node3");
  BOOST_TEST(from_file.raft_addr == "127.0.0.1:8020");
  BOOST_TEST(from_file.http_addr == "127.0.0.1:8021");
  BOOST_TEST(from_file.data_dir == "data/node3");
  BOOST_TEST((from_file.level == log_level::warn));
  BOOST_TEST(from_file.max_body_bytes == 4096u);
  BOOST_TEST(from_file.initial_cluster.size() == 3u);
  BOOST_TEST(from_file.config_file == file.path.string());

  // The command line wins, before or after --config.
  auto overridden = expect_run(
      {"--http-addr", "127.0.0.1:0", "--config", file.path.string(), "--log-level", "error"});
  BOOST_TEST(overridden.http_addr == "127.0.0.1:0");
  BOOST_TEST((overridden.level == log_level::error));
  BOOST_TEST(overridden.node_id == "node3"); // still from the file
  BOOST_TEST(overridden.max_body_bytes == 4096u);
}

BOOST_AUTO_TEST_CASE(config_file_errors) {
  expect_fail({"--config", "/nonexistent/infinitystore.conf"}, "/nonexistent/infinitystore.conf");
  config_file unknown{"node-id = a\nbogus-option = 1\n"};
  expect_fail({"--config", unknown.path.string()}, "bogus-option");
  config_file bad_value{"log-level = loud\n"};
  expect_fail({"--config", bad_value.path.string()}, "--log-level");
  config_file command_line_only{"help = 1\n"};
  expect_fail({"--config", command_line_only.path.string()}, "help");
  // initial-cluster from the file must include the node id given on the command line.
  config_file cluster{"initial-cluster = node1=127.0.0.1:8000,node2=127.0.0.1:8010\n"};
  expect_fail({"--config", cluster.path.string(), "--node-id", "node9"}, "--initial-cluster");
  expect_run({"--config", cluster.path.string(), "--node-id", "node2"});
}

BOOST_AUTO_TEST_CASE(unknown_options_and_positional_arguments_fail) {
  expect_fail({"--bogus"}, "--bogus");
  expect_fail({"--node-id"}, "node-id"); // missing value
  expect_fail({"extra"}, "extra");
  expect_fail({"--node-id", "a", "--node-id", "b"}, "node-id");
}

BOOST_AUTO_TEST_CASE(invalid_values_fail_naming_the_option) {
  expect_fail({"--node-id", ""}, "--node-id");
  expect_fail({"--node-id", "has space"}, "--node-id");
  expect_fail({"--node-id", std::string(65, 'a')}, "--node-id");
  // They name the data directory: these would write into data/ itself or next to it.
  expect_fail({"--node-id", "."}, "--node-id");
  expect_fail({"--node-id", ".."}, "--node-id");
  expect_fail({"--initial-cluster", "node1=127.0.0.1:8000,..=127.0.0.1:8010"}, "--initial-cluster");
  // Two members on one address: neither could ever be reached as itself.
  expect_fail({"--initial-cluster", "node1=127.0.0.1:8000,node2=127.0.0.1:8000"},
              "share the address");
  expect_fail({"--raft-addr", "localhost"}, "--raft-addr");
  expect_fail({"--raft-addr", "localhost:0"}, "--raft-addr");
  expect_fail({"--raft-addr", ":8000"}, "--raft-addr");
  expect_fail({"--http-addr", "8001"}, "--http-addr");
  expect_fail({"--http-addr", ":99999"}, "--http-addr");
  expect_fail({"--join", "host"}, "--join");
  expect_fail({"--data-dir", ""}, "--data-dir");
  expect_fail({"--log-level", "verbose"}, "--log-level");
  expect_fail({"--max-body-bytes", "-1"}, "--max-body-bytes");
  expect_fail({"--max-body-bytes", "12k"}, "--max-body-bytes");
  expect_fail({"--max-body-bytes", "100"}, "--max-body-bytes");
  expect_fail({"--max-body-bytes", "99999999999999999999999"}, "--max-body-bytes");
  expect_fail({"--request-timeout-ms", "0"}, "--request-timeout-ms");
  expect_fail({"--initial-cluster", "node1"}, "--initial-cluster");
  expect_fail({"--initial-cluster", "node1=127.0.0.1"}, "--initial-cluster");
  expect_fail({"--initial-cluster", "node1=127.0.0.1:8000,node1=127.0.0.1:8010"},
              "--initial-cluster");
  expect_fail({"--initial-cluster", "node2=127.0.0.1:8010"}, "--initial-cluster"); // lacks node1
  expect_fail({"--initial-cluster", ""}, "--initial-cluster");
  // Accepted edge values.
  expect_run({"--http-addr", ":0"});
  expect_run({"--http-addr", "[::1]:8001"});
  expect_run({"--max-body-bytes", "1024"});
}

// The shipped config files must stay valid and consistent with each other.
BOOST_AUTO_TEST_CASE(shipped_config_files_parse) {
  const std::string dir = INFINITY_SOURCE_DIR "/config/";
  auto example = expect_run({"--config", dir + "example.conf"});
  auto defaults = expect_run({});
  BOOST_TEST(example.node_id == defaults.node_id);
  BOOST_TEST(example.raft_addr == defaults.raft_addr);
  BOOST_TEST(example.http_addr == defaults.http_addr);
  BOOST_TEST(example.data_dir == defaults.data_dir);
  BOOST_TEST(example.max_body_bytes == defaults.max_body_bytes);
  BOOST_TEST(example.request_timeout_ms == defaults.request_timeout_ms);
  BOOST_TEST(example.http_max_connections == defaults.http_max_connections);
  BOOST_TEST(example.http_max_queued_response_bytes == defaults.http_max_queued_response_bytes);
  BOOST_TEST(example.http_max_header_bytes == defaults.http_max_header_bytes);
  BOOST_TEST(example.http_idle_timeout_ms == defaults.http_idle_timeout_ms);
  BOOST_TEST(example.http_header_timeout_ms == defaults.http_header_timeout_ms);
  BOOST_TEST(example.http_body_timeout_ms == defaults.http_body_timeout_ms);
  BOOST_TEST(example.http_write_timeout_ms == defaults.http_write_timeout_ms);
  BOOST_TEST(example.http_tls_cert.empty()); // the shipped default stays plain HTTP
  BOOST_TEST(example.raft_tls_cert.empty()); // loopback Raft port, no certificates needed
  BOOST_TEST(!example.raft_insecure);

  std::map<std::string, std::string> raft_addrs;
  std::set<std::string> ports;
  for (int n = 1; n <= 3; ++n) {
    auto id = "node" + std::to_string(n);
    auto opts = expect_run({"--config", dir + id + ".conf"});
    BOOST_TEST(opts.node_id == id);
    BOOST_TEST(opts.data_dir == "data/" + id);
    BOOST_TEST(opts.initial_cluster.size() == 3u);
    BOOST_TEST(opts.initial_cluster.at(id) == opts.raft_addr);
    BOOST_TEST(opts.raft_addr.rfind("127.0.0.1:", 0) == 0u);
    BOOST_TEST(opts.http_addr.rfind("127.0.0.1:", 0) == 0u);
    // The local cluster runs mutual TLS on the Raft port (run-cluster.sh makes the files).
    BOOST_TEST(opts.raft_tls_cert == "config/certs/" + id + ".pem");
    BOOST_TEST(opts.raft_tls_key == "config/certs/" + id + ".key");
    BOOST_TEST(opts.raft_tls_ca == "config/certs/ca.pem");
    ports.insert(opts.raft_addr);
    ports.insert(opts.http_addr);
    raft_addrs[id] = opts.raft_addr;
    if (n > 1)
      BOOST_TEST(
          (opts.initial_cluster == expect_run({"--config", dir + "node1.conf"}).initial_cluster));
  }
  BOOST_TEST(ports.size() == 6u); // no two endpoints share a port
}

BOOST_AUTO_TEST_CASE(raft_port_security) {
  auto tls = expect_run(
      {"--raft-tls-cert", "n.pem", "--raft-tls-key", "n.key", "--raft-tls-ca", "ca.pem"});
  BOOST_TEST(tls.raft_tls_cert == "n.pem");
  BOOST_TEST(tls.raft_tls_key == "n.key");
  BOOST_TEST(tls.raft_tls_ca == "ca.pem");
  expect_fail({"--raft-tls-cert", "n.pem", "--raft-tls-key", "n.key"}, "--raft-tls-ca");
  expect_fail({"--raft-tls-ca", "ca.pem"}, "--raft-tls-cert");
  // No certificates: loopback only, unless --raft-insecure.
  expect_run({"--raft-addr", "127.0.0.2:8000"});
  expect_run({"--raft-addr", "[::1]:8000"});
  expect_run({"--raft-addr", "localhost:8000"});
  expect_fail({"--raft-addr", "0.0.0.0:8000"}, "not a loopback address");
  expect_fail({"--raft-addr", "10.1.2.3:8000"}, "not a loopback address");
  expect_fail({"--raft-addr", "db1.example:8000"}, "not a loopback address");
  BOOST_TEST(expect_run({"--raft-addr", "10.1.2.3:8000", "--raft-insecure"}).raft_insecure);
  BOOST_TEST(expect_run({"--raft-addr", "10.1.2.3:8000", "--raft-insecure", "true"}).raft_insecure);
  expect_fail({"--raft-addr", "10.1.2.3:8000", "--raft-insecure", "false"},
              "not a loopback address");
  expect_fail({"--raft-insecure", "maybe"}, "--raft-insecure");
  expect_run({"--raft-addr", "10.1.2.3:8000", "--raft-tls-cert", "n.pem", "--raft-tls-key", "n.key",
              "--raft-tls-ca", "ca.pem"});
}

BOOST_AUTO_TEST_CASE(client_port_limits) {
  auto opts = expect_run({"--http-max-connections", "10", "--http-max-queued-response-bytes",
                          "65536", "--http-max-header-bytes", "61440", "--http-idle-timeout-ms",
                          "1000", "--http-header-timeout-ms", "100", "--http-body-timeout-ms",
                          "3600000", "--http-write-timeout-ms", "2500"});
  BOOST_TEST(opts.http_max_connections == 10u);
  BOOST_TEST(opts.http_max_queued_response_bytes == 65536u);
  BOOST_TEST(opts.http_max_header_bytes == 61440u);
  BOOST_TEST(opts.http_idle_timeout_ms == 1000u);
  BOOST_TEST(opts.http_header_timeout_ms == 100u);
  BOOST_TEST(opts.http_body_timeout_ms == 3600000u);
  BOOST_TEST(opts.http_write_timeout_ms == 2500u);
  expect_fail({"--http-max-connections", "0"}, "--http-max-connections");
  expect_fail({"--http-max-queued-response-bytes", "1000"}, "--http-max-queued-response-bytes");
  // Beast refuses (by throwing) a field of 64 KiB or more, so the limit stays below it.
  expect_fail({"--http-max-header-bytes", "65536"}, "--http-max-header-bytes");
  expect_fail({"--http-max-header-bytes", "100"}, "--http-max-header-bytes");
  expect_fail({"--http-header-timeout-ms", "0"}, "--http-header-timeout-ms");
  expect_fail({"--http-idle-timeout-ms", "1s"}, "--http-idle-timeout-ms");
  expect_fail({"--http-body-timeout-ms", "3600001"}, "--http-body-timeout-ms");
  expect_fail({"--http-write-timeout-ms", ""}, "--http-write-timeout-ms");
}

BOOST_AUTO_TEST_CASE(tls_files_go_together) {
  config_file cert{"not really a certificate\n"};
  auto path = cert.path.string();
  auto both = expect_run({"--http-tls-cert", path, "--http-tls-key", path});
  BOOST_TEST(both.http_tls_cert == path);
  BOOST_TEST(both.http_tls_key == path);
  expect_fail({"--http-tls-cert", path}, "--http-tls-key");
  expect_fail({"--http-tls-key", path}, "--http-tls-cert");
  expect_fail({"--http-tls-cert", "/nonexistent/cert.pem", "--http-tls-key", path},
              "/nonexistent/cert.pem");
  expect_fail({"--http-tls-cert", path, "--http-tls-key", "/nonexistent/key.pem"},
              "--http-tls-key");
  // From a config file too.
  config_file conf{"http-tls-cert = " + path + "\nhttp-tls-key = " + path + "\n"};
  BOOST_TEST(expect_run({"--config", conf.path.string()}).http_tls_key == path);
}

BOOST_AUTO_TEST_CASE(token_files) {
  config_file admin{"admin-token-0123456789\n"};
  config_file client{"client.token_0123456789==\r\n"};
  std::filesystem::permissions(admin.path, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write |
                                               std::filesystem::perms::group_read);
  std::filesystem::permissions(client.path, std::filesystem::perms::owner_read);
  auto opts = expect_run(
      {"--admin-token-file", admin.path.string(), "--client-token-file", client.path.string()});
  BOOST_TEST(opts.admin_token == "admin-token-0123456789"); // the newline is not part of it
  BOOST_TEST(opts.client_token == "client.token_0123456789==");
  BOOST_TEST(opts.admin_token_file == admin.path.string());

  // Readable by other users: refused, naming the option and the fix.
  config_file world{"world-token-0123456789\n"};
  std::filesystem::permissions(world.path, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::others_read);
  auto text = expect_fail({"--admin-token-file", world.path.string()}, "--admin-token-file");
  BOOST_TEST(text.find("chmod") != std::string::npos, text);

  auto private_file = [](const std::string& content) {
    auto file = std::make_unique<config_file>(content);
    std::filesystem::permissions(file->path, std::filesystem::perms::owner_read |
                                                 std::filesystem::perms::owner_write);
    return file;
  };
  for (const char* bad : {"", "\n", "short\n", "two tokens-0123456789\n",
                          "token-0123456789\nsecond-line\n", "token-0123456789\n\n"}) {
    auto file = private_file(bad);
    expect_fail({"--client-token-file", file->path.string()}, "--client-token-file");
  }
  auto huge = private_file(std::string(10000, 'a'));
  expect_fail({"--client-token-file", huge->path.string()}, "8 KiB");
  expect_fail({"--client-token-file", "/nonexistent/token"}, "/nonexistent/token");
  auto directory = private_file("x");
  expect_fail({"--admin-token-file", directory->dir.string()}, "not a regular file");
  // One token for both roles would make every client an admin.
  auto same = private_file("admin-token-0123456789\n");
  expect_fail(
      {"--admin-token-file", admin.path.string(), "--client-token-file", same->path.string()},
      "--client-token-file");
}

BOOST_AUTO_TEST_CASE(log_format_and_ready_lag) {
  auto defaults = expect_run({});
  BOOST_TEST((defaults.format == log_format::text));
  BOOST_TEST(defaults.ready_max_lag == 1000u);
  auto opts = expect_run({"--log-format", "json", "--ready-max-lag", "0"});
  BOOST_TEST((opts.format == log_format::json));
  BOOST_TEST(opts.ready_max_lag == 0u);
  BOOST_TEST((expect_run({"--log-format=text"}).format == log_format::text));
  expect_fail({"--log-format", "xml"}, "--log-format");
  expect_fail({"--log-format", "JSON"}, "--log-format");
  expect_fail({"--ready-max-lag", "-1"}, "--ready-max-lag");
  expect_fail({"--ready-max-lag", "lots"}, "--ready-max-lag");
  config_file file{"log-format = json\nready-max-lag = 50\n"};
  auto from_file = expect_run({"--config", file.path.string()});
  BOOST_TEST((from_file.format == log_format::json));
  BOOST_TEST(from_file.ready_max_lag == 50u);
}

BOOST_AUTO_TEST_CASE(json_log_lines_are_one_object_each) {
  auto when = std::chrono::system_clock::time_point{std::chrono::milliseconds(1764668467123)};
  auto line = logger::format_line(log_format::json, "node1", log_level::warn,
                                  "peer n2 down: \"reset\"\n\tagain \x01 \xff", when);
  BOOST_TEST(line.back() == '\n');
  BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1); // exactly one line
  auto object = boost::json::parse(line.substr(0, line.size() - 1)).as_object();
  BOOST_TEST(object.at("time").as_string() == "2025-12-02T09:41:07.123Z");
  BOOST_TEST(object.at("level").as_string() == "warn");
  BOOST_TEST(object.at("node").as_string() == "node1");
  // Invalid UTF-8 became '?', control characters survived as escapes.
  BOOST_TEST(object.at("event").as_string() == "peer n2 down: \"reset\"\n\tagain \x01 ?");
  BOOST_TEST(std::string{object.begin()->key()} == "time"); // fields in a fixed order

  auto text = logger::format_line(log_format::text, "node1", log_level::info, "ready", when);
  BOOST_TEST(text == "2025-12-02T09:41:07.123Z info  ready\n");
  // Valid UTF-8 is kept as it is.
  BOOST_TEST(logger::json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
}
