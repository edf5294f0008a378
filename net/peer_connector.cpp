#include "net/peer_connector.hpp"

#include "net/bounded_dialer.hpp"
#include "net/raft_transport.hpp"

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <utility>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

namespace infinity {

void configure_middleman(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", peer_heartbeat_interval);
  cfg.set("middleman.connection-timeout", peer_connection_timeout);
}

namespace {

/// Backoff timer of one peer; `generation` tells a live timer from one made stale by a later
/// dial, a removal or a re-add under the same id.
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;

struct endpoint {
  std::string host;
  uint16_t port = 0;

  std::string to_string() const { return host + ":" + std::to_string(port); }
  bool operator==(const endpoint& other) const { return host == other.host && port == other.port; }
};

caf::expected<endpoint> parse_endpoint(const std::string& host_port) {
  auto bad = [&] {
    return caf::make_error(caf::sec::invalid_argument,
                           "peer address must be host:port, got '" + host_port + "'");
  };
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size())
    return bad();
  auto digits = host_port.substr(colon + 1);
  if (digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad();
  auto port = std::strtoul(digits.c_str(), nullptr, 10);
  if (port == 0 || port > 65535)
    return bad();
  return endpoint{host_port.substr(0, colon), static_cast<uint16_t>(port)};
}

class peer_connector {
 public:
  using actor_pointer = caf::stateful_actor<peer_connector>*;

  explicit peer_connector(actor_pointer self) : self_(self) {}

  ~peer_connector() {
    // The publication belongs to the connector: without it nobody tells Raft about peers, and a
    // new connector for the same Raft actor must find the port free again.
    if (middleman_ && raft_)
      caf::anon_send(middleman_, caf::unpublish_atom::value, raft_.address(), published_port_);
    for (auto& entry : peers_)
      caf::anon_send_exit(entry.second.dialer, caf::exit_reason::user_shutdown);
  }

  static inline const char* name = "peer_connector";

  caf::behavior start(caf::actor raft, caf::actor broker, std::string self_id,
                      uint16_t published_port, std::map<std::string, endpoint> peers,
                      peer_connector_options options) {
    raft_ = std::move(raft);
    broker_ = std::move(broker);
    self_id_ = std::move(self_id);
    published_port_ = published_port;
    options_ = std::move(options);
    options_.min_backoff =
        std::max(options_.min_backoff, caf::timespan{std::chrono::milliseconds(1)});
    options_.max_backoff = std::max(options_.max_backoff, options_.min_backoff);
    middleman_ = self_->system().middleman().actor_handle();
    // Seeded per node so two nodes that lost each other at the same instant draw different delays.
    rng_.seed(std::hash<std::string>{}(self_id_) ^ (uint64_t{published_port} << 32));
    self_->monitor(raft_);
    self_->set_down_handler([this](caf::down_msg& msg) { on_down(msg); });
    for (auto& [id, address] : peers)
      add_peer(id, std::move(address), false);
    return {
        [this](peer_up_atom, const std::string& id, const std::string& host_port) {
          auto address = parse_endpoint(host_port);
          if (!address) {
            log("ignoring peer " + id + ": " + self_->system().render(address.error()));
            return;
          }
          add_peer(id, std::move(*address), true);
        },
        [this](peer_down_atom, const std::string& id) { remove_peer(id); },
        [this](reconnect_atom, const std::string& id, uint64_t generation) {
          auto i = peers_.find(id);
          if (i != peers_.end() && i->second.generation == generation &&
              i->second.state == peer_state::waiting)
            dial(id, i->second);
        },
    };
  }

 private:
  enum class peer_state { connecting, waiting, up };

  struct peer {
    endpoint address;
    peer_state state = peer_state::waiting;
    /// Identifies the current dial or backoff timer; replies and timers of older ones are dropped.
    uint64_t generation = 0;
    /// Failed dials since the peer was last up; drives the backoff.
    uint32_t attempt = 0;
    /// A dead peer is redialled forever; one line per streak of failures keeps the log readable.
    bool failure_logged = false;
    caf::actor handle;
    /// This peer's own dialer, so a silent peer never delays the dials of the others.
    caf::io::middleman_actor dialer;
  };

