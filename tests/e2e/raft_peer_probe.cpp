// raft_peer_probe: a CAF peer that attacks a node's Raft port, for tests/e2e/raft_tls_test.sh.
//
//   raft_peer_probe [--cert C --key K --ca CA] connect HOST:PORT EXPECT_ID
//       Dials like a member would (net/raft_transport): TLS with the given files (plain TCP
//       without), expecting the server's certificate to name EXPECT_ID. Exit 0 and "connected"
//       if the Raft actor was reached, 1 and the error otherwise.
//   raft_peer_probe [...] forge HOST:PORT EXPECT_ID FROM CLUSTER_ID TERM
//       Connects, then sends RequestVote and AppendEntries claiming to be FROM, in TERM, with
//       the right cluster id. A node that believed `from` would move to TERM.
//   raft_peer_probe [...] seams HOST:PORT EXPECT_ID SECONDS ID...
//       Connects, then for SECONDS sends the node's local-only messages from this process:
//       (peer_down, ID) for every ID, ticks, and a proposal. A node that accepted them would
//       lose its peers (and its leadership). Finally one anonymous message, which the transport
//       must answer by closing the connection.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/messages.hpp"
#include "net/bounded_dialer.hpp"
#include "net/peer_connector.hpp"
#include "net/raft_transport.hpp"

using namespace infinity;

namespace {

int usage() {
  std::cerr << "usage: raft_peer_probe [--cert C --key K --ca CA] connect|forge|seams HOST:PORT "
               "EXPECT_ID [...]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  raft_transport_options topts;
  topts.log = [](const std::string& line) { std::cerr << line << "\n"; };
  while (args.size() >= 2 && args[0].rfind("--", 0) == 0) {
    if (args[0] == "--cert")
      topts.tls_cert = args[1];
    else if (args[0] == "--key")
      topts.tls_key = args[1];
    else if (args[0] == "--ca")
      topts.tls_ca = args[1];
    else
      return usage();
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.size() < 3)
    return usage();
  auto mode = args[0];
  auto colon = args[1].rfind(':');
  if (colon == std::string::npos)
    return usage();
  auto host = args[1].substr(0, colon);
  auto port = static_cast<uint16_t>(std::stoi(args[1].substr(colon + 1)));
  auto expect = args[2];

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  register_message_types(cfg);
  configure_middleman(cfg);
  caf::actor_system system{cfg};
  auto transport = std::make_shared<raft_transport>(system, topts);
  auto dialer =
      spawn_bounded_dialer(system, basp_broker(system), std::chrono::seconds(2), transport, expect);
  caf::actor raft;
  std::string error;
  {
    caf::scoped_actor self{system};
    self->request(dialer, std::chrono::seconds(5), caf::connect_atom::value, host, port)
        .receive([&](caf::node_id&, caf::strong_actor_ptr& ptr,
                     std::set<std::string>&) { raft = caf::actor_cast<caf::actor>(ptr); },
                 [&](caf::error& err) { error = system.render(err); });
  }
  caf::anon_send_exit(dialer, caf::exit_reason::user_shutdown);
  int rc = 0;
  if (!raft) {
    std::cout << "refused: " << error << "\n";
    rc = 1;
  } else if (mode == "connect") {
    std::cout << "connected\n";
  } else if (mode == "forge" && args.size() == 6) {
    caf::scoped_actor self{system};
    auto term = std::stoull(args[5]);
    request_vote rv;
    rv.from = args[3];
    rv.cluster_id = args[4];
    rv.term = term;
    rv.last_log_index = 1u << 30;
    rv.last_log_term = term;
    append_entries ae;
    ae.from = args[3];
    ae.cluster_id = args[4];
    ae.term = term;
    for (int i = 0; i < 20; ++i) {
      self->send(raft, rv);
      self->send(raft, ae);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::cout << "sent\n";
  } else if (mode == "seams" && args.size() >= 5) {
    caf::scoped_actor self{system};
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(args[3]));
    while (std::chrono::steady_clock::now() < until) {
      for (size_t i = 4; i < args.size(); ++i)
        self->send(raft, peer_down_atom::value, args[i]);
      for (int i = 0; i < 50; ++i)
        self->send(raft, tick_atom::value);
      self->send(raft, propose_atom::value, std::string{"garbage"});
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Anonymous: CAF would deliver it with no sender, which the node would take for its own.
    caf::anon_send(raft, peer_down_atom::value, args[4]);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::cout << "sent\n";
  } else {
    rc = usage();
  }
  raft = nullptr;
  // A remote proxy left in the system keeps it from shutting down quickly: leave at once.
  std::cout.flush();
  std::_Exit(rc);
}
