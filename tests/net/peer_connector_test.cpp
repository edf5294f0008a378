// Peer connector over real TCP on 127.0.0.1: several actor systems in this process (each with its
// own middleman, node id and published Raft stub), plus child processes (this binary re-executed
// with --peer-helper) that are frozen with SIGSTOP and killed with SIGKILL.
//
// Run with --log_level=message to see the measured timings; connector log lines go to stderr.
#define BOOST_TEST_MODULE peer_connector_test
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/messages.hpp"
#include "net/bounded_dialer.hpp"
#include "net/peer_connector.hpp"

using namespace std::chrono_literals;
using namespace infinity;
using steady = std::chrono::steady_clock;

namespace {

/// Test-only input of the Raft stub: send this Raft message to the peer named `to`.
using relay_atom = caf::atom_constant<caf::atom("relay")>;

double ms_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

// -- what a Raft stub saw ---------------------------------------------------------------------

struct event {
  std::string kind; // up, down, request_vote, vote_reply, append_entries, append_reply, no_route
  std::string peer; // the peer id, or the message's `from`
  caf::actor handle;
  uint64_t value = 0; // the message's term
  steady::time_point at;
};

class recorder {
 public:
  void add(std::string kind, std::string peer, caf::actor handle = {}, uint64_t value = 0) {
    std::lock_guard<std::mutex> guard{mutex_};
    events_.push_back({std::move(kind), std::move(peer), std::move(handle), value, steady::now()});
    changed_.notify_all();
  }

  /// The n-th (1-based) event of `kind` from `peer`, waiting up to `timeout` for it.
  std::optional<event> wait(const std::string& kind, const std::string& peer, size_t n,
                            steady::duration timeout) {
    std::unique_lock<std::mutex> guard{mutex_};
    std::optional<event> found;
    changed_.wait_for(guard, timeout, [&] {
      size_t seen = 0;
      for (auto& e : events_)
        if (e.kind == kind && e.peer == peer && ++seen == n) {
          found = e;
          return true;
        }
      return false;
    });
    return found;
  }

  size_t count(const std::string& kind, const std::string& peer) {
    std::lock_guard<std::mutex> guard{mutex_};
    size_t n = 0;
    for (auto& e : events_)
      n += e.kind == kind && e.peer == peer ? 1 : 0;
    return n;
  }

  std::vector<event> all(const std::string& kind, const std::string& peer) {
    std::lock_guard<std::mutex> guard{mutex_};
    std::vector<event> out;
    for (auto& e : events_)
      if (e.kind == kind && e.peer == peer)
        out.push_back(e);
    return out;
  }

  /// "up down up ..." for one peer: what Raft would have believed over time.
  std::string membership(const std::string& peer) {
    std::lock_guard<std::mutex> guard{mutex_};
    std::string out;
    for (auto& e : events_)
      if (e.peer == peer && (e.kind == "up" || e.kind == "down"))
        out += (out.empty() ? "" : " ") + e.kind;
    return out;
  }

