#define BOOST_TEST_MODULE node_options
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

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
  for (const char* name :
       {"--node-id", "--raft-addr", "--http-addr", "--config", "--data-dir", "--join",
        "--initial-cluster", "--log-level", "--max-body-bytes", "--version"})
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
    ports.insert(opts.raft_addr);
    ports.insert(opts.http_addr);
    raft_addrs[id] = opts.raft_addr;
    if (n > 1)
      BOOST_TEST(
          (opts.initial_cluster == expect_run({"--config", dir + "node1.conf"}).initial_cluster));
  }
  BOOST_TEST(ports.size() == 6u); // no two endpoints share a port
}
