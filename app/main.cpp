// infinitystore: one node process.
//
// Startup order matters for clean failure: options, then the data directory (recover), then the
// HTTP listener (bind), and only then the actors, so a bad directory or a taken port exits with
// one clear line and nothing to tear down. Shutdown (SIGINT/SIGTERM, or the Raft node dying)
// runs the other way: stop accepting and close connections, then stop the actors and wait.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <pthread.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/kv/kv_actor.hpp"
#include "actors/messages.hpp"
#include "actors/raft/node_actor.hpp"
#include "actors/storage/file_storage.hpp"
#include "actors/storage/storage_actor.hpp"
#include "app/cluster_bootstrap.hpp"
#include "app/node_options.hpp"
#include "net/http_api.hpp"
#include "net/http_server.hpp"
#include "net/peer_connector.hpp"

namespace {

using namespace infinity;

/// One line per event on stderr; called from actor and I/O threads, hence the mutex.
class logger {
 public:
  explicit logger(log_level level) : level_(level) {}

  bool enabled(log_level level) const { return level <= level_; }

  void write(log_level level, const std::string& line) const {
    if (!enabled(level))
      return;
    auto now = std::chrono::system_clock::now();
    auto seconds = std::chrono::system_clock::to_time_t(now);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char level_text[8];
    std::snprintf(level_text, sizeof level_text, "%-5s", to_string(level));
    std::lock_guard<std::mutex> guard{mutex_};
    std::fprintf(stderr, "%s.%03dZ %s %s\n", stamp, static_cast<int>(millis), level_text,
                 line.c_str());
    std::fflush(stderr);
  }