  /// Proxies must die before the actor system that made them.
  void clear() {
    std::lock_guard<std::mutex> guard{mutex_};
    events_.clear();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<event> events_;
};

struct stub_state {
  std::map<std::string, caf::actor> peers;
  static inline const char* name = "raft_stub";
};

/// Stands in for the Raft node: records everything, answers votes and appends like Raft does
/// (one-way, to the handle of the peer named in `from`), and relays test messages.
caf::behavior raft_stub(caf::stateful_actor<stub_state>* self, std::string id,
                        std::shared_ptr<recorder> rec) {
  auto send_to = [self, rec](const std::string& to, auto message) {
    auto i = self->state.peers.find(to);
    if (i == self->state.peers.end()) {
      rec->add("no_route", to);
      return;
    }
    self->send(i->second, std::move(message));
  };
  return {
      [self, rec](peer_up_atom, const std::string& peer, caf::actor& handle) {
        self->state.peers[peer] = handle;
        rec->add("up", peer, handle);
      },
      [self, rec](peer_down_atom, const std::string& peer) {
        self->state.peers.erase(peer);
        rec->add("down", peer);
      },
      [id, rec, send_to](const request_vote& x) {
        rec->add("request_vote", x.from, {}, x.term);
        vote_reply reply;
        reply.from = id;
        reply.term = x.term;
        reply.granted = true;
        reply.pre_vote = x.pre_vote;
        send_to(x.from, reply);
      },
      [rec](const vote_reply& x) { rec->add("vote_reply", x.from, {}, x.term); },
      [id, rec, send_to](const append_entries& x) {
        rec->add("append_entries", x.from, {}, x.term);
        append_reply reply;
        reply.from = id;
        reply.term = x.term;
        reply.success = true;
        reply.match_index = x.prev_log_index + x.entries.size();
        send_to(x.from, reply);
      },
      [rec](const append_reply& x) { rec->add("append_reply", x.from, {}, x.term); },
      [send_to](relay_atom, const std::string& to, const request_vote& x) { send_to(to, x); },
      [send_to](relay_atom, const std::string& to, const append_entries& x) { send_to(to, x); },
  };
}

request_vote make_vote(const std::string& from, uint64_t term) {
  request_vote x;
  x.from = from;
  x.term = term;
  return x;
}

append_entries make_append(const std::string& from, uint64_t term) {
  append_entries x;
  x.from = from;
  x.term = term;
  log_entry entry;
  entry.term = term;
  entry.index = 1;
  entry.data = std::string(64, 'x');
  x.entries.push_back(entry);
  return x;
}

/// A listening socket on a free 127.0.0.1 port.
int listen_on_loopback(int backlog, uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  BOOST_REQUIRE(::listen(fd, backlog) == 0);
  socklen_t len = sizeof(addr);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  port = ntohs(addr.sin_port);
  return fd;
}

uint16_t free_port() {
  // Once closed, the kernel may hand the same ephemeral port out again (two nodes of one test on
  // one port): never return a port this process was given before.
  static std::set<uint16_t> given;
  for (;;) {
    uint16_t port = 0;
    ::close(listen_on_loopback(1, port));
    if (given.insert(port).second)
      return port;
  }
}

std::string local(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

peer_connector_options fast_options() {
  peer_connector_options options;
  options.min_backoff = 50ms;
  options.max_backoff = 500ms;
  return options;
}

/// Connector log lines arrive on CAF threads, where Boost.Test's logger must not be used.
void log_line(const std::string& line) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> guard{mutex};
  std::clog << "  log: " << line << std::endl;
}

void make_config(caf::actor_system_config& cfg) {
  configure_middleman(cfg);
  register_message_types(cfg);
  cfg.set("scheduler.max-threads", size_t{2});
}

// -- one node: actor system + Raft stub + peer connector --------------------------------------

struct test_node {
  std::string id;
  uint16_t port;
  std::shared_ptr<recorder> rec = std::make_shared<recorder>();
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor raft;
  caf::actor connector;

  test_node(std::string node_id, uint16_t node_port) : id(std::move(node_id)), port(node_port) {}
  test_node(const test_node&) = delete;
  ~test_node() { stop(); }

