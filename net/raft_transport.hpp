// The Raft port: a TLS (or, where allowed, plain TCP) front end in front of CAF's BASP broker.
//
// Why not CAF 0.17.6's OpenSSL module (libcaf_openssl): it verifies that a peer's certificate
// chains to `openssl.cafile`, but the SSL session lives in a private member of its scribe
// (`caf::openssl::session::ssl_`, no accessor, classes in an anonymous namespace), so neither
// BASP nor an actor can learn which certificate a connection presented: a message's `from`
// cannot be bound to an authenticated identity. Its dial is the blocking `new_tcp_connection`
// (no bound, no way to plug in the bounded dialer), its accept has no handshake deadline, and
// once the handshake passes every byte goes to the BASP decoder, which allocates whatever
// payload length a header claims (up to 4 GiB).
//
// So the middleman never listens on the network. This transport owns the Raft port:
//
//   peer ──TLS──▶ [ acceptor / dialer, one Asio thread ] ──socketpair──▶ CAF scribe (BASP)
//
// * Inbound: a connection must finish its TLS handshake (mutual: a certificate of the cluster
//   CA, TLS 1.3) and its first BASP handshake within `handshake_timeout`, else it is closed;
//   only then does CAF learn of it (a doorman of ours hands CAF one end of a socketpair).
//   Pending handshakes are capped. The peer's identity is its certificate's CN.
// * Outbound: the bounded dialer connects, the transport runs the TLS handshake and refuses a
//   server whose certificate CN is not the member id it dialled.
// * Every BASP frame a peer sends is checked before CAF sees it: known operation, payload at
//   most `max_frame_bytes` (the header is refused before anything is allocated), handshake
//   first, no anonymous or routed messages (a routed message names its own source node, so it
//   could pose as this node), messages addressed by name (CAF's SpawnServ and
//   ConfigServ) are dropped, and every node id a peer names (handshakes, monitor and down
//   messages) is the one it gave in its first handshake, never this node's own. That node id
//   is bound to the certificate's identity: `peer_identity` tells the Raft actor which member
//   a sender's node belongs to, and the actor drops a message whose `from` differs.
// * Without certificates (see `--raft-insecure`) the same checks run over plain TCP, without
//   authentication or encryption.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/io/doorman.hpp>
#include <caf/node_id.hpp>

namespace infinity {

struct raft_transport_options {
  /// PEM files: this node's certificate chain, its key, and the cluster CA. All three, or none
  /// (plain TCP).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  /// Bound on TCP accept to the first complete BASP handshake frame (TLS handshake included).
  std::chrono::milliseconds handshake_timeout{3000};
  /// Largest BASP payload a peer may announce; a larger header closes the connection.
  uint32_t max_frame_bytes = uint32_t{16} << 20;
  /// Inbound connections still in their handshake; more are closed at once.
  std::size_t max_pending_handshakes = 64;
  /// One line per refused connection or frame (rate-limited); may be empty. Called on the
  /// transport's thread.
  std::function<void(const std::string&)> log;
};

class raft_transport {
 public:
  /// Loads the certificates (throws std::runtime_error naming the file on failure) and starts
  /// the transport's thread.
  raft_transport(caf::actor_system& system, raft_transport_options options);
  ~raft_transport();
  raft_transport(const raft_transport&) = delete;
  raft_transport& operator=(const raft_transport&) = delete;

  bool authenticates() const;

  /// Listens on host:port (port 0 picks one) and returns a doorman for CAF's BASP broker (used
  /// by the publishing middleman actor's `open`).
  caf::expected<caf::io::doorman_ptr> listen(uint16_t port, const std::string& host, bool reuse);

  /// Connects to host:port, runs the TLS handshake expecting a certificate for `expected_id`
  /// (ignored without TLS) and returns the socket CAF should use. Blocks the caller (a detached
  /// dialer) for at most `connect_timeout` plus the handshake timeout.
  caf::expected<int> dial(const std::string& host, uint16_t port, const std::string& expected_id,
                          std::chrono::milliseconds connect_timeout);

  /// The member id whose certificate the connection of `node` presented; nothing without TLS or
  /// when no live connection of that node completed a handshake.
  std::optional<std::string> peer_identity(const caf::node_id& node) const;

  /// Closes the listener and every connection, joins the thread. Idempotent.
  void stop();

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

} // namespace infinity
