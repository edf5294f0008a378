#include "app/node_options.hpp"

#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include <boost/program_options.hpp>

#include "net/http_api.hpp"

namespace infinity {
namespace {

namespace po = boost::program_options;

/// Every option a config file may set, with the same names as the flags.
po::options_description common_options() {
  po::options_description desc{"Node options (also valid in a --config file as `name = value`)"};
  // No po default values: a defaulted value would count as "given" and make precedence between
  // the command line and the file depend on store order; defaults live in node_options instead.
  desc.add_options()("node-id", po::value<std::string>(), "this node's id [node1]")(
      "raft-addr", po::value<std::string>(),
      "HOST:PORT of this node's Raft endpoint [localhost:8000]")(
      "http-addr", po::value<std::string>(),
      "HOST:PORT for the client API; :PORT = all interfaces, port 0 = any free port [:8001]")(
      "data-dir", po::value<std::string>(), "directory of the Raft log and state [data/<node-id>]")(
      "join", po::value<std::string>(), "HOST:PORT of a running member to join through")(
      "initial-cluster", po::value<std::string>(),
      "all members at bootstrap, ID=HOST:PORT,... (Raft addresses, including this node)")(
      "log-level", po::value<std::string>(), "error | warn | info | debug [info]")(
      "max-body-bytes", po::value<std::string>(), "largest request body accepted [1048576]")(
      "request-timeout-ms", po::value<std::string>(),
      "how long a client request may wait for the cluster [5000]");
  return desc;
}

po::options_description command_line_options() {
  po::options_description desc{"Command line only"};
  desc.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
      "config", po::value<std::string>(), "read options from FILE (the command line wins)");
  return desc;
}

options_outcome failure(std::string message) {
  options_outcome outcome;
  outcome.what = options_outcome::action::fail;
  outcome.text = std::move(message);
  return outcome;
}

std::optional<uint64_t> parse_unsigned(const std::string& text) {
  if (text.empty() || text.size() > 19)
    return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

std::string quoted(const std::string& text) {
  return "'" + text + "'";
}

/// Fills `opts` from `vm`; an error message naming the option, or "".
std::string apply_options(const po::variables_map& vm, node_options& opts) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    if (vm.count(name) == 0)
      return std::nullopt;
    return vm[name].as<std::string>();
  };
  if (auto v = get("node-id")) {
    if (!http::is_valid_node_id(*v))
      return "invalid --node-id " + quoted(*v) + ": use 1 to 64 characters from [A-Za-z0-9._-]";
    opts.node_id = *v;
  }
  if (auto v = get("raft-addr")) {
    if (!http::parse_host_port(*v))
      return "invalid --raft-addr " + quoted(*v) +
             ": expected HOST:PORT with a port from 1 to 65535";
    opts.raft_addr = *v;
  }
  if (auto v = get("http-addr")) {
    if (!http::parse_host_port(*v, {true, true}))
      return "invalid --http-addr " + quoted(*v) + ": expected HOST:PORT or :PORT";
    opts.http_addr = *v;
  }
  if (auto v = get("data-dir")) {
    if (v->empty())
      return "invalid --data-dir: must not be empty";
    opts.data_dir = *v;
  }
  if (auto v = get("join")) {
    if (!http::parse_host_port(*v))
      return "invalid --join " + quoted(*v) + ": expected HOST:PORT with a port from 1 to 65535";
    opts.join = *v;
  }
  if (auto v = get("initial-cluster")) {
    std::stringstream entries{*v};
    std::string entry;
    while (std::getline(entries, entry, ',')) {
      auto eq = entry.find('=');
      if (eq == std::string::npos)
        return "invalid --initial-cluster entry " + quoted(entry) + ": expected ID=HOST:PORT";
      auto id = entry.substr(0, eq);
      auto addr = entry.substr(eq + 1);
      if (!http::is_valid_node_id(id))
        return "invalid --initial-cluster id " + quoted(id) +
               ": use 1 to 64 characters from [A-Za-z0-9._-]";
      if (!http::parse_host_port(addr))
        return "invalid --initial-cluster address " + quoted(addr) + " for " + id +
               ": expected HOST:PORT";
      for (const auto& [other_id, other_addr] : opts.initial_cluster)
        if (other_addr == addr)
          return "invalid --initial-cluster: " + other_id + " and " + id + " share the address " +
                 addr + " (each member needs its own Raft address)";
      if (!opts.initial_cluster.emplace(id, addr).second)
        return "invalid --initial-cluster: " + id + " is listed twice";
    }
    if (opts.initial_cluster.empty())
      return "invalid --initial-cluster: no members listed";
  }
  if (auto v = get("log-level")) {
    if (*v == "error")
      opts.level = log_level::error;
    else if (*v == "warn")
      opts.level = log_level::warn;
    else if (*v == "info")
      opts.level = log_level::info;
    else if (*v == "debug")
      opts.level = log_level::debug;
    else
      return "invalid --log-level " + quoted(*v) + ": use error, warn, info or debug";
  }
  if (auto v = get("max-body-bytes")) {
    auto n = parse_unsigned(*v);
    // 1 KiB keeps room for a request with a maximal key; 1 GiB is far past any sane value.
    if (!n || *n < 1024 || *n > (uint64_t{1} << 30))
      return "invalid --max-body-bytes " + quoted(*v) +
             ": expected an integer from 1024 to 1073741824";
    opts.max_body_bytes = static_cast<std::size_t>(*n);
  }
  if (auto v = get("request-timeout-ms")) {
    auto n = parse_unsigned(*v);
    if (!n || *n < 1 || *n > 600000)
      return "invalid --request-timeout-ms " + quoted(*v) +
             ": expected an integer from 1 to 600000";
    opts.request_timeout_ms = static_cast<uint32_t>(*n);
  }
  // Checked after --node-id is final, whichever source set either option.
  if (!opts.initial_cluster.empty() && opts.initial_cluster.count(opts.node_id) == 0)
    return "invalid --initial-cluster: it does not list this node (--node-id " + opts.node_id + ")";
  if (opts.data_dir.empty())
    opts.data_dir = "data/" + opts.node_id;
  return {};
}

} // namespace