  /// Empty on success, else the rendered error of spawn_peer_connector.
  std::string start(std::map<std::string, std::string> peers,
                    peer_connector_options options = fast_options()) {
    cfg = std::make_unique<caf::actor_system_config>();
    make_config(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    raft = sys->spawn(raft_stub, id, rec);
    options.log_event = log_line;
    auto spawned = spawn_peer_connector(*sys, raft, id, "127.0.0.1", port, std::move(peers),
                                        std::move(options));
    if (!spawned) {
      auto what = sys->render(spawned.error());
      stop();
      return what;
    }
    connector = *spawned;
    return {};
  }

  void stop() {
    if (!sys)
      return;
    {
      caf::scoped_actor self{*sys};
      for (auto* hdl : {&connector, &raft})
        if (*hdl) {
          self->send_exit(*hdl, caf::exit_reason::user_shutdown);
          self->wait_for(*hdl);
        }
    }
    rec->clear();
    raft = nullptr;
    connector = nullptr;
    sys.reset();
    cfg.reset();
  }

  template <class RaftMessage>
  void relay(const std::string& to, RaftMessage x) {
    caf::anon_send(raft, relay_atom::value, to, std::move(x));
  }
};

/// Requests from a to b and back, and appends from b to a and back, each exactly once.
void check_exchange(test_node& a, test_node& b, uint64_t term) {
  auto votes_before = a.rec->count("vote_reply", b.id);
  a.relay(b.id, make_vote(a.id, term));
  BOOST_REQUIRE_MESSAGE(a.rec->wait("vote_reply", b.id, votes_before + 1, 3s),
                        a.id << " got no vote_reply from " << b.id);
  auto replies_before = b.rec->count("append_reply", a.id);
  b.relay(a.id, make_append(b.id, term));
  BOOST_REQUIRE_MESSAGE(b.rec->wait("append_reply", a.id, replies_before + 1, 3s),
                        b.id << " got no append_reply from " << a.id);
  BOOST_CHECK_EQUAL(b.rec->all("request_vote", a.id).back().value, term);
  BOOST_CHECK_EQUAL(a.rec->all("append_entries", b.id).back().value, term);
}

/// A listener on 127.0.0.1 whose accept queue is full, so the kernel drops further SYNs without
/// an answer: to a dialer it looks like a partitioned host.
struct silent_listener {
  int listen_fd = -1;
  std::vector<int> fillers;
  uint16_t port = 0;

  silent_listener() {
    listen_fd = listen_on_loopback(0, port);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    // Never accepted: these fill the queue (a backlog of 0 holds one).
    for (int k = 0; k < 3; ++k) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      BOOST_REQUIRE(fd >= 0);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fillers.push_back(fd);
    }
    std::this_thread::sleep_for(100ms);
  }
  silent_listener(const silent_listener&) = delete;
  ~silent_listener() {
    for (int fd : fillers)
      ::close(fd);
    ::close(listen_fd);
  }
};

// -- child process: this binary with --peer-helper -------------------------------------------

int run_peer_helper(int argc, char** argv) {
  // --peer-helper ID PORT PARENT_ID PARENT_PORT
  if (argc != 6)
    return 2;
  std::string id = argv[2];
  auto port = static_cast<uint16_t>(std::stoi(argv[3]));
  std::string parent_id = argv[4];
  auto parent_port = static_cast<uint16_t>(std::stoi(argv[5]));
  caf::actor_system_config cfg;
  make_config(cfg);
  caf::actor_system sys{cfg};
  auto rec = std::make_shared<recorder>();
  auto raft = sys.spawn(raft_stub, id, rec);
  auto connector = spawn_peer_connector(sys, raft, id, "127.0.0.1", port,
                                        {{parent_id, local(parent_port)}}, fast_options());
  std::string line = connector ? "ready\n" : "error " + sys.render(connector.error()) + "\n";
  if (::write(STDOUT_FILENO, line.data(), line.size()) < 0 || !connector)
    ::_exit(1);
  for (;;)
    ::pause(); // the parent ends this process with SIGKILL
}

/// A child we started; SIGKILLed and reaped on destruction whatever the test outcome.
struct child_process {
  pid_t pid = -1;
  int out = -1;

  child_process(const std::string& id, uint16_t port, const std::string& parent_id,
                uint16_t parent_port) {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::vector<std::string> args{
        "/proc/self/exe",     "--peer-helper", id,
        std::to_string(port), parent_id,       std::to_string(parent_port)};
    std::vector<char*> argv;
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec: the parent has CAF threads running.
      ::dup2(fds[1], STDOUT_FILENO);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out = fds[0];
  }

