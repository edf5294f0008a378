// The client HTTP API as a pure codec: text in, typed requests out; typed outcomes in, HTTP
// responses (status, headers, JSON body) out. No CAF, no sockets, so every rule below is unit
// tested without a server, and the session actor only decides *which* response to build.
//
// Contract (all bodies are JSON, `Content-Type: application/json`; errors are {"error": "..."}):
//
//   POST /set   body {"key": K, "action": "set"|"delete", "value": V}
//               `action` is REQUIRED (as in the original InfinityStore API): a missing action is a
//               400, not an implicit "set", so a client bug cannot silently overwrite a key.
//               `value` is required (a string) for "set" and ignored for "delete".
//               Unknown members are ignored. 200 {"key", "action", "index"} once applied.
//   GET  /get?key=K[&consistency=linearizable|stale]
//               200 {"key", "value"}; 404 if absent. Default: linearizable (Raft read barrier);
//               "stale" serves this node's local copy without asking the leader.
//   POST /join?nodeid=ID&nodeaddr=HOST:PORT    validated here; membership change not implemented.
//   GET  /status   the Raft node's view of the cluster (also sent with
//                  `Access-Control-Allow-Origin: *` so the dashboard of one node can read the
//                  leader's).
//   GET  /health   liveness: 200 {"status": "ok"} while the node's Raft actor answers, else 503.
//   GET  /ready    readiness: 200 {"ready": true, ...} when a leader is known, this node applied
//                  within `max_lag` entries of the leader's commit index, and storage is
//                  writable; else 503 {"ready": false, "reasons": [...]}. Both are public
//                  (no token) so probes need no secret.
//   GET  /metrics  Prometheus text format (net/metrics.hpp).
//   GET  /ui       the live dashboard: one self-contained HTML page (public; it reads /status
//                  and /metrics, with the token from its URL fragment `#token=...` if needed).
//   Targets may also come in absolute form (`http://host:port/get?key=K`, RFC 7230 §5.3.2).
//   Every data endpoint also takes `redirect=true|false|1|0`: with it, a follower that knows the
//   leader's HTTP address answers 307 instead of 503 (see http_session.hpp).
//
// Limits (see `api_limits`): body > max_body_bytes (default 1 MiB) -> 413; key > 1 KiB -> 400
// (keys are identifiers, a long one is a client bug); value > 512 KiB -> 413 (a payload that is
// too large, not malformed). Keys must be valid UTF-8 (JSON bodies are validated by the parser;
// query keys are checked after URL decoding) so every response stays valid JSON.
//
// Access (see `check_access`): with no tokens configured every endpoint is open, as in the
// original API. An admin token protects the admin endpoints (/join; /remove and /transfer-leader
// are reserved); a client token protects every other endpoint, and the admin token opens those
// too. Missing or wrong token -> 401 with `WWW-Authenticate: Bearer`; a client token on an admin
// endpoint -> 403.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "actors/types.hpp"

