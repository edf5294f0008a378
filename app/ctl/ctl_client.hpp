// How infinityctl talks to a cluster: endpoints tried in order, failover, redirects, retries,
// deadlines. The network and the clock are behind `client_io`, so these rules are unit tested
// with a scripted fake; `beast_io` is the real one.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "app/ctl/ctl_options.hpp"

namespace infinity::ctl {

using clock = std::chrono::steady_clock;

struct http_request {
  /// "GET" or "POST".
  std::string method;
  /// Path and query, e.g. "/get?key=k".
  std::string target;
  /// JSON, sent with POST only.
  std::string body;
  /// Sent as `Authorization: Bearer <token>` when not empty.
  std::string bearer_token;
};

struct http_reply {
  unsigned status = 0;
  std::string body;
  /// The Location and Retry-After headers, empty when absent.
  std::string location;
  std::string retry_after;
};

struct transport_error {
  enum class kind {
    /// Nothing listening, unresolvable name, connection refused: the request was not sent.
    unreachable,
    /// The TLS handshake failed (certificate not trusted, wrong name): not sent.
    tls,
    /// The deadline passed.
    timeout,
    /// The connection broke while the request or the response was in flight.
    broken,
  };
  kind what = kind::unreachable;
  /// The request was at least partly written: a write may have reached the server.
  bool maybe_sent = false;
  std::string message;
};

using exchange_result = std::variant<http_reply, transport_error>;

/// The outside world as the client sees it.
class client_io {
 public:
  virtual ~client_io() = default;
  /// One request on a fresh connection, finished (or abandoned) by `deadline`.
  virtual exchange_result exchange(const endpoint& to, const http_request& request,
                                   clock::time_point deadline) = 0;
  virtual clock::time_point now() = 0;
  virtual void sleep_until(clock::time_point until) = 0;
};

/// Writes fail over only when nothing changed for sure (503) or the server may never have seen
/// them (unreachable, timeout: set and delete are idempotent); a 500 is final: the server says
/// the outcome is unknown. Reads fail over on every 5xx.
enum class request_kind { read, write };

/// At most this many 307/308 hops per endpoint.
inline constexpr int max_redirects = 3;

struct call_result {
  /// A final answer: 2xx, 4xx, or a 5xx a write must not retry. Empty: no endpoint gave one.
  std::optional<http_reply> reply;
  /// Where the reply came from (after redirects).
  endpoint answered_by;
  /// Without a reply: what went wrong at each endpoint in the last round, "ENDPOINT: why".
  std::vector<std::string> failures;
  /// A write was (maybe) sent somewhere that then did not answer.
  bool outcome_unknown = false;
};

class client {
 public:
  /// The command's deadline (--command-timeout) starts now.
  client(client_io& io, const global_options& options);

  /// Tries the endpoints in order until one gives a final answer. When a round ends without
  /// one but some server answered 503/5xx or timed out (a cluster electing a leader), waits
  /// (Retry-After, at most 1 s) and starts over, until --command-timeout. A round where every
  /// endpoint was unreachable ends the call: nothing is running there.
  call_result call(const http_request& request, request_kind kind);

  /// One endpoint (and its redirects) and no retries: for commands that ask every endpoint.
  call_result call_endpoint(const endpoint& to, const http_request& request);

 private:
  struct attempt;
  attempt try_endpoint(const endpoint& start, const http_request& request, request_kind kind);

  client_io& io_;
  global_options options_;
  clock::time_point command_deadline_;
};

/// The server's `{"error": ...}` message, or the start of the body when it is not ours, made
/// safe for a terminal (control characters replaced).
std::string server_message(const std::string& body);

/// "5s", "1.5s", "250ms": for messages.
std::string describe_duration(std::chrono::milliseconds duration);

} // namespace infinity::ctl