  ~child_process() {
    kill_and_reap();
    if (out >= 0)
      ::close(out);
  }

  std::string read_line(steady::duration timeout) {
    auto deadline = steady::now() + timeout;
    std::string line;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0)
        return line;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        continue;
      char c;
      if (::read(out, &c, 1) != 1 || c == '\n')
        return line;
      line += c;
    }
  }

  void signal(int sig) {
    if (pid > 0)
      BOOST_REQUIRE(::kill(pid, sig) == 0);
  }

  void kill_and_reap() {
    if (pid <= 0)
      return;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
};

/// The child's own connector may redial P a backoff later than P redials the child; until then
/// the child has no route back, so ask again until the n-th answer arrives.
bool answered_by_child(test_node& parent, size_t n) {
  for (int i = 0; i < 50; ++i) {
    parent.relay("child", make_vote("P", n));
    if (parent.rec->wait("vote_reply", "child", n, 100ms))
      return true;
  }
  return false;
}

} // namespace

// -- tests ------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(two_nodes_exchange_detect_shutdown_and_reconnect) {
  test_node a{"A", free_port()};
  test_node b{"B", free_port()};
  BOOST_REQUIRE_EQUAL(a.start({{"B", local(b.port)}}), "");
  auto start = steady::now();
  BOOST_REQUIRE_EQUAL(b.start({{"A", local(a.port)}}), "");
  auto a_up = a.rec->wait("up", "B", 1, 5s);
  auto b_up = b.rec->wait("up", "A", 1, 5s);
  BOOST_REQUIRE(a_up && b_up);
  BOOST_TEST_MESSAGE("connect: B saw A up after "
                     << ms_since(start) - ms_since(b_up->at) << " ms, A saw B up after "
                     << ms_since(start) - ms_since(a_up->at) << " ms (A redials with backoff)");
  check_exchange(a, b, 1);
  check_exchange(b, a, 2);

  // A burst crosses once each, in order, in both directions.
  constexpr uint64_t burst = 200;
  for (uint64_t term = 100; term < 100 + burst; ++term)
    a.relay("B", make_append("A", term));
  BOOST_REQUIRE(a.rec->wait("append_reply", "B", 1 + burst, 5s));
  std::this_thread::sleep_for(100ms);
  auto got = b.rec->all("append_entries", "A");
  BOOST_REQUIRE_EQUAL(got.size(), 1 + burst);
  for (uint64_t k = 0; k < burst; ++k)
    BOOST_REQUIRE_EQUAL(got[1 + k].value, 100 + k);
  BOOST_CHECK_EQUAL(a.rec->count("append_reply", "B"), 1 + burst);
  BOOST_CHECK_EQUAL(a.rec->membership("B"), "up");
  BOOST_CHECK_EQUAL(b.rec->membership("A"), "up");

  // B's whole system goes away: A's proxy dies with the connection.
  auto old_handle = a_up->handle;
  auto stopped = steady::now();
  b.stop();
  auto a_down = a.rec->wait("down", "B", 1, 3s);
  BOOST_REQUIRE(a_down);
  BOOST_TEST_MESSAGE("down after system shutdown: " << ms_since(stopped) - ms_since(a_down->at)
                                                    << " ms");

  // B comes back on the same port: A redials on its own and gets a new handle.
  std::this_thread::sleep_for(200ms);
  auto restarted = steady::now();
  BOOST_REQUIRE_EQUAL(b.start({{"A", local(a.port)}}), "");
  auto a_up2 = a.rec->wait("up", "B", 2, 5s);
  BOOST_REQUIRE(a_up2);
  BOOST_TEST_MESSAGE("reconnect after restart on the same port: "
                     << ms_since(restarted) - ms_since(a_up2->at) << " ms");
  BOOST_CHECK(a_up2->handle != old_handle);
  BOOST_CHECK(a_up2->handle.node() != old_handle.node());
  BOOST_REQUIRE(b.rec->wait("up", "A", 1, 5s));
  check_exchange(a, b, 3);
  check_exchange(b, a, 4);
  BOOST_CHECK_EQUAL(a.rec->membership("B"), "up down up");
}