namespace infinity::http {

struct api_limits {
  std::size_t max_body_bytes = std::size_t{1} << 20;
  std::size_t max_key_bytes = 1024;
  std::size_t max_value_bytes = std::size_t{512} << 10;
};

enum class read_consistency : uint8_t { linearizable, stale };

/// POST /set. `command.client_id` and `command.sequence` are left 0: the session fills them in.
struct write_request {
  kv_command command;
};

struct get_request {
  std::string key;
  read_consistency consistency = read_consistency::linearizable;
};

struct join_request {
  std::string node_id;
  /// As given (HOST:PORT), after validation.
  std::string node_addr;
};

struct status_request {};

/// POST /remove?nodeid=ID[&force=1]
struct remove_request {
  std::string node_id;
  bool force = false;
};

/// POST /transfer-leader[?nodeid=ID] (empty: the most up to date voter).
struct transfer_request {
  std::string node_id;
};

/// GET /members
struct members_request {};

/// GET /health, /ready, /metrics, /ui
struct health_request {};
struct ready_request {};
struct metrics_request {};
struct ui_request {};

struct api_request {
  std::variant<write_request, get_request, join_request, status_request, remove_request,
               transfer_request, members_request, health_request, ready_request, metrics_request,
               ui_request>
      body;
  /// The client prefers a 307 to the leader over a 503 (`redirect=true`).
  bool redirect = false;
  /// Path and query as received, so a redirect can point at the same resource on the leader.
  std::string target;
};

struct api_error {
  unsigned status = 400;
  std::string message;
  /// For 405: the methods the path accepts (the `Allow` header).
  std::string allow;
};

/// What the server hands to a session: a request, or the error to answer in its place (keeping
/// its position among pipelined requests).
using parsed_request = std::variant<api_request, api_error>;

struct api_response {
  unsigned status = 200;
  /// application/json except for /metrics and /ui.
  std::string content_type = "application/json";
  /// Besides Content-Type.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// First header named `name` (case-sensitive: we only look up our own), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

// -- parsing
// ---------------------------------------------------------------------------------------

parsed_request parse_request(std::string_view method, std::string_view target,
                             std::string_view body, const api_limits& limits = {});

/// Decodes application/x-www-form-urlencoded text: %XX and '+' as space. nullopt for a '%' not
/// followed by two hex digits.
std::optional<std::string> url_decode(std::string_view text);

bool is_valid_utf8(std::string_view text);

struct host_port {
  /// Without brackets for IPv6 literals ("::1"); empty for ":8001".
  std::string host;
  uint16_t port = 0;
};

struct host_port_rules {
  bool allow_empty_host = false;
  bool allow_port_zero = false;
};

/// Parses HOST:PORT, [IPV6]:PORT, or (if allowed) :PORT. The host must look like a host name or
/// an IP literal (letters, digits, '-', '.', and ':' inside brackets). nullopt if not.
std::optional<host_port> parse_host_port(std::string_view text, host_port_rules rules = {});

/// Node ids: 1 to 64 characters from [A-Za-z0-9._-], so they are safe in logs, paths and URLs.
bool is_valid_node_id(std::string_view id);

// -- targets and access
// ------------------------------------------------------------------------------

/// The origin form of a request target: the absolute form "http://host:port/get?key=a", which
/// RFC 7230 §5.3.2 requires servers to accept, becomes "/get?key=a" ("/" when it has no path).
/// Any other target is returned unchanged. `parse_request` and `check_access` apply it themselves,
/// so routing and access control always see the same path.
std::string_view origin_form(std::string_view target);

/// Bearer tokens this node accepts; an empty one is not configured.
struct access_tokens {
  std::string admin;
  std::string client;
};

/// Endpoints that change the cluster itself: /join, and the reserved /remove and /transfer-leader.
bool is_admin_path(std::string_view path);

/// Endpoints open whatever tokens are configured: the probes (/health, /ready) and the
/// dashboard page (/ui, static; the data it reads stays protected).
bool is_public_path(std::string_view path);

/// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
bool is_valid_bearer_token(std::string_view token);

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive), or nullopt
/// for another scheme or a malformed token.
std::optional<std::string_view> bearer_token(std::string_view authorization);

/// Equality in a time that depends only on `secret`'s length, so the timing of answers does not
/// tell an attacker how much of a guess was right.
bool token_matches(std::string_view presented, std::string_view secret);

struct access_denied {
  /// 401 (no valid token) or 403 (a client token on an admin endpoint).
  api_error error;
  /// For 401: the `WWW-Authenticate` header value; empty for 403.
  std::string www_authenticate;
};

/// nullopt when the request may proceed. `authorization` is the Authorization header, if any.
std::optional<access_denied> check_access(std::string_view target,
                                          std::optional<std::string_view> authorization,
                                          const access_tokens& tokens);

// -- responses
// -------------------------------------------------------------------------------------

api_response error_response(const api_error& error);
api_response error_response(unsigned status, std::string_view message);

/// A proposal's outcome, for every `reply_status` (bodies also carry "reason": the status):
///   ok                       -> 200 {"key", "action", "index"}
///   not_leader, no_leader    -> 503, Retry-After: 1, {"error", "leader"} (leader null if unknown)
///   busy                     -> 503, Retry-After: 1 (nothing changed)
///   rejected                 -> 409 (nothing changed; the reason is in the message)
///   removed                  -> 409 {"error", "reason": "removed"} (see removed_response)
///   leadership_lost, timeout, stopping -> 500 {"error"}: the write may or may not be applied
api_response write_response(const write_request& request, const client_reply& result);

/// This node was removed from the cluster: every read (linearizable or stale), write and admin
/// request (join, remove, transfer) answers 409 {"error": why, "reason": "removed"}; only
/// /status and /members still answer 200 (role "removed").
api_response removed_response(std::string_view reason);

/// For when joins are wired to Raft's (join_atom, id, addr): the same mapping as writes, with
/// 200 {"nodeid", "nodeaddr", "index"} on success.
api_response join_result_response(const join_request& request, const client_reply& result);
api_response remove_result_response(const remove_request& request, const client_reply& result);
api_response transfer_result_response(const transfer_request& request, const client_reply& result);
/// GET /members: voters and learners with their addresses, and (on the leader) their progress.
api_response members_response(const raft_status& status);

/// The proposal got no answer at all (actor timeout or gone): the outcome is unknown -> 500.
api_response write_failed_response(const write_request& request, std::string_view reason);

/// A read barrier that did not succeed. Reads have no side effect, so every failure is a 503 with
/// Retry-After (safe to retry), naming the leader when it is known.
api_response read_barrier_response(const client_reply& result);

/// The read could not be served (actor timeout or gone) -> 503.
api_response read_failed_response(std::string_view reason);

/// 200 {"key", "value"} or 404 {"error", "key"}.
api_response get_response(const std::string& key, bool found, const std::string& value);

/// 200 {"id", "role", "term", "leader", "commit_index", "applied_index", "last_log_index",
/// "members", "leader_http", "leader_raft"}; the leader fields are null while unknown.
api_response status_response(const raft_status& status);

api_response status_failed_response(std::string_view reason);

/// 200 {"status": "ok", "id", "role"}: the Raft actor answered.
api_response health_response(const raft_status& status);
/// 503 {"status": "unavailable", "error"}: it did not.
api_response health_failed_response(std::string_view reason);

/// What /ready checks besides the Raft status.
struct readiness_limits {
  /// Entries this node's applied index may trail the leader's commit index.
  uint64_t max_lag = 1000;
};

/// Why this node is not ready (empty: ready). `storage_problem` is empty when storage is
/// writable, else why not.
std::vector<std::string> readiness_problems(const raft_status& status,
                                            const readiness_limits& limits,
                                            const std::string& storage_problem);
/// 200 or 503 (with Retry-After) {"ready", "reasons", "id", "role", "leader", "applied_index",
/// "leader_commit_index", "lag", "max_lag"}.
api_response ready_response(const raft_status& status, const readiness_limits& limits,
                            const std::string& storage_problem);
/// 503 {"ready": false, "reasons": [why]} when the Raft status could not be read.
api_response ready_failed_response(std::string_view reason);

/// 200 text/plain Prometheus exposition.
api_response metrics_text_response(std::string text);

/// 200 text/html: the dashboard (net/ui_page.cpp).
api_response ui_response();
/// The dashboard's HTML, for tests.
std::string_view ui_page();

/// 307 to `location`, body {"error", "leader"} for clients that do not follow redirects.
api_response redirect_response(const std::string& location, const std::string& leader_id);

/// 503 with Retry-After for a connection accepted beyond the server's connection limit.
api_response too_many_connections_response(std::size_t limit);

/// 400 for a plain HTTP request sent to a port that speaks only HTTPS.
api_response plaintext_on_tls_port_response();

const char* action_name(kv_op op);

} // namespace infinity::http
