// The client-facing HTTP/1.1 server: a Boost.Beast acceptor with keep-alive and pipelining, one
// session actor (actors/http_session.hpp) per connection, plain HTTP or HTTPS (one port, one or
// the other).
//
// No client can exhaust it: connections are limited (503 beyond), every phase of a request has a
// deadline (TLS handshake and headers, body, idle keep-alive, each response write), headers,
// trailers and bodies have size limits (431, 413; malformed input 400; each then closes the
// connection), and a connection that does not read its responses stops being read
// (`max_queued_response_bytes`), so its memory stays bounded. Every error on an I/O path is
// answered or closes the socket; no exception leaves a handler.
//
// Threads: `io_threads` Asio threads do all socket work; they never wait for an actor. A request
// is parsed on the I/O thread (pure codec) and handed to the connection's session actor; the
// answer comes back through a callback that posts to the connection's strand. One exception: a
// stale read with no earlier request of its connection unanswered is answered on the I/O thread
// from the node's local_read_view (`answers_alone` in http_session.hpp), which is what the
// session would do, minus two thread hand-offs.
//
// Lifecycle: construct (resolves and binds the address, throws `std::runtime_error` with a clear
// message if it cannot, e.g. the port is in use), `start` (begins accepting), `stop` (stops
// accepting, closes every connection, ends their session actors, joins the I/O threads; also done
// by the destructor). Destroy the server before the actor_system.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <caf/fwd.hpp>

#include "actors/kv/local_read_view.hpp"
#include "net/http_api.hpp"
#include "net/metrics.hpp"

namespace infinity {

struct http_server_options {
  /// HOST:PORT; ":PORT" listens on all IPv4 interfaces; port 0 picks a free port (see `port()`).
  std::string address = ":8001";
  unsigned io_threads = 1;
  /// Body limit (also enforced while reading, so an oversized body is never buffered) and the
  /// codec's key/value limits.
  http::api_limits limits;
  /// Request line plus headers (431 beyond it); also the limit for a chunk header line and for
  /// the trailer of a chunked body. At most 61440: Beast stores one field in under 64 KiB.
  std::size_t max_header_bytes = 16 * 1024;
  /// Requests read ahead of their responses on one connection (answered or not); reading pauses
  /// beyond it.
  std::size_t max_pipelined = 32;
  /// Response bytes one connection may have waiting to be written, counting those still being
  /// prepared at the guess of the largest response seen on it; reading pauses beyond it until
  /// the client reads (backpressure). One request is always allowed.
  std::size_t max_queued_response_bytes = std::size_t{4} << 20;
  /// Open client connections; clamped to what RLIMIT_NOFILE leaves room for. Connections beyond
  /// it get 503 with Retry-After (a few at a time) or are closed at once.
  std::size_t max_connections = 4096;
  /// A connection with no request in progress is closed after this long.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  /// From accept (including the TLS handshake) for the first request, from its first byte for
  /// later ones, until the request headers are complete (slowloris).
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  /// From the end of the headers until the body is complete.
  std::chrono::milliseconds body_timeout = std::chrono::seconds(30);
  /// Writing one response, and the drain before a graceful close.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds write_request_timeout = std::chrono::seconds(5);
  std::chrono::milliseconds read_request_timeout = std::chrono::seconds(5);
  /// PEM certificate chain and private key. Both set: the port speaks only HTTPS (TLS 1.2+);
  /// both empty: plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Bearer tokens (see http::check_access); empty ones are not configured.
  http::access_tokens tokens;
  /// Source of session client ids; seeded per process by the caller (see http_session.hpp).
  uint64_t client_id_seed = 0;
  /// Where requests, latencies and connections are counted, and what /metrics reports; may be
  /// null (nothing counted).
  std::shared_ptr<metrics::node_metrics> metrics;
  /// /ready: the lag allowed, and the storage check (see http_session_config).
  http::readiness_limits readiness;
  std::function<std::string()> storage_check;
  /// Info-level events (listening, stopped) and warnings; may be empty.
  std::function<void(const std::string&)> log;
  /// One line per response ("http: 127.0.0.1:5555 GET /get?key=a -> 200"), called on I/O
  /// threads; leave empty unless debugging, it is not free.
  std::function<void(const std::string&)> debug_log;
};

/// Thrown by the constructor when the TLS certificate or key cannot be used.
struct http_tls_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class http_server {
 public:
  http_server(caf::actor_system& system, http_server_options options);
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound port (the chosen one if the address asked for port 0).
  uint16_t port() const;
  /// "ADDRESS:PORT" actually bound.
  std::string local_address() const;

  /// Starts accepting; requests go to `raft`, reads are served from `view`. Call once.
  void start(caf::actor raft, std::shared_ptr<const local_read_view> view);

  /// Idempotent; waits (bounded, a few seconds) for connections to wind down.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace infinity