  void add_peer(const std::string& id, endpoint address, bool announce) {
    if (id == self_id_) {
      if (announce)
        log("ignoring peer " + id + ": that is this node");
      return;
    }
    if (auto i = peers_.find(id); i != peers_.end()) {
      if (i->second.address == address)
        return;
      remove_peer(id);
    }
    auto& p = peers_[id];
    p.address = std::move(address);
    p.dialer = spawn_bounded_dialer(self_->system(), broker_, peer_tcp_connect_timeout,
                                    options_.transport, id);
    if (announce)
      log("peer " + id + " added at " + p.address.to_string());
    dial(id, p);
  }

  void remove_peer(const std::string& id) {
    auto i = peers_.find(id);
    if (i == peers_.end())
      return;
    if (i->second.state == peer_state::up) {
      self_->demonitor(i->second.handle);
      self_->send(raft_, peer_down_atom::value, id);
    }
    log("peer " + id + " removed (was at " + i->second.address.to_string() + ")");
    caf::anon_send_exit(i->second.dialer, caf::exit_reason::user_shutdown);
    peers_.erase(i);
  }

  void dial(const std::string& id, peer& p) {
    p.state = peer_state::connecting;
    auto generation = p.generation = ++generations_;
    self_
        ->request(p.dialer, peer_connect_timeout, caf::connect_atom::value, p.address.host,
                  p.address.port)
        .then(
            [this, id, generation](caf::node_id& node, caf::strong_actor_ptr& ptr,
                                   std::set<std::string>& interface) {
              on_connected(id, generation, node, std::move(ptr), interface);
            },
            [this, id, generation](caf::error& err) { on_dial_failed(id, generation, err); });
  }

  peer* current(const std::string& id, uint64_t generation) {
    auto i = peers_.find(id);
    if (i == peers_.end() || i->second.generation != generation ||
        i->second.state != peer_state::connecting)
      return nullptr;
    return &i->second;
  }

  void on_connected(const std::string& id, uint64_t generation, const caf::node_id& node,
                    caf::strong_actor_ptr ptr, const std::set<std::string>& interface) {
    auto* p = current(id, generation);
    if (p == nullptr)
      return;
    auto where = p->address.to_string();
    if (!ptr)
      return on_dial_failed(
          id, generation,
          caf::make_error(caf::sec::no_actor_published_at_port, "nothing published at " + where));
    if (!interface.empty())
      return on_dial_failed(
          id, generation,
          caf::make_error(caf::sec::unexpected_actor_messaging_interface,
                          "the actor at " + where + " is typed, not a Raft node"));
    if (node == self_->system().node())
      return on_dial_failed(
          id, generation,
          caf::make_error(caf::sec::invalid_argument, where + " is this node's own port"));
    p->handle = caf::actor_cast<caf::actor>(std::move(ptr));
    p->state = peer_state::up;
    p->attempt = 0;
    p->failure_logged = false;
    // Monitor before announcing: a proxy that is already dead yields its down_msg right away, and
    // that peer_down then reaches Raft after this peer_up, never before it.
    self_->monitor(p->handle);
    log("peer " + id + " up at " + where + " (node " + caf::to_string(node) + ")");
    self_->send(raft_, peer_up_atom::value, id, p->handle);
  }

  void on_dial_failed(const std::string& id, uint64_t generation, const caf::error& err) {
    auto* p = current(id, generation);
    if (p == nullptr)
      return;
    auto delay = backoff(p->attempt);
    if (!p->failure_logged)
      log("peer " + id + " unreachable at " + p->address.to_string() + ": " +
          self_->system().render(err) + "; retrying with backoff");
    p->failure_logged = true;
    p->attempt = std::min(p->attempt + 1, uint32_t{62});
    schedule_redial(id, *p, delay);
  }

  void on_down(const caf::down_msg& msg) {
    if (msg.source == raft_.address()) {
      self_->quit(caf::exit_reason::normal);
      return;
    }
    for (auto& [id, p] : peers_) {
      if (p.state != peer_state::up || p.handle.address() != msg.source)
        continue;
      p.handle = nullptr;
      self_->send(raft_, peer_down_atom::value, id);
      auto delay = backoff(0);
      p.attempt = 1;
      log("peer " + id + " down: " + self_->system().render(msg.reason) + "; redialling in " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()) +
          " ms");
      schedule_redial(id, p, delay);
    }
  }

  void schedule_redial(const std::string& id, peer& p, caf::timespan delay) {
    p.state = peer_state::waiting;
    p.generation = ++generations_;
    self_->delayed_send(self_, delay, reconnect_atom::value, id, p.generation);
  }

