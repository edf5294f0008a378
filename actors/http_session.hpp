// One actor per HTTP connection: turns parsed requests into Raft/KV requests and answers them,
// in the order the requests arrived.
//
// Protocol: (http_req_atom, parsed_request) from the connection, in arrival order. For each one
// the session calls `response_sink` exactly once, and the calls come in arrival order even when
// the answers do not (a slow write followed by a stale read: the read waits in a reorder buffer),
// because HTTP/1.1 pipelining requires responses in request order.
//
// Requests also *take effect* in order, so a pipelining client reads its own writes: consecutive
// writes go to Raft together (it appends one sender's proposals in order) and consecutive reads
// run together, but a read waits until the writes before it are answered, and a write until the
// reads before it are. Status and join requests do not wait.
//
// It never blocks: every Raft/KV call is `request(..., timeout, ...).then(...)`, so a connection
// whose leader is gone costs no thread, and the timeout turns into an error response.
//
// Writes carry (client_id, sequence) so the state machine drops a duplicated proposal. The
// client_id must be unique across sessions *and restarts* of every node (sequences restart at 1
// per session, and the state machine remembers ids across a restart via the log), so the server
// draws it from a random generator rather than a counter.
#pragma once

#include <functional>
#include <string>

#include <caf/all.hpp>

#include "actors/kv/local_read_view.hpp"
#include "actors/protocols.hpp"
#include "net/http_api.hpp"
#include "net/metrics.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(infinity::http::parsed_request)

namespace infinity {

using http_req_atom = caf::atom_constant<caf::atom("httpreq")>;

struct http_session_config {
  raft_node_actor raft;
  /// The node's applied state and removal, read without messages (never null).
  std::shared_ptr<const local_read_view> view;
  /// Nonzero (0 would opt out of deduplication).
  uint64_t client_id = 1;
  /// How long a write may wait for commit; past it the outcome is unknown (500).
  caf::timespan write_timeout = std::chrono::seconds(5);
  /// For a linearizable read's barrier.
  caf::timespan read_timeout = std::chrono::seconds(5);
  /// For the status query of a request with `redirect=true` (the leader's advertised address).
  caf::timespan status_timeout = std::chrono::seconds(2);
  /// /health and /ready: a probe that waits longer than this is better answered 503.
  caf::timespan probe_timeout = std::chrono::seconds(1);
  http::readiness_limits readiness;
  /// Empty when the data directory is writable, else why not (called per /ready; cheap).
  std::function<std::string()> storage_check;
  /// The node's counters for /metrics (may be null: Raft and process series only).
  std::shared_ptr<const metrics::node_metrics> metrics;
};

/// Called on a CAF worker thread; must not block (post to the connection's executor).
using response_sink = std::function<void(http::api_response)>;

/// The answer to a stale read (`GET /get?...&consistency=stale`): this node's applied value, or
/// 409 if it was removed. Thread-safe; needs no actor.
http::api_response stale_read_response(const local_read_view& view, const std::string& key);

/// Whether the connection may answer `request` itself with `stale_read_response` when nothing it
/// sent earlier is still unanswered (so the answer cannot overtake another): a stale read without
/// `redirect`. Saves the hop to the session actor and back, most of a stale read's cost.
bool answers_alone(const http::parsed_request& request);

caf::actor spawn_http_session(caf::actor_system& system, http_session_config config,
                              response_sink sink);

/// Thread-safe; requests from one caller thread keep their order (mailbox FIFO per sender).
void submit_http_request(const caf::actor& session, http::parsed_request request);

} // namespace infinity
