// Raft between processes over CAF's io middleman (BASP over TCP).
//
// Every process publishes its Raft node actor on its raft port; the peer connector of every other
// process dials that port, hands the resulting proxy to its own Raft actor and watches it:
//
//            spawn / add            connect ok (dynamically typed actor published)
//   ┌─────────────┐ ────▶ ┌────────────┐ ───────────────────────────────────▶ ┌──────┐
//   │ (not known) │       │ connecting │                                       │  up  │
//   └─────────────┘       └────────────┘ ◀──────────┐                          └──────┘
//                              │ error / timeout    │ backoff timer               │ down_msg
//                              ▼                    │                             ▼
//                         ┌─────────┐ ──────────────┘          (peer_down_atom, id) to Raft,
//                         │ waiting │ ◀─────────────────────────────────────────── attempt = 0
//                         └─────────┘
//   up:  the proxy is monitored and Raft got `(peer_up_atom, id, proxy)`.
//   waiting: capped exponential backoff, drawn from [max(min, hi/2), hi] with
//            hi = min(max_backoff, min_backoff * 2^(attempt+1)), from a PRNG seeded with the node's
//            id and port, so two nodes retrying each other do not stay in lock step.
//
// Nothing here blocks a scheduler thread: the connector asks a detached dialer per peer with
// `(connect_atom, host, port)` (net/bounded_dialer.hpp: CAF's own middleman actor would block
// every dial of the process for up to ~2 minutes behind one partitioned peer). Only
// `spawn_peer_connector` blocks its (non-actor) caller, for the publish, so that a port in use is
// reported to the caller.
//
// Connections are shared per pair of processes: CAF keeps one BASP route per remote node, so if
// node B already connected to A, A's dial to B completes the handshake, yields B's proxy and
// closes the redundant TCP connection. A down_msg comes only when the last connection to a node is
// lost (or the remote Raft actor terminated). When both sides dial within the same instant (about
// 3 in 100 simultaneous dials on loopback), each side may keep the connection it accepted and
// close the one it dialled, so both connections go: each side sees one up/down flap
// (remote_link_unreachable) and the jittered redial settles it about one backoff later. Messages
// sent during the flap are lost, none is duplicated (see the test `simultaneous_dial_converges`).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "actors/messages.hpp"

namespace infinity {

class raft_transport;

/// Heartbeat period of BASP connections set by `configure_middleman`.
inline constexpr caf::timespan peer_heartbeat_interval = std::chrono::milliseconds(100);
/// A connection silent for this long is closed: a frozen (SIGSTOPped) or partitioned peer is then
/// reported down about this long after its last heartbeat (1.0-1.1 s measured). A process whose
/// middleman thread is starved of CPU for this long is dropped too, and reconnects.
inline constexpr caf::timespan peer_connection_timeout = std::chrono::seconds(1);
/// How long one dial (TCP connect, bounded by peer_tcp_connect_timeout, plus BASP handshake) may
/// take before it counts as failed.
inline constexpr caf::timespan peer_connect_timeout = std::chrono::seconds(5);

/// Loads the io middleman and turns on heartbeats with a connection timeout. Without them a frozen
/// peer keeps its TCP connection open and is never reported down. Call it on the config of every
/// process of a cluster, before constructing the actor_system, and do not load the middleman again:
/// a node with a connection timeout drops idle connections to a node that sends no heartbeats.
void configure_middleman(caf::actor_system_config& cfg);

struct peer_connector_options {
  caf::timespan min_backoff = std::chrono::milliseconds(50);
  /// Also the delay, after a partition heals, until this side dials again: a peer only sends to
  /// a node its own connector reached, so a long cap kept healed followers deaf (measured 2 s).
  /// A failed dial costs a refused connect or one peer_tcp_connect_timeout on the peer's own
  /// dialer thread, so retrying twice a second is cheap.
  caf::timespan max_backoff = std::chrono::milliseconds(500);
  /// One line per peer added, removed, up, down, and per first failure of a reconnect streak.
  /// Called on a CAF worker thread; may be empty.
  std::function<void(const std::string&)> log_event;
  /// When set, the Raft port is this transport's (TLS or filtered TCP, net/raft_transport.hpp)
  /// instead of a plain middleman port, and each peer is dialled through it expecting a
  /// certificate for the peer's id.
  std::shared_ptr<raft_transport> transport;
};

/// Publishes `raft` on raft_host:raft_port (reuse=true) and keeps a connection to every peer.
///
/// `peers` maps a peer's Raft id to the "host:port" its process published its Raft actor on;
/// an entry for `self_id` is ignored. Blocks the calling thread for the publish: call it from
/// `main` or a test, never from inside an actor. Fails when `raft` is invalid, a peer address does
/// not parse, or the port cannot be opened (the error names host:port).
///
/// For each peer the Raft actor receives `(peer_up_atom, id, caf::actor proxy)` once connected and
/// `(peer_down_atom, id)` when the connection or the remote Raft actor is lost; a later
/// `peer_up_atom` carries a new proxy. Down always precedes the next up for the same id. CAF
/// compares handles by (node, actor id): after a restarted process the new handle differs, after
/// a thawed (SIGCONT) one it is a new proxy that still compares equal to the old handle.
/// Without a TLS transport the peer's identity is not checked: whatever Raft actor answers at
/// host:port is taken as `id`; with one, only a peer whose certificate names `id` is.
///
/// Messages the returned actor accepts at runtime (membership changes):
///   (peer_up_atom, std::string id, std::string host_port)  add a peer, or move it to a new
///                                                           address; a no-op if already known
///                                                           at that address
///   (peer_down_atom, std::string id)                        remove a peer: Raft gets
///                                                           `peer_down_atom` if it was up, and
///                                                           the connector stops redialling it
/// Both are one-way; malformed input is reported through `log_event` and ignored.
///
/// The connector monitors `raft`, quits when it terminates, and unpublishes `raft` when it quits.
/// Connections outlive removal of a peer and shutdown of either connector: CAF closes them only
/// when a system stops, a process dies, or the connection times out. So a peer that merely
/// unpublishes is not reported down (its Raft actor stays reachable); a peer whose Raft actor
/// exits is.
caf::expected<caf::actor>
spawn_peer_connector(caf::actor_system& system, caf::actor raft, std::string self_id,
                     std::string raft_host, uint16_t raft_port,
                     std::map<std::string, std::string> peers /* id -> host:port */,
                     peer_connector_options options = {});

} // namespace infinity
