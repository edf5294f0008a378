#include "app/node_options.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>

#include <sys/stat.h>

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
      "log-format", po::value<std::string>(),
      "text | json (one object per line: time, level, node, event) [text]")(
      "ready-max-lag", po::value<std::string>(),
      "GET /ready answers 503 while this node's applied index trails the leader's commit "
      "index by more entries [1000]")("max-body-bytes", po::value<std::string>(),
                                      "largest request body accepted [1048576]")(
      "request-timeout-ms", po::value<std::string>(),
      "how long a client request may wait for the cluster [5000]")(
      "http-max-connections", po::value<std::string>(),
      "open client connections at most (also capped by ulimit -n); more get 503 [4096]")(
      "http-max-queued-response-bytes", po::value<std::string>(),
      "response bytes one connection may have waiting; beyond it the node stops reading "
      "that connection until the client reads [4194304]")(
      "http-max-header-bytes", po::value<std::string>(),
      "request line and headers, and a chunked body's trailer, at most; more get 431 [16384]")(
      "http-idle-timeout-ms", po::value<std::string>(),
      "close a keep-alive connection idle between requests for this long [60000]")(
      "http-header-timeout-ms", po::value<std::string>(),
      "close a connection whose request headers (and TLS handshake) take longer [10000]")(
      "http-body-timeout-ms", po::value<std::string>(),
      "close a connection whose request body takes longer after its headers [30000]")(
      "http-write-timeout-ms", po::value<std::string>(),
      "close a connection that takes longer to read one response [30000]")(
      "http-tls-cert", po::value<std::string>(),
      "PEM certificate chain: with --http-tls-key the client port speaks only HTTPS (TLS 1.2+)")(
      "http-tls-key", po::value<std::string>(), "PEM private key of --http-tls-cert")(
      "raft-tls-cert", po::value<std::string>(),
      "PEM certificate of this node for the Raft port, signed by --raft-tls-ca, CN = --node-id; "
      "with --raft-tls-key and --raft-tls-ca the Raft port speaks only mutual TLS 1.3")(
      "raft-tls-key", po::value<std::string>(), "PEM private key of --raft-tls-cert")(
      "raft-tls-ca", po::value<std::string>(),
      "PEM certificate of the cluster CA: peers must present a certificate it signed, whose CN "
      "is the member id they speak for")(
      "raft-insecure", po::value<std::string>()->implicit_value("true"),
      "allow a Raft port without TLS on a non-loopback --raft-addr (anyone who reaches it takes "
      "part in Raft); without certificates the default is loopback only [false]")(
      "admin-token-file", po::value<std::string>(),
      "file holding the Bearer token that admin endpoints (POST /join) require; not readable "
      "by other users")(
      "client-token-file", po::value<std::string>(),
      "file holding the Bearer token every other request then requires (the admin token works "
      "too); not readable by other users")(
      "snapshot-entries", po::value<std::string>(),
      "snapshot the state machine after this many applied entries; 0 = only by bytes [10000]")(
      "snapshot-bytes", po::value<std::string>(),
      "... or after this many bytes of applied commands; 0 = only by entries [33554432]")(
      "snapshot-keep-tail", po::value<std::string>(),
      "log entries kept before a snapshot, so followers a little behind need no snapshot [1024]")(
      "snapshot-retain", po::value<std::string>(), "snapshot files kept on disk [2]");
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

/// An unsigned option within [min, max]; an error message naming it, or "".
template <class T>
std::string apply_number(const po::variables_map& vm, const char* name, uint64_t min, uint64_t max,
                         T& out) {
  if (vm.count(name) == 0)
    return {};
  auto text = vm[name].as<std::string>();
  auto n = parse_unsigned(text);
  if (!n || *n < min || *n > max)
    return std::string{"invalid --"} + name + " " + quoted(text) + ": expected an integer from " +
           std::to_string(min) + " to " + std::to_string(max);
  out = static_cast<T>(*n);
  return {};
}