  /// Uniform in [max(min, hi / 2), hi] with hi = min(max, min * 2^(attempt + 1)).
  caf::timespan backoff(uint32_t attempt) {
    auto hi = options_.min_backoff;
    for (uint32_t i = 0; i <= attempt && hi < options_.max_backoff; ++i)
      hi *= 2;
    hi = std::min(hi, options_.max_backoff);
    auto lo = std::max(options_.min_backoff, hi / 2);
    if (hi <= lo)
      return lo;
    std::uniform_int_distribution<caf::timespan::rep> pick{lo.count(), hi.count()};
    return caf::timespan{pick(rng_)};
  }

  void log(const std::string& line) {
    if (options_.log_event)
      options_.log_event(self_id_ + ": " + line);
  }

  actor_pointer self_;
  caf::actor raft_;
  std::string self_id_;
  uint16_t published_port_ = 0;
  peer_connector_options options_;
  caf::io::middleman_actor middleman_;
  caf::actor broker_;
  std::mt19937_64 rng_;
  std::map<std::string, peer> peers_;
  uint64_t generations_ = 0;
};

// Arguments go through spawn rather than a capturing lambda: CAF 0.17.6 dereferences a null
// argument tuple when a function is spawned without arguments (UBSan reports it).
caf::behavior run_peer_connector(caf::stateful_actor<peer_connector>* self, caf::actor raft,
                                 caf::actor broker, std::string self_id, uint16_t published_port,
                                 std::map<std::string, endpoint> peers,
                                 peer_connector_options options) {
  return self->state.start(std::move(raft), std::move(broker), std::move(self_id), published_port,
                           std::move(peers), std::move(options));
}

} // namespace

caf::expected<caf::actor> spawn_peer_connector(caf::actor_system& system, caf::actor raft,
                                               std::string self_id, std::string raft_host,
                                               uint16_t raft_port,
                                               std::map<std::string, std::string> peers,
                                               peer_connector_options options) {
  if (!raft)
    return caf::make_error(caf::sec::invalid_argument, "spawn_peer_connector: no Raft actor");
  if (!system.has_middleman())
    return caf::make_error(caf::sec::invalid_argument,
                           "spawn_peer_connector: the io middleman is not loaded"
                           " (call configure_middleman on the config)");
  std::map<std::string, endpoint> endpoints;
  for (auto& [id, host_port] : peers) {
    auto address = parse_endpoint(host_port);
    if (!address)
      return caf::make_error(caf::sec::invalid_argument,
                             "peer " + id + ": " + system.render(address.error()));
    endpoints.emplace(id, std::move(*address));
  }
  auto where = raft_host + ":" + std::to_string(raft_port);
  auto broker = basp_broker(system);
  caf::expected<uint16_t> published{0};
  if (options.transport) {
    // Published like middleman().publish does, but through an actor whose `open` listens on the
    // transport, so the BASP broker gets the transport's doorman.
    auto publisher =
        spawn_bounded_dialer(system, broker, peer_tcp_connect_timeout, options.transport);
    caf::scoped_actor self{system};
    self->request(publisher, caf::infinite, caf::publish_atom::value, raft_port,
                  caf::actor_cast<caf::strong_actor_ptr>(raft), std::set<std::string>{}, raft_host,
                  true)
        .receive([&](uint16_t port) { published = port; },
                 [&](caf::error& err) { published = std::move(err); });
    caf::anon_send_exit(publisher, caf::exit_reason::user_shutdown);
  } else {
    published = system.middleman().publish(
        raft, raft_port, raft_host.empty() ? nullptr : raft_host.c_str(), /*reuse=*/true);
  }
  if (!published)
    return caf::make_error(caf::sec::cannot_open_port, "cannot publish the Raft actor on " + where +
                                                           ": " + system.render(published.error()));
  auto connection_timeout =
      caf::get_or(system.config(), "middleman.connection-timeout", caf::timespan{0});
  if (connection_timeout.count() == 0 && options.log_event)
    options.log_event(self_id + ": middleman.connection-timeout is off, a frozen peer will never"
                                " be reported down (use configure_middleman)");
  return system.spawn(run_peer_connector, std::move(raft), std::move(broker), std::move(self_id),
                      *published, std::move(endpoints), std::move(options));
}

} // namespace infinity
