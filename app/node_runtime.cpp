#include "app/node_runtime.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <unistd.h>

#include <caf/all.hpp>

#include "actors/kv/kv_actor.hpp"
#include "actors/messages.hpp"
#include "actors/raft/node_actor.hpp"
#include "actors/storage/file_storage.hpp"
#include "actors/storage/snapshot_actor.hpp"
#include "actors/storage/storage_actor.hpp"
#include "app/cluster_bootstrap.hpp"
#include "app/join_requester.hpp"
#include "net/http_api.hpp"
#include "net/http_server.hpp"
#include "net/metrics.hpp"
#include "net/peer_connector.hpp"
#include "net/raft_transport.hpp"

namespace infinity {
namespace {

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

/// Removes what a bootstrap wrote into a directory that was empty, so a failed start leaves
/// nothing another node could mistake for its own.
void undo_bootstrap(const std::string& directory, bool directory_created) {
  std::error_code ignored;
  if (directory_created) {
    std::filesystem::remove_all(directory, ignored);
    return;
  }
  for (const auto& entry : std::filesystem::directory_iterator(directory, ignored)) {
    auto name = entry.path().filename().string();
    if (name == "hard_state" || name == "identity" || name == "LOCK" ||
        name.rfind("log-", 0) == 0 || name.find(".tmp") != std::string::npos)
      std::filesystem::remove(entry.path(), ignored);
    else if (name == "snapshots")
      std::filesystem::remove_all(entry.path(), ignored); // empty: nothing was applied yet
  }
}

} // namespace

struct node_runtime::impl {
  node_options opts;
  const logger& log;
  /// The system keeps a reference to its config: both live as long as the node runs.
  std::unique_ptr<caf::actor_system_config> config;
  std::unique_ptr<caf::actor_system> system;
  std::unique_ptr<http_server> server;
  std::shared_ptr<metrics::node_metrics> counters = std::make_shared<metrics::node_metrics>();
  std::shared_ptr<raft_transport> transport;
  raft_node_actor raft;
  kv_actor kv;
  std::shared_ptr<local_read_view> read_view = std::make_shared<local_read_view>();
  storage_actor storage;
  snapshot_actor snapshots;
  caf::actor connector;
  caf::actor joiner;
  std::atomic<bool> stopping{false};
  bool stopped = true;

  impl(node_options o, const logger& l) : opts(std::move(o)), log(l) {}

  void info(const std::string& line) const { log.write(log_level::info, line); }
};

node_runtime::node_runtime(node_options options, const logger& log)
    : impl_(std::make_unique<impl>(std::move(options), log)) {
  // nop
}

node_runtime::~node_runtime() {
  stop();
}

std::string node_runtime::start() {
  auto& d = *impl_;
  const auto& opts = d.opts;
  const uint64_t seed = random_seed();
  std::error_code exists_error;
  const bool directory_existed = std::filesystem::exists(opts.data_dir, exists_error);

  std::shared_ptr<file_storage> backend;
  std::shared_ptr<snapshot_store> snapshot_files;
  prepared_directory prepared;
  startup_snapshot snapshot;
  try {
    backend = std::make_shared<file_storage>(opts.data_dir);
    prepared = prepare_data_directory(*backend, backend->recover(), opts, seed);
    snapshot_files = std::make_shared<snapshot_store>(opts.data_dir);
    snapshot = load_startup_snapshot(*snapshot_files, *backend, prepared.state);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("cannot use --data-dir", 0) == 0 || what.rfind("--initial-cluster", 0) == 0)
      return what;
    return "cannot use --data-dir '" + opts.data_dir + "': " + what;
  }
  auto fail = [&](const std::string& why) {
    stop();
    backend.reset(); // releases the directory lock
    snapshot_files.reset();
    if (prepared.bootstrapped_now) {
      undo_bootstrap(opts.data_dir, !directory_existed);
      d.info("removed the bootstrap state this failed start wrote to " + opts.data_dir);
    }
    return why;
  };
  if (!backend->recovery_report().empty())
    d.log.write(log_level::warn, "storage: " + backend->recovery_report());
  if (!prepared.repair_warning.empty())
    d.log.write(log_level::warn, "storage: " + prepared.repair_warning);
  d.info("cluster: " + prepared.description);
  if (!snapshot_files->open_report().empty())
    d.log.write(log_level::warn, "snapshots: " + snapshot_files->open_report());
  for (const auto& line : snapshot.report)
    d.info("snapshots: " + line);
  auto raft_endpoint = http::parse_host_port(opts.raft_addr);
  if (!raft_endpoint)
    return fail("invalid --raft-addr '" + opts.raft_addr + "'");
  auto& recovered = prepared.state;
  d.info("storage: recovered term " + std::to_string(recovered.state.term) + " and " +
         std::to_string(recovered.entries.size()) + " log entries from " + opts.data_dir);