/// Reads a token file into `token`; an error message naming the option, or "".
std::string read_token_file(const char* option, const std::string& path, std::string& token) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return std::string{"cannot read --"} + option + " " + quoted(path) + ": " +
           std::strerror(errno);
  if (!S_ISREG(info.st_mode))
    return std::string{"invalid --"} + option + " " + quoted(path) + ": not a regular file";
  // Like ssh with private keys: a secret every local user can read is no secret, and the
  // attacker this guards against is a local one.
  if ((info.st_mode & S_IRWXO) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return std::string{"refusing --"} + option + " " + quoted(path) +
           ": other users may access it (mode " + mode + "); chmod o-rwx it";
  }
  if (info.st_size > 8192)
    return std::string{"invalid --"} + option + " " + quoted(path) +
           ": larger than 8 KiB; it must hold one token";
  std::ifstream file{path, std::ios::binary};
  std::string text{std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
  if (!file && !file.eof())
    return std::string{"cannot read --"} + option + " " + quoted(path);
  if (!text.empty() && text.back() == '\n')
    text.pop_back();
  if (!text.empty() && text.back() == '\r')
    text.pop_back();
  if (text.size() < 16 || text.size() > 4096 || !http::is_valid_bearer_token(text))
    return std::string{"invalid --"} + option + " " + quoted(path) +
           ": the file must hold one token of 16 to 4096 characters from "
           "[A-Za-z0-9-._~+/] (then optional '='), and nothing else";
  token = std::move(text);
  return {};
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
  if (auto v = get("log-format")) {
    if (*v == "text")
      opts.format = log_format::text;
    else if (*v == "json")
      opts.format = log_format::json;
    else
      return "invalid --log-format " + quoted(*v) + ": use text or json";
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
  for (auto error : {
           apply_number(vm, "http-max-connections", 1, 1000000, opts.http_max_connections),
           apply_number(vm, "ready-max-lag", 0, uint64_t{1} << 40, opts.ready_max_lag),
           apply_number(vm, "http-max-queued-response-bytes", 65536, uint64_t{1} << 30,
                        opts.http_max_queued_response_bytes),
           // Beast stores one header field in under 64 KiB; a larger limit would let one
           // through that it then refuses by throwing.
           apply_number(vm, "http-max-header-bytes", 1024, 61440, opts.http_max_header_bytes),
           apply_number(vm, "http-idle-timeout-ms", 100, 3600000, opts.http_idle_timeout_ms),
           apply_number(vm, "http-header-timeout-ms", 100, 3600000, opts.http_header_timeout_ms),
           apply_number(vm, "http-body-timeout-ms", 100, 3600000, opts.http_body_timeout_ms),
           apply_number(vm, "http-write-timeout-ms", 100, 3600000, opts.http_write_timeout_ms),
           apply_number(vm, "snapshot-entries", 0, uint64_t{1} << 40, opts.snapshot_entries),
           apply_number(vm, "snapshot-bytes", 0, uint64_t{1} << 50, opts.snapshot_bytes),
           apply_number(vm, "snapshot-keep-tail", 0, uint64_t{1} << 40, opts.snapshot_keep_tail),
           apply_number(vm, "snapshot-retain", 1, 1000, opts.snapshot_retain),
       })
    if (!error.empty())
      return error;
  if (opts.snapshot_entries == 0 && opts.snapshot_bytes == 0)
    return "--snapshot-entries and --snapshot-bytes are both 0: the log would grow forever";
  if (auto v = get("http-tls-cert"))
    opts.http_tls_cert = *v;
  if (auto v = get("http-tls-key"))
    opts.http_tls_key = *v;
  if (opts.http_tls_cert.empty() != opts.http_tls_key.empty())
    return opts.http_tls_cert.empty() ? "--http-tls-key needs --http-tls-cert"
                                      : "--http-tls-cert needs --http-tls-key";
  // Loaded (and checked to match) when the server starts; a missing file is an option error.
  if (!opts.http_tls_cert.empty() && !std::ifstream{opts.http_tls_cert})
    return "cannot read --http-tls-cert " + quoted(opts.http_tls_cert);
  if (!opts.http_tls_key.empty() && !std::ifstream{opts.http_tls_key})
    return "cannot read --http-tls-key " + quoted(opts.http_tls_key);
  if (auto v = get("admin-token-file")) {
    opts.admin_token_file = *v;
    if (auto error = read_token_file("admin-token-file", *v, opts.admin_token); !error.empty())
      return error;
  }
  if (auto v = get("client-token-file")) {
    opts.client_token_file = *v;
    if (auto error = read_token_file("client-token-file", *v, opts.client_token); !error.empty())
      return error;
  }
  if (!opts.admin_token.empty() && opts.admin_token == opts.client_token)
    return "invalid --client-token-file: it holds the admin token; use two different tokens";
  if (auto v = get("raft-tls-cert"))
    opts.raft_tls_cert = *v;
  if (auto v = get("raft-tls-key"))
    opts.raft_tls_key = *v;
  if (auto v = get("raft-tls-ca"))
    opts.raft_tls_ca = *v;
  int raft_tls_given =
      !opts.raft_tls_cert.empty() + !opts.raft_tls_key.empty() + !opts.raft_tls_ca.empty();
  if (raft_tls_given != 0 && raft_tls_given != 3)
    return "--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together";
  // The files are loaded when the node starts, which names the one that fails: the shipped
  // config/node*.conf point at certificates scripts/run-cluster.sh creates later.
  if (auto v = get("raft-insecure")) {
    if (*v == "true" || *v == "1")
      opts.raft_insecure = true;
    else if (*v == "false" || *v == "0")
      opts.raft_insecure = false;
    else
      return "invalid --raft-insecure " + quoted(*v) + ": use true or false";
  }
  if (raft_tls_given == 0 && !opts.raft_insecure && !is_loopback_address(opts.raft_addr))
    return "--raft-addr " + quoted(opts.raft_addr) +
           " is not a loopback address: give --raft-tls-cert, --raft-tls-key and --raft-tls-ca, "
           "or --raft-insecure to run an unauthenticated Raft port on it";
  // Checked after --node-id is final, whichever source set either option.
  if (!opts.initial_cluster.empty() && opts.initial_cluster.count(opts.node_id) == 0)
    return "invalid --initial-cluster: it does not list this node (--node-id " + opts.node_id + ")";
  if (opts.data_dir.empty())
    opts.data_dir = "data/" + opts.node_id;
  return {};
}

} // namespace

bool is_loopback_address(const std::string& host_port) {
  auto parsed = http::parse_host_port(host_port);
  if (!parsed)
    return false;
  auto host = parsed->host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

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
