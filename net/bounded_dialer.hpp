// Outgoing BASP connections whose TCP connect is bounded in time.
//
// CAF 0.17's middleman actor connects with a blocking connect(2) on its own thread. Against a
// host that silently drops packets (a network partition, a firewall), connect waits for the
// kernel's SYN retries, about 127 s on Linux, and every other dial of the process queues behind
// it. Measured on a 3-node cluster in network namespaces: after a 5 s partition was healed, the
// nodes reconnected only at the next SYN retransmission (3.4 s later), and longer partitions push
// that to tens of seconds.
//
// A bounded dialer is a middleman actor (same messages, same BASP broker) whose connect is
// non-blocking with a deadline. The peer connector runs one per peer, so a silent peer costs at
// most one deadline per dial and never delays the dials of other peers.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/timespan.hpp>

namespace infinity {

/// How long the TCP handshake of one dial may take. The BASP handshake that follows is bounded by
/// the connector's request timeout and the middleman's connection timeout.
inline constexpr caf::timespan peer_tcp_connect_timeout = std::chrono::seconds(1);

/// Connects a non-blocking TCP socket to host:port (name or numeric address; every address the
/// name resolves to is tried until `timeout` is used up). Returns the connected socket, still
/// non-blocking and close-on-exec, or an error naming host:port and what failed ("timed out"
/// when the peer never answered).
caf::expected<int> connect_with_timeout(const std::string& host, uint16_t port,
                                        std::chrono::milliseconds timeout);

/// The system's BASP broker (the one the middleman's own actor uses). The middleman keeps its
/// brokers in an unsynchronized map: look it up from main, not concurrently from actors.
caf::actor basp_broker(caf::actor_system& system);

class raft_transport;

/// Spawns a detached, hidden middleman actor on `broker` that dials with `connect_with_timeout`,
/// or, given a transport, through it (TLS, expecting a certificate for `expected_id`); with a
/// transport its `publish_atom` listens through the transport too (net/raft_transport.hpp).
/// Only `connect_atom` and `publish_atom` are meant to be used on it. The caller owns it: send it
/// an exit message when done, since a detached actor left running keeps its system from
/// shutting down.
caf::io::middleman_actor spawn_bounded_dialer(caf::actor_system& system, caf::actor broker,
                                              caf::timespan connect_timeout,
                                              std::shared_ptr<raft_transport> transport = nullptr,
                                              std::string expected_id = {});

} // namespace infinity