BOOST_AUTO_TEST_CASE(three_nodes_full_mesh) {
  test_node a{"A", free_port()};
  test_node b{"B", free_port()};
  test_node c{"C", free_port()};
  std::map<std::string, std::string> all{
      {"A", local(a.port)}, {"B", local(b.port)}, {"C", local(c.port)}};
  BOOST_REQUIRE_EQUAL(a.start(all), "");
  BOOST_REQUIRE_EQUAL(b.start(all), "");
  BOOST_REQUIRE_EQUAL(c.start(all), "");
  std::vector<test_node*> nodes{&a, &b, &c};
  for (auto* x : nodes)
    for (auto* y : nodes)
      if (x != y)
        BOOST_REQUIRE_MESSAGE(x->rec->wait("up", y->id, 1, 5s), x->id << " never saw " << y->id);
  for (auto* x : nodes)
    for (auto* y : nodes)
      if (x != y)
        check_exchange(*x, *y, 10);
  auto stopped = steady::now();
  c.stop();
  auto a_down = a.rec->wait("down", "C", 1, 3s);
  auto b_down = b.rec->wait("down", "C", 1, 3s);
  BOOST_REQUIRE(a_down && b_down);
  BOOST_TEST_MESSAGE("3 nodes: C's shutdown seen by A after "
                     << ms_since(stopped) - ms_since(a_down->at) << " ms, by B after "
                     << ms_since(stopped) - ms_since(b_down->at) << " ms");
  // A and B keep each other.
  check_exchange(a, b, 11);
  BOOST_CHECK_EQUAL(a.rec->membership("B"), "up");
  BOOST_CHECK_EQUAL(b.rec->membership("A"), "up");
}

