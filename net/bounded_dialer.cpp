#include "net/bounded_dialer.hpp"

#include "net/raft_transport.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/multiplexer.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace infinity {

namespace {

using steady = std::chrono::steady_clock;

caf::error dial_error(const std::string& host, uint16_t port, const std::string& what) {
  return caf::make_error(caf::sec::cannot_connect_to_node,
                         "connect to " + host + ":" + std::to_string(port) + ": " + what);
}

/// One address: connect, then wait for the handshake until `deadline`. Returns the socket or -1
/// with `why` set.
int connect_one(const addrinfo& ai, steady::time_point deadline, std::string& why) {
  int fd = ::socket(ai.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string{"socket: "} + std::strerror(errno);
    return -1;
  }
  auto fail = [&](std::string what) {
    why = std::move(what);
    ::close(fd);
    return -1;
  };
  if (::connect(fd, ai.ai_addr, ai.ai_addrlen) == 0)
    return fd;
  if (errno != EINPROGRESS)
    return fail(std::strerror(errno));
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0)
      return fail("timed out");
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(std::string{"poll: "} + std::strerror(errno));
    if (n == 0)
      continue; // the deadline check above ends it
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0)
      return fail(std::strerror(err));
    return fd;
  }
}

/// The middleman actor of CAF with the blocking connect replaced (see the header).
class bounded_dialer : public caf::io::middleman_actor_impl {
 public:
  bounded_dialer(caf::actor_config& cfg, caf::actor broker, caf::timespan connect_timeout,
                 std::shared_ptr<raft_transport> transport, std::string expected_id)
      : caf::io::middleman_actor_impl(cfg, std::move(broker)),
        connect_timeout_(std::chrono::duration_cast<std::chrono::milliseconds>(connect_timeout)),
        transport_(std::move(transport)), expected_id_(std::move(expected_id)) {}

  const char* name() const override { return "bounded_dialer"; }

 protected:
  caf::expected<caf::io::scribe_ptr> connect(const std::string& host, uint16_t port) override {
    auto fd = transport_ ? transport_->dial(host, port, expected_id_, connect_timeout_)
                         : connect_with_timeout(host, port, connect_timeout_);
    if (!fd)
      return std::move(fd.error());
    return system().middleman().backend().new_scribe(*fd);
  }

  caf::expected<caf::io::doorman_ptr> open(uint16_t port, const char* addr, bool reuse) override {
    if (!transport_)
      return caf::io::middleman_actor_impl::open(port, addr, reuse);
    return transport_->listen(port, addr == nullptr ? std::string{} : std::string{addr}, reuse);
  }

 private:
  std::chrono::milliseconds connect_timeout_;
  std::shared_ptr<raft_transport> transport_;
  std::string expected_id_;
};

} // namespace

caf::expected<int> connect_with_timeout(const std::string& host, uint16_t port,
                                        std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return dial_error(host, port, std::string{"cannot resolve: "} + ::gai_strerror(rc));
  std::string why = "no address";
  int fd = -1;
  for (auto* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    if (steady::now() >= deadline) {
      why = "timed out";
      break;
    }
    fd = connect_one(*ai, deadline, why);
  }
  ::freeaddrinfo(found);
  if (fd < 0)
    return dial_error(host, port, why);
  return fd;
}

caf::actor basp_broker(caf::actor_system& system) {
  return system.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
}

caf::io::middleman_actor spawn_bounded_dialer(caf::actor_system& system, caf::actor broker,
                                              caf::timespan connect_timeout,
                                              std::shared_ptr<raft_transport> transport,
                                              std::string expected_id) {
  return system.spawn<bounded_dialer, caf::detached + caf::hidden>(
      std::move(broker), connect_timeout, std::move(transport), std::move(expected_id));
}

} // namespace infinity