  d.config = std::make_unique<caf::actor_system_config>();
  auto& cfg = *d.config;
  // A plain config filled by hand: actor_system_config::parse would reject our own options.
  cfg.set("scheduler.max-threads", size_t{std::max(2u, std::thread::hardware_concurrency())});
  // The default work-stealing scheduler polls while idle: measured about 15% of a core per idle
  // node here (ticks every 20 ms keep it out of its relaxed phase), which three nodes on a small
  // box feel. The sharing scheduler sleeps on a condition variable: about 1%, same latency.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  register_message_types(cfg);
  // The middleman carries Raft between nodes, with heartbeats so a frozen peer is noticed.
  configure_middleman(cfg);
  d.system = std::make_unique<caf::actor_system>(cfg);
  d.stopped = false;

  raft_transport_options transport_opts;
  transport_opts.tls_cert = opts.raft_tls_cert;
  transport_opts.tls_key = opts.raft_tls_key;
  transport_opts.tls_ca = opts.raft_tls_ca;
  // An append carries at most ~1 MiB of entries, but one entry may be as large as a request
  // body; a snapshot chunk is 1 MiB.
  transport_opts.max_frame_bytes = static_cast<uint32_t>(
      std::min<std::size_t>(std::max<std::size_t>(std::size_t{16} << 20,
                                                  2 * opts.max_body_bytes + (std::size_t{1} << 20)),
                            std::size_t{1} << 31));
  transport_opts.log = [&d](const std::string& line) { d.log.write(log_level::warn, line); };
  try {
    d.transport = std::make_shared<raft_transport>(*d.system, transport_opts);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (d.transport->authenticates())
    d.info("raft port: mutual TLS, peers authenticated by the CA in " + opts.raft_tls_ca);
  else
    d.log.write(log_level::warn,
                "raft port: plain TCP, NOT authenticated or encrypted (" +
                    std::string{opts.raft_insecure ? "--raft-insecure" : "loopback only"} +
                    "); give --raft-tls-cert/--raft-tls-key/--raft-tls-ca to secure it");

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
  http_opts.metrics = d.counters;
  http_opts.readiness.max_lag = opts.ready_max_lag;
  http_opts.storage_check = [counters = d.counters, dir = opts.data_dir] {
    return metrics::storage_problem(dir, *counters, std::chrono::seconds(5));
  };
  http_opts.log = [&d](const std::string& line) { d.info(line); };
  if (d.log.enabled(log_level::debug))
    http_opts.debug_log = [&d](const std::string& line) { d.log.write(log_level::debug, line); };
  try {
    d.server = std::make_unique<http_server>(*d.system, http_opts);
  } catch (const http_tls_error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(std::string{e.what()} + " (--http-addr)");
  }

  raft_config raft_cfg;
  raft_cfg.id = opts.node_id;
  raft_cfg.http_address = advertised_http_address(opts, d.server->port());
  raft_cfg.snapshot_keep_tail = opts.snapshot_keep_tail;
  std::map<std::string, std::string> initial_peers;
  for (const auto& [id, address] : latest_membership(recovered))
    if (id != opts.node_id)
      initial_peers.emplace(id, address);
  const bool waiting_to_join = !opts.join.empty() && latest_membership(recovered).empty();

  d.storage = spawn_storage_actor(*d.system, backend, nullptr, /*detached=*/true, d.counters);
  backend.reset(); // the storage actor owns it now; the directory lock goes with it
  snapshot_actor_options snapshot_opts;
  snapshot_opts.retain = opts.snapshot_retain;
  snapshot_opts.log = [&d](const std::string& line) { d.info(line); };
  d.snapshots = spawn_snapshot_actor(*d.system, std::move(snapshot_files), std::move(snapshot_opts),
                                     /*detached=*/true);
  kv_snapshot_policy policy;
  policy.snapshots = d.snapshots;
  policy.every_entries = opts.snapshot_entries;
  policy.every_bytes = opts.snapshot_bytes;
  std::optional<restored_state_machine> initial;
  if (snapshot.machine)
    initial = restored_state_machine{
        recovered.snapshot, std::make_shared<kv_state_machine>(std::move(*snapshot.machine))};
  d.kv = spawn_kv_actor(*d.system, nullptr, std::move(policy), std::move(initial), d.read_view);
  d.raft = spawn_raft_node(
      *d.system, raft_cfg, std::move(recovered), d.storage, d.kv, d.snapshots, seed ^ 0x5bd1e995,
      [&d](const std::string& line) { d.info(line); },
      d.transport->authenticates()
          ? peer_authenticator{[t = d.transport](const caf::node_id& node) {
              return t->peer_identity(node);
            }}
          : peer_authenticator{},
      d.read_view);
  // The node is useless without its Raft actor (e.g. storage failed an fsync and took it down):
  // exit non-zero rather than answer every request with an error.
  caf::actor_cast<caf::abstract_actor*>(d.raft)->attach_functor([this](const caf::error& reason) {
    if (impl_->stopping.load())
      return;
    impl_->log.write(log_level::error, "raft node stopped unexpectedly: " + caf::to_string(reason));
    exit_code_.store(1);
    if (on_fatal)
      on_fatal();
  });

  peer_connector_options peer_opts;
  peer_opts.log_event = [&d](const std::string& line) { d.info(line); };
  peer_opts.transport = d.transport;
  auto connector =
      spawn_peer_connector(*d.system, caf::actor_cast<caf::actor>(d.raft), opts.node_id,
                           raft_endpoint->host, raft_endpoint->port, initial_peers, peer_opts);
  if (!connector)
    return fail(d.system->render(connector.error()) + " (--raft-addr)");
  d.connector = *connector;
  caf::anon_send(d.raft, observer_atom::value, d.connector);
  if (waiting_to_join) {
    join_request_options join;
    join.member_http = opts.join;
    join.node_id = opts.node_id;
    join.raft_address = opts.raft_addr;
    join.admin_token = opts.admin_token;
    join.report = [this](const std::string& line, bool fatal) {
      impl_->log.write(fatal ? log_level::error : log_level::info, line);
      if (fatal) {
        exit_code_.store(1);
        if (on_fatal)
          on_fatal();
      }
    };
    d.joiner = spawn_join_requester(*d.system, std::move(join));
  }

  d.server->start(caf::actor_cast<caf::actor>(d.raft), d.read_view);
  d.info("node " + opts.node_id + " ready: http " + d.server->local_address());
  return {};
}

void node_runtime::stop() {
  auto& d = *impl_;
  if (d.stopped)
    return;
  d.stopped = true;
  d.stopping.store(true);
  if (d.server)
    d.server->stop();
  for (const auto& actor :
       {caf::actor_cast<caf::actor>(d.raft), caf::actor_cast<caf::actor>(d.kv),
        caf::actor_cast<caf::actor>(d.storage), caf::actor_cast<caf::actor>(d.snapshots), d.joiner})
    if (actor)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  if (d.system)
    d.system->await_all_actors_done();
  d.server.reset();
  d.raft = nullptr;
  d.kv = nullptr;
  d.storage = nullptr;
  d.snapshots = nullptr;
  d.connector = nullptr;
  d.joiner = nullptr;
  // Before the system: the transport hands accepted connections to the middleman's
  // multiplexer, which must outlive its thread. CAF then sees every Raft connection closed.
  if (d.transport)
    d.transport->stop();
  d.system.reset();
  d.config.reset();
  d.transport.reset();
}

} // namespace infinity