BOOST_AUTO_TEST_CASE(port_in_use_is_reported) {
  test_node a{"A", free_port()};
  BOOST_REQUIRE_EQUAL(a.start({}), "");
  test_node intruder{"X", a.port};
  auto error = intruder.start({});
  BOOST_TEST_MESSAGE("port in use: " << error);
  BOOST_CHECK(!error.empty());
  BOOST_CHECK(error.find(local(a.port)) != std::string::npos);
  BOOST_CHECK(!intruder.sys);

  test_node bad_peer{"Y", free_port()};
  error = bad_peer.start({{"Z", "no-port-here"}});
  BOOST_CHECK(error.find("no-port-here") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(peers_added_and_removed_at_runtime) {
  test_node a{"A", free_port()};
  test_node b{"B", free_port()};
  BOOST_REQUIRE_EQUAL(a.start({}), "");
  BOOST_REQUIRE_EQUAL(b.start({}), "");
  caf::anon_send(a.connector, peer_up_atom::value, std::string{"Q"}, std::string{"garbage"});
  caf::anon_send(a.connector, peer_up_atom::value, std::string{"A"}, local(a.port)); // itself
  caf::anon_send(a.connector, peer_up_atom::value, std::string{"B"}, local(b.port));
  BOOST_REQUIRE(a.rec->wait("up", "B", 1, 3s));
  // B learns A only from its own connector, which knows nothing yet: no route back.
  a.relay("B", make_vote("A", 1));
  BOOST_REQUIRE(b.rec->wait("no_route", "A", 1, 3s));
  caf::anon_send(b.connector, peer_up_atom::value, std::string{"A"}, local(a.port));
  BOOST_REQUIRE(b.rec->wait("up", "A", 1, 3s));
  check_exchange(a, b, 2);

  caf::anon_send(a.connector, peer_down_atom::value, std::string{"B"});
  BOOST_REQUIRE(a.rec->wait("down", "B", 1, 3s));
  std::this_thread::sleep_for(300ms); // longer than the backoff: a removed peer is not redialled
  BOOST_CHECK_EQUAL(a.rec->membership("B"), "up down");
  BOOST_CHECK_EQUAL(a.rec->count("up", "A"), 0u);
  BOOST_CHECK_EQUAL(a.rec->count("up", "Q"), 0u);

  // Re-adding reuses the live connection.
  caf::anon_send(a.connector, peer_up_atom::value, std::string{"B"}, local(b.port));
  BOOST_REQUIRE(a.rec->wait("up", "B", 2, 3s));
  check_exchange(a, b, 3);
}

BOOST_AUTO_TEST_CASE(remote_raft_exit_is_down_but_unpublish_is_not) {
  test_node a{"A", free_port()};
  test_node b{"B", free_port()};
  BOOST_REQUIRE_EQUAL(a.start({{"B", local(b.port)}}), "");
  BOOST_REQUIRE_EQUAL(b.start({{"A", local(a.port)}}), "");
  BOOST_REQUIRE(a.rec->wait("up", "B", 1, 5s));
  BOOST_REQUIRE(b.rec->wait("up", "A", 1, 5s));

  // B's connector quits and unpublishes B's Raft actor: the live connection stays, so A keeps
  // its handle and messages still flow; only new dials to B's port would fail.
  {
    caf::scoped_actor self{*b.sys};
    self->send_exit(b.connector, caf::exit_reason::user_shutdown);
    self->wait_for(b.connector);
  }
  b.connector = nullptr;
  std::this_thread::sleep_for(300ms);
  BOOST_CHECK_EQUAL(a.rec->count("down", "B"), 0u);
  check_exchange(a, b, 1);

  // B's Raft actor terminates while B's system stays up: A's monitor fires via BASP.
  auto stopped = steady::now();
  {
    caf::scoped_actor self{*b.sys};
    self->send_exit(b.raft, caf::exit_reason::user_shutdown);
    self->wait_for(b.raft);
  }
  auto a_down = a.rec->wait("down", "B", 1, 3s);
  BOOST_REQUIRE(a_down);
  BOOST_TEST_MESSAGE("down after the remote Raft actor exited: "
                     << ms_since(stopped) - ms_since(a_down->at) << " ms");
  std::this_thread::sleep_for(300ms); // redials fail: nothing is published on B's port any more
  BOOST_CHECK_EQUAL(a.rec->membership("B"), "up down");
}

BOOST_AUTO_TEST_CASE(simultaneous_dial_converges) {
  // Both sides dial each other at the same instant, the case where CAF may close both TCP
  // connections as redundant. Whatever happens, both must end up and exchange messages once.
  // About 3 rounds in 100 flap; PEER_DIAL_ROUNDS=100 shows it.
  const char* rounds_env = std::getenv("PEER_DIAL_ROUNDS");
  const int rounds = rounds_env ? std::atoi(rounds_env) : 8;
  int flapped_rounds = 0;
  double worst_ms = 0;
  for (int round = 0; round < rounds; ++round) {
    test_node a{"A", free_port()};
    test_node b{"B", free_port()};
    BOOST_REQUIRE_EQUAL(a.start({}), "");
    BOOST_REQUIRE_EQUAL(b.start({}), "");
    auto start = steady::now();
    caf::anon_send(a.connector, peer_up_atom::value, std::string{"B"}, local(b.port));
    caf::anon_send(b.connector, peer_up_atom::value, std::string{"A"}, local(a.port));
    BOOST_REQUIRE(a.rec->wait("up", "B", 1, 5s));
    BOOST_REQUIRE(b.rec->wait("up", "A", 1, 5s));
    // Settle: any flap shows up as down + up within a few backoffs.
    auto settled = [&] {
      return a.rec->count("up", "B") == a.rec->count("down", "B") + 1 &&
             b.rec->count("up", "A") == b.rec->count("down", "A") + 1;
    };
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 50 && !settled(); ++i)
      std::this_thread::sleep_for(100ms);
    BOOST_REQUIRE_MESSAGE(settled(), "round " << round << ": A sees B " << a.rec->membership("B")
                                              << ", B sees A " << b.rec->membership("A"));
    auto elapsed = ms_since(start);
    auto flaps = a.rec->count("down", "B") + b.rec->count("down", "A");
    if (flaps > 0) {
      ++flapped_rounds;
      worst_ms = std::max(worst_ms, elapsed);
      BOOST_TEST_MESSAGE("round " << round << ": A sees B " << a.rec->membership("B")
                                  << ", B sees A " << b.rec->membership("A"));
    }
    check_exchange(a, b, 1);
    check_exchange(b, a, 2);
    BOOST_CHECK_EQUAL(b.rec->count("request_vote", "A"), 1u);
    BOOST_CHECK_EQUAL(a.rec->count("append_entries", "B"), 1u);
  }
  BOOST_TEST_MESSAGE("simultaneous dial: " << flapped_rounds << " of " << rounds
                                           << " rounds flapped before settling (worst " << worst_ms
                                           << " ms incl. 300 ms settle)");
}

BOOST_AUTO_TEST_CASE(child_process_frozen_killed_and_restarted) {
  test_node parent{"P", free_port()};
  auto child_port = free_port();
  BOOST_REQUIRE_EQUAL(parent.start({{"child", local(child_port)}}), "");
  std::optional<event> up;
  {
    auto started = steady::now();
    child_process child{"child", child_port, "P", parent.port};
    BOOST_REQUIRE_EQUAL(child.read_line(10s), "ready");
    up = parent.rec->wait("up", "child", 1, 5s);
    BOOST_REQUIRE(up);
    BOOST_TEST_MESSAGE("child process: up " << ms_since(started) - ms_since(up->at)
                                            << " ms after fork (exec + system start + dial)");
    // Both directions: the child answers through its own connector's handle for P.
    BOOST_REQUIRE(answered_by_child(parent, 1));

    // Frozen: TCP stays open, only the missing heartbeats tell.
    auto frozen = steady::now();
    child.signal(SIGSTOP);
    auto down = parent.rec->wait("down", "child", 1, 5s);
    BOOST_REQUIRE(down);
    auto detect_ms = ms_since(frozen) - ms_since(down->at);
    BOOST_TEST_MESSAGE("SIGSTOP detected after " << detect_ms << " ms");
    BOOST_CHECK_LT(detect_ms, 2500.0);
    BOOST_CHECK_GT(detect_ms, 500.0); // it really was the connection timeout

    auto thawed = steady::now();
    child.signal(SIGCONT);
    auto up2 = parent.rec->wait("up", "child", 2, 5s);
    BOOST_REQUIRE(up2);
    BOOST_TEST_MESSAGE("reconnect after SIGCONT: " << ms_since(thawed) - ms_since(up2->at)
                                                   << " ms");
    // Same process and actor, so the handles compare equal; the proxy object is a new one.
    BOOST_CHECK(up2->handle == up->handle);
    BOOST_CHECK(caf::actor_cast<caf::abstract_actor*>(up2->handle) !=
                caf::actor_cast<caf::abstract_actor*>(up->handle));
    BOOST_REQUIRE(answered_by_child(parent, 2));

    // Killed: the kernel closes the socket, so this is fast.
    auto killed = steady::now();
    child.signal(SIGKILL);
    auto down2 = parent.rec->wait("down", "child", 2, 5s);
    BOOST_REQUIRE(down2);
    BOOST_TEST_MESSAGE("SIGKILL detected after " << ms_since(killed) - ms_since(down2->at)
                                                 << " ms");
    child.kill_and_reap();
  }
  {
    // A new process on the same port (reuse=true on both sides of the restart).
    auto restarted = steady::now();
    child_process child{"child", child_port, "P", parent.port};
    BOOST_REQUIRE_EQUAL(child.read_line(10s), "ready");
    auto ready_ms = ms_since(restarted);
    auto up3 = parent.rec->wait("up", "child", 3, 5s);
    BOOST_REQUIRE(up3);
    BOOST_TEST_MESSAGE("restarted child: ready after " << ready_ms << " ms, up after "
                                                       << ms_since(restarted) - ms_since(up3->at)
                                                       << " ms");
    BOOST_CHECK(up3->handle.node() != up->handle.node());
    BOOST_REQUIRE(answered_by_child(parent, 3));
    BOOST_CHECK_EQUAL(parent.rec->membership("child"), "up down up down up");
  }
}

BOOST_AUTO_TEST_CASE(connect_with_timeout_connects_refuses_and_gives_up) {
  uint16_t open_port = 0;
  int server = listen_on_loopback(8, open_port);

  auto fd = connect_with_timeout("127.0.0.1", open_port, 1000ms);
  BOOST_REQUIRE(fd);
  BOOST_CHECK(::fcntl(*fd, F_GETFL) & O_NONBLOCK);
  BOOST_CHECK(::fcntl(*fd, F_GETFD) & FD_CLOEXEC);
  ::close(*fd);
  auto by_name = connect_with_timeout("localhost", open_port, 1000ms);
  BOOST_REQUIRE(by_name);
  ::close(*by_name);
  ::close(server);

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto refused = connect_with_timeout("127.0.0.1", free_port(), 1000ms);
  BOOST_REQUIRE(!refused);
  BOOST_TEST_MESSAGE("closed port: " << sys.render(refused.error()));
  BOOST_CHECK(sys.render(refused.error()).find("refused") != std::string::npos);

  auto unresolvable = connect_with_timeout("no-such-host.invalid", 80, 1000ms);
  BOOST_REQUIRE(!unresolvable);
  BOOST_CHECK(sys.render(unresolvable.error()).find("no-such-host.invalid:80") !=
              std::string::npos);

  // A peer that never answers costs the timeout, not the kernel's ~2 minutes of SYN retries.
  silent_listener silent;
  auto start = steady::now();
  auto timed_out = connect_with_timeout("127.0.0.1", silent.port, 300ms);
  auto took = ms_since(start);
  BOOST_REQUIRE(!timed_out);
  BOOST_TEST_MESSAGE("silent peer: " << sys.render(timed_out.error()) << " after " << took
                                     << " ms");
  BOOST_CHECK(sys.render(timed_out.error()).find("timed out") != std::string::npos);
  BOOST_CHECK_GE(took, 250.0);
  BOOST_CHECK_LT(took, 5000.0);
}

BOOST_AUTO_TEST_CASE(silent_peer_does_not_delay_the_others) {
  // With CAF's own middleman actor every dial of a process waits behind a blocking connect to a
  // silent peer. Here A dials the silent peer S first and B later: B must come up at once.
  silent_listener silent;
  test_node a{"A", free_port()};
  test_node b{"B", free_port()};
  BOOST_REQUIRE_EQUAL(a.start({{"S", local(silent.port)}}), "");
  std::this_thread::sleep_for(200ms); // A's first dial to S is under way
  auto start = steady::now();
  caf::anon_send(a.connector, peer_up_atom::value, std::string{"B"}, local(b.port));
  BOOST_REQUIRE_EQUAL(b.start({{"A", local(a.port)}}), "");
  auto up = a.rec->wait("up", "B", 1, 3s);
  BOOST_REQUIRE_MESSAGE(up, "B did not come up while A's dial to the silent peer was pending");
  BOOST_TEST_MESSAGE("B up " << ms_since(start) - ms_since(up->at)
                             << " ms after it was added, while S stayed silent");
  check_exchange(a, b, 1);
  BOOST_CHECK_EQUAL(a.rec->count("up", "S"), 0u);
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--peer-helper") == 0)
    return run_peer_helper(argc, argv);
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