 private:
  log_level level_;
  mutable std::mutex mutex_;
};

uint64_t random_seed() {
  std::random_device device;
  auto clock = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return (uint64_t{device()} << 32 | device()) ^ clock ^ (static_cast<uint64_t>(::getpid()) << 16);
}

/// The HTTP address other nodes hand to clients: the listen host, unless it is a wildcard, in
/// which case the Raft host (the name peers already reach us by), with the bound port.
std::string advertised_http_address(const node_options& opts, uint16_t port) {
  auto http = http::parse_host_port(opts.http_addr, {true, true});
  std::string host = http ? http->host : std::string{};
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    auto raft = http::parse_host_port(opts.raft_addr);
    host = raft ? raft->host : "localhost";
  }
  if (host.find(':') != std::string::npos)
    host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

int fail_startup(const std::string& message) {
  std::fprintf(stderr, "infinitystore: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  auto parsed = parse_node_options(argc, argv);
  switch (parsed.what) {
  case options_outcome::action::help:
    std::cout << parsed.text;
    return 0;
  case options_outcome::action::version:
    std::cout << parsed.text << "\n";
    return 0;
  case options_outcome::action::fail:
    std::fprintf(stderr, "infinitystore: %s (see --help)\n", parsed.text.c_str());
    return 2;
  case options_outcome::action::run:
    break;
  }
  const node_options opts = parsed.options;
  logger log{opts.level};

  // Blocked before any thread exists, so every thread inherits the mask and the signals wait
  // for sigwait below instead of killing the process mid-write.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  log.write(log_level::info, "infinitystore " INFINITYSTORE_VERSION " node " + opts.node_id +
                                 ": data-dir " + opts.data_dir + ", raft-addr " + opts.raft_addr +
                                 ", http-addr " + opts.http_addr);

  std::shared_ptr<file_storage> backend;
  recovered_state recovered;
  try {
    backend = std::make_shared<file_storage>(opts.data_dir);
    recovered = backend->recover();
  } catch (const std::exception& e) {
    return fail_startup("cannot use --data-dir '" + opts.data_dir + "': " + e.what());
  }
  // Repairing means entering repair mode, which the Raft node does not honour yet: refuse, as
  // storage did before it could tell repairable damage apart.
  if (recovered.damage)
    return fail_startup("cannot use --data-dir '" + opts.data_dir +
                        "': " + recovered.damage->description);
  if (!backend->recovery_report().empty())
    log.write(log_level::warn, "storage: " + backend->recovery_report());
  try {
    std::string bootstrap_line;
    recovered = bootstrap_if_empty(*backend, std::move(recovered), opts, bootstrap_line);
    log.write(log_level::info, "cluster: " + bootstrap_line);
  } catch (const std::exception& e) {
    return fail_startup(e.what());
  }
  auto raft_endpoint = http::parse_host_port(opts.raft_addr);
  if (!raft_endpoint)
    return fail_startup("invalid --raft-addr '" + opts.raft_addr + "'");
  log.write(log_level::info, "storage: recovered term " + std::to_string(recovered.state.term) +
                                 " and " + std::to_string(recovered.entries.size()) +
                                 " log entries from " + opts.data_dir);

  caf::actor_system_config cfg;
  // A plain config filled by hand: actor_system_config::parse would reject our own options.
  cfg.set("scheduler.max-threads", size_t{std::max(2u, std::thread::hardware_concurrency())});
  // The default work-stealing scheduler polls while idle: measured about 15% of a core per idle
  // node here (ticks every 20 ms keep it out of its relaxed phase), which three nodes on a small
  // box feel. The sharing scheduler sleeps on a condition variable: about 1%, same latency.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  register_message_types(cfg);
  // The middleman carries Raft between nodes, with heartbeats so a frozen peer is noticed.
  configure_middleman(cfg);
  caf::actor_system system{cfg};

  const uint64_t seed = random_seed();
  http_server_options http_opts;
  http_opts.address = opts.http_addr;
  http_opts.limits.max_body_bytes = opts.max_body_bytes;
  http_opts.write_request_timeout = std::chrono::milliseconds(opts.request_timeout_ms);
  http_opts.read_request_timeout = std::chrono::milliseconds(opts.request_timeout_ms);
  http_opts.max_connections = opts.http_max_connections;
  http_opts.max_queued_response_bytes = opts.http_max_queued_response_bytes;
  http_opts.max_header_bytes = opts.http_max_header_bytes;
  http_opts.idle_timeout = std::chrono::milliseconds(opts.http_idle_timeout_ms);
  http_opts.header_timeout = std::chrono::milliseconds(opts.http_header_timeout_ms);
  http_opts.body_timeout = std::chrono::milliseconds(opts.http_body_timeout_ms);
  http_opts.write_timeout = std::chrono::milliseconds(opts.http_write_timeout_ms);
  http_opts.tls_cert_file = opts.http_tls_cert;
  http_opts.tls_key_file = opts.http_tls_key;
  http_opts.tokens = {opts.admin_token, opts.client_token};
  http_opts.client_id_seed = seed;
  http_opts.log = [&log](const std::string& line) { log.write(log_level::info, line); };
  if (log.enabled(log_level::debug))
    http_opts.debug_log = [&log](const std::string& line) { log.write(log_level::debug, line); };
  std::unique_ptr<http_server> server;
  try {
    server = std::make_unique<http_server>(system, http_opts);
  } catch (const http_tls_error& e) {
    return fail_startup(e.what());
  } catch (const std::exception& e) {
    return fail_startup(std::string{e.what()} + " (--http-addr)");
  }

  raft_config raft_cfg;
  raft_cfg.id = opts.node_id;
  raft_cfg.http_address = advertised_http_address(opts, server->port());
  // Members come from the membership entries in the log (written at bootstrap or replicated).
  raft_cfg.log_event = [&log](const std::string& line) { log.write(log_level::info, line); };
  // The Raft actor reports membership changes from its own thread; the connector is spawned
  // after it, so hand it over through a guarded slot.
  struct connector_slot {
    std::mutex mutex;
    caf::actor actor;
  };
  auto connector_holder = std::make_shared<connector_slot>();
  auto tell_connector = [connector_holder](const std::string& id, const std::string& address) {
    std::lock_guard<std::mutex> guard{connector_holder->mutex};
    if (connector_holder->actor)
      caf::anon_send(connector_holder->actor, peer_up_atom::value, id, address);
  };
  const auto self_id = opts.node_id;
  raft_cfg.on_membership = [tell_connector, self_id](const membership& members) {
    for (const auto& [id, address] : members)
      if (id != self_id && !address.empty())
        tell_connector(id, address);
  };
  raft_cfg.connect_peer = tell_connector;
  raft_cfg.disconnect_peer = [connector_holder](const std::string& id) {
    std::lock_guard<std::mutex> guard{connector_holder->mutex};
    if (connector_holder->actor)
      caf::anon_send(connector_holder->actor, peer_down_atom::value, id);
  };
  std::map<std::string, std::string> initial_peers;
  for (const auto& [id, address] : latest_membership(recovered))
    if (id != opts.node_id)
      initial_peers.emplace(id, address);

  auto storage = spawn_storage_actor(system, backend, nullptr, /*detached=*/true);
  backend.reset(); // the storage actor owns it now; the directory lock goes with it
  auto kv = spawn_kv_actor(system);
  auto raft =
      spawn_raft_node(system, raft_cfg, std::move(recovered), storage, kv, seed ^ 0x5bd1e995);

  // The node is useless without its Raft actor (e.g. storage failed an fsync and took it down):
  // exit non-zero rather than answer every request with an error.
  std::atomic<bool> shutting_down{false};
  std::atomic<int> exit_code{0};
  caf::actor_cast<caf::abstract_actor*>(raft)->attach_functor(
      [&log, &shutting_down, &exit_code](const caf::error& reason) {
        if (shutting_down.load())
          return;
        log.write(log_level::error, "raft node stopped unexpectedly: " + caf::to_string(reason));
        exit_code.store(1);
        ::kill(::getpid(), SIGTERM);
      });

  peer_connector_options peer_opts;
  peer_opts.log_event = [&log](const std::string& line) { log.write(log_level::info, line); };
  auto connector = spawn_peer_connector(system, raft, opts.node_id, raft_endpoint->host,
                                        raft_endpoint->port, initial_peers, peer_opts);
  if (!connector) {
    log.write(log_level::error, system.render(connector.error()) + " (--raft-addr)");
    shutting_down.store(true);
    server->stop();
    for (const auto& actor : {raft, kv, storage})
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    system.await_all_actors_done();
    return 1;
  }
  {
    std::lock_guard<std::mutex> guard{connector_holder->mutex};
    connector_holder->actor = *connector;
  }
  if (!opts.join.empty() && latest_membership(recovered).empty()) {
    // Ask a member to add us; retry while nobody answers or the cluster is busy.
    std::thread{[&log, opts] {
      for (int attempt = 1;; ++attempt) {
        std::string body;
        // The cluster shares one admin token: this node's own, when it has one.
        auto status = request_join(opts.join, opts.node_id, opts.raft_addr, body, opts.admin_token);
        if (status == 200) {
          log.write(log_level::info, "joined the cluster through " + opts.join);
          return;
        }
        if (status == 400 || status == 409) {
          log.write(log_level::error, "cannot join through " + opts.join + ": " + body);
          ::kill(::getpid(), SIGTERM);
          return;
        }
        if (attempt == 1 || attempt % 10 == 0)
          log.write(log_level::warn,
                    "join through " + opts.join + " not done yet (" +
                        (status == 0 ? body : std::to_string(status) + " " + body) + "), retrying");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }}.detach();
  }

  server->start(raft, kv);
  log.write(log_level::info, "node " + opts.node_id + " ready: http " + server->local_address());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  shutting_down.store(true);
  if (exit_code.load() == 0)
    log.write(log_level::info, std::string{"received "} +
                                   (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
                                   ", shutting down");

  // A hung actor must not keep the process alive: give up after a bound.
  std::thread{[&log] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    log.write(log_level::error, "shutdown took longer than 10 s, exiting anyway");
    std::_Exit(3);
  }}.detach();

  server->stop();
  for (const auto& actor : {raft, kv, storage})
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  system.await_all_actors_done();
  server.reset();
  log.write(log_level::info, "stopped");
  return exit_code.load();
}