const char* to_string(log_level level) {
  switch (level) {
  case log_level::error:
    return "error";
  case log_level::warn:
    return "warn";
  case log_level::info:
    return "info";
  case log_level::debug:
    return "debug";
  }
  return "unknown";
}

options_outcome parse_node_options(int argc, const char* const* argv) {
  try {
    auto common = common_options();
    po::options_description all{"Usage: infinitystore [options]"};
    all.add(command_line_options()).add(common);

    po::variables_map vm;
    // Stray arguments are collected under a hidden name so the error can quote them (po would
    // otherwise drop them silently, or reject them without saying which).
    po::options_description hidden;
    hidden.add_options()("positional", po::value<std::vector<std::string>>());
    po::options_description parsed_options;
    parsed_options.add(all).add(hidden);
    po::positional_options_description positionals;
    positionals.add("positional", -1);
    po::store(
        po::command_line_parser(argc, argv).options(parsed_options).positional(positionals).run(),
        vm);
    if (vm.count("positional") > 0)
      return failure("unexpected argument " +
                     quoted(vm["positional"].as<std::vector<std::string>>().front()) +
                     " (options start with --)");
    if (vm.count("help") > 0) {
      std::ostringstream out;
      out << all;
      options_outcome outcome;
      outcome.what = options_outcome::action::help;
      outcome.text = out.str();
      return outcome;
    }
    if (vm.count("version") > 0) {
      options_outcome outcome;
      outcome.what = options_outcome::action::version;
      outcome.text = std::string{"infinitystore "} + INFINITYSTORE_VERSION;
      return outcome;
    }
    options_outcome outcome;
    if (vm.count("config") > 0) {
      auto path = vm["config"].as<std::string>();
      outcome.options.config_file = path;
      std::ifstream file{path};
      if (!file)
        return failure("cannot read --config file " + quoted(path));
      try {
        // Stored after the command line, so values given there are kept (po keeps the first).
        po::store(po::parse_config_file(file, common, /*allow_unregistered=*/false), vm);
      } catch (const po::error& e) {
        return failure("in --config file " + quoted(path) + ": " + e.what());
      }
    }
    po::notify(vm);
    auto error = apply_options(vm, outcome.options);
    if (!error.empty())
      return failure(error);
    return outcome;
  } catch (const po::error& e) {
    return failure(e.what());
  } catch (const std::exception& e) {
    return failure(std::string{"cannot parse options: "} + e.what());
  }
}

options_outcome parse_node_options(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  argv.push_back("infinitystore");
  for (const auto& arg : args)
    argv.push_back(arg.c_str());
  return parse_node_options(static_cast<int>(argv.size()), argv.data());
}

} // namespace infinity
