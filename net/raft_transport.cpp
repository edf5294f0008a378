#include "net/raft_transport.hpp"

#include "net/bounded_dialer.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <caf/binary_deserializer.hpp>
#include <caf/io/abstract_broker.hpp>
#include <caf/io/accept_handle.hpp>
#include <caf/io/basp/header.hpp>
#include <caf/io/basp/message_type.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/multiplexer.hpp>
#include <caf/io/scribe.hpp>

namespace infinity {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using tls_stream = ssl::stream<tcp::socket>;
using message_type = caf::io::basp::message_type;

namespace {

constexpr std::size_t header_size = caf::io::basp::header_size;
/// Handshakes, monitor and down messages carry node ids, a few strings and an error: tiny.
constexpr uint32_t max_control_payload = 64 * 1024;
constexpr std::size_t chunk_size = 64 * 1024;

bool valid_member_id(const std::string& id) {
  if (id.empty() || id.size() > 64 || id == "." || id == "..")
    return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  return true;
}

/// The subject CN of the peer's (already verified) certificate; empty unless exactly one.
std::string certificate_cn(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr)
    return {};
  std::string out;
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i >= 0 && X509_NAME_get_index_by_NID(name, NID_commonName, i) < 0) {
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (n > 0)
      out.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
  }
  X509_free(cert);
  return out;
}

ssl::context make_context(const raft_transport_options& opts) {
  ssl::context ctx{ssl::context::tls};
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  // Both ends are this program: no reason to accept anything older.
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  error_code ec;
  ctx.load_verify_file(opts.tls_ca, ec);
  if (ec)
    throw std::runtime_error("cannot load --raft-tls-ca '" + opts.tls_ca + "': " + ec.message());
  ctx.use_certificate_chain_file(opts.tls_cert, ec);
  if (ec)
    throw std::runtime_error("cannot load --raft-tls-cert '" + opts.tls_cert +
                             "': " + ec.message());
  ctx.use_private_key_file(opts.tls_key, ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error("cannot load --raft-tls-key '" + opts.tls_key + "': " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw std::runtime_error("--raft-tls-key '" + opts.tls_key +
                             "' does not match --raft-tls-cert '" + opts.tls_cert + "'");
  return ctx;
}

caf::error dial_failed(const std::string& where, const std::string& why) {
  return caf::make_error(caf::sec::cannot_connect_to_node, where + ": " + why);
}

std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec)
    return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

struct link_base {
  virtual ~link_base() = default;
  virtual void close(const std::string& why) = 0;
};

struct listener;

} // namespace

struct raft_transport::impl {
  impl(caf::actor_system& sys, raft_transport_options o) : system(sys), opts(std::move(o)) {}

  caf::actor_system& system;
  raft_transport_options opts;
  std::optional<ssl::context> tls;
  std::atomic<bool> stopped{false};

  mutable std::mutex bindings_mutex;
  struct binding {
    std::string id;
    int links = 0;
  };
  /// node id -> the identity its connections authenticated as (guarded by bindings_mutex).
  std::map<caf::node_id, binding> bindings;

  // -- transport thread only
  std::size_t pending_handshakes = 0;
  std::map<link_base*, std::weak_ptr<link_base>> live;
  std::vector<std::weak_ptr<listener>> listeners;
  std::chrono::steady_clock::time_point log_window{};
  int logged_in_window = 0;
  uint64_t suppressed = 0;

  std::thread thread;
  // Declared last so it is destroyed first: its pending handlers own links that use the above.
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  /// At most 20 lines per 10 s: an attacker must not be able to fill the disk through us.
  void report(const std::string& line) {
    if (!opts.log)
      return;
    auto now = std::chrono::steady_clock::now();
    if (now - log_window > std::chrono::seconds(10)) {
      if (suppressed > 0)
        opts.log("raft transport: " + std::to_string(suppressed) + " more lines suppressed");
      log_window = now;
      logged_in_window = 0;
      suppressed = 0;
    }
    if (++logged_in_window > 20) {
      ++suppressed;
      return;
    }
    opts.log("raft transport: " + line);
  }

  /// Binds `node` to `id` for one more connection; false if it is bound to another identity.
  bool bind(const caf::node_id& node, const std::string& id) {
    std::lock_guard<std::mutex> guard{bindings_mutex};
    auto& b = bindings[node];
    if (b.links > 0 && b.id != id)
      return false;
    b.id = id;
    ++b.links;
    return true;
  }

  void unbind(const caf::node_id& node) {
    std::lock_guard<std::mutex> guard{bindings_mutex};
    auto i = bindings.find(node);
    if (i != bindings.end() && --i->second.links <= 0)
      bindings.erase(i);
  }

  void close_all();

  template <class Stream>
  void start_inbound(tcp::socket socket, std::shared_ptr<listener> from);

  void start_outbound(tcp::socket socket, std::string expected_id, std::string where,
                      std::shared_ptr<std::promise<caf::expected<int>>> result);
};

namespace {

/// The accepting side of the Raft port. `deliver` (set when CAF's broker launches our doorman)
/// hands CAF the socketpair end of an accepted, authenticated connection.
struct listener : std::enable_shared_from_this<listener> {
  listener(raft_transport::impl& t, tcp::acceptor a) : transport(t), acceptor(std::move(a)) {}

  raft_transport::impl& transport;
  tcp::acceptor acceptor;
  std::function<void(int)> deliver;
  asio::steady_timer retry{transport.ioc};

  void accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
        return;
      if (ec) {
        // Out of descriptors, most likely: back off instead of spinning.
        self->transport.report("accept failed: " + ec.message());
        self->retry.expires_after(std::chrono::milliseconds(100));
        self->retry.async_wait([self](error_code e) {
          if (!e)
            self->accept();
        });
        return;
      }
      if (self->transport.opts.tls_cert.empty())
        self->transport.start_inbound<tcp::socket>(std::move(socket), self);
      else
        self->transport.start_inbound<tls_stream>(std::move(socket), self);
      self->accept();
    });
  }

  void close() {
    error_code ignored;
    acceptor.close(ignored);
    retry.cancel();
    deliver = nullptr; // drops the doorman it captured
  }
};

tcp::socket& lowest(tcp::socket& s) {
  return s;
}
tcp::socket& lowest(tls_stream& s) {
  return s.next_layer();
}

/// One connection: the remote stream, the socket CAF reads and writes (its socketpair end), and
/// the filter between them.
template <class Stream>
struct link : link_base, std::enable_shared_from_this<link<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  link(raft_transport::impl& t, Stream s, bool in, std::string where)
      : transport(t), remote(std::move(s)), local(t.ioc), inbound(in), peer(std::move(where)),
        deadline(t.ioc), down_buf(chunk_size), up_buf(chunk_size) {}

  ~link() override {
    if (bound)
      transport.unbind(*node);
  }

  raft_transport::impl& transport;
  Stream remote;
  asio::local::stream_protocol::socket local;
  bool inbound;
  /// "address" until the TLS handshake, then "id at address".
  std::string peer;
  std::string peer_id;
  std::optional<caf::node_id> node;
  bool bound = false;
  bool counted_pending = false;
  bool closed = false;
  asio::steady_timer deadline;
  std::shared_ptr<std::promise<caf::expected<int>>> dial_result;
  std::array<char, header_size> head{};
  std::vector<char> frame;
  std::vector<char> down_buf;
  std::vector<char> up_buf;
  uint64_t remaining = 0;
  bool discarding = false;

  void register_live() { transport.live[this] = this->shared_from_this(); }

  void arm_deadline() {
    deadline.expires_after(transport.opts.handshake_timeout);
    deadline.async_wait([self = this->shared_from_this()](error_code ec) {
      if (!ec && !self->node)
        self->close("no handshake within " +
                    std::to_string(self->transport.opts.handshake_timeout.count()) + " ms");
    });
  }

  void fail_dial(const std::string& why) {
    if (dial_result) {
      dial_result->set_value(dial_failed(peer, why));
      dial_result = nullptr;
    }
  }

  void close(const std::string& why) override {
    if (closed)
      return;
    closed = true;
    if (!why.empty())
      transport.report((inbound ? "closed inbound connection from " : "closed connection to ") +
                       peer + ": " + why);
    fail_dial(why.empty() ? "connection closed" : why);
    if (counted_pending) {
      counted_pending = false;
      --transport.pending_handshakes;
    }
    error_code ignored;
    deadline.cancel();
    lowest(remote).shutdown(tcp::socket::shutdown_both, ignored);
    lowest(remote).close(ignored);
    local.close(ignored);
    transport.live.erase(this);
  }

  /// Creates the socketpair and returns CAF's end (non-blocking), or -1.
  int open_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      return -1;
    ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    error_code ec;
    local.assign(asio::local::stream_protocol{}, fds[0], ec);
    if (ec) {
      ::close(fds[0]);
      ::close(fds[1]);
      return -1;
    }
    return fds[1];
  }

  void authenticated(const std::string& id) {
    peer_id = id;
    peer = id + " at " + peer;
  }

  void start_pumps() {
    read_header();
    pump_up();
  }

  // -- peer -> CAF, frame by frame

  void refuse(const std::string& why) { close("refused: " + why); }

  void read_header() {
    asio::async_read(remote, asio::buffer(head),
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       if (ec)
                         return self->close(self->node ? "" : "closed during the handshake");
                       self->on_header();
                     });
  }

  void on_header() {
    caf::io::basp::header hdr;
    caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), head.data(),
                                    head.size()};
    if (auto err = source(hdr))
      return refuse("undecodable BASP header");
    auto op = static_cast<uint8_t>(hdr.operation);
    if (op > static_cast<uint8_t>(message_type::heartbeat))
      return refuse("unknown BASP operation " + std::to_string(op));
    if (hdr.operation == message_type::routed_message)
      return refuse("routed message (it names its own source node)");
    bool handshake = hdr.operation == message_type::server_handshake ||
                     hdr.operation == message_type::client_handshake;
    if (!node && !handshake)
      return refuse("a message before the handshake");
    if (hdr.payload_len > transport.opts.max_frame_bytes)
      return refuse("header announces a payload of " + std::to_string(hdr.payload_len) +
                    " bytes (limit " + std::to_string(transport.opts.max_frame_bytes) + ")");
    switch (hdr.operation) {
    case message_type::server_handshake:
    case message_type::client_handshake:
    case message_type::monitor_message:
    case message_type::down_message: {
      if (hdr.payload_len == 0 || hdr.payload_len > max_control_payload)
        return refuse("control message of " + std::to_string(hdr.payload_len) + " bytes");
      frame.assign(head.begin(), head.end());
      frame.resize(header_size + hdr.payload_len);
      asio::async_read(remote, asio::buffer(frame.data() + header_size, hdr.payload_len),
                       [self = this->shared_from_this(), handshake](error_code ec, std::size_t) {
                         if (ec)
                           return self->close("");
                         self->on_control(handshake);
                       });
      return;
    }
    case message_type::direct_message:
      if (hdr.source_actor == 0)
        return refuse("anonymous message");
      if (hdr.payload_len == 0)
        return refuse("empty message");
      remaining = hdr.payload_len;
      if (hdr.has(caf::io::basp::header::named_receiver_flag)) {
        // Addressed by name to CAF's own servers ("SpawnServ", "ConfigServ": remote spawning
        // and a key-value store any sender could fill). Raft never uses them; CAF asks a new
        // peer's SpawnServ for "info" and copes with no answer, so drop it and keep the link.
        discarding = true;
        return pump_payload();
      }
      discarding = false;
      if (hdr.payload_len <= chunk_size) {
        // The common case (votes, heartbeats, small appends): header and payload in one write,
        // so CAF wakes once per message.
        frame.assign(head.begin(), head.end());
        frame.resize(header_size + hdr.payload_len);
        asio::async_read(remote, asio::buffer(frame.data() + header_size, hdr.payload_len),
                         [self = this->shared_from_this()](error_code ec, std::size_t) {
                           if (ec)
                             return self->close("");
                           asio::async_write(self->local, asio::buffer(self->frame),
                                             [self](error_code e, std::size_t) {
                                               if (e)
                                                 return self->close("");
                                               self->read_header();
                                             });
                         });
        return;
      }
      asio::async_write(local, asio::buffer(head),
                        [self = this->shared_from_this()](error_code ec, std::size_t) {
                          if (ec)
                            return self->close("");
                          self->pump_payload();
                        });
      return;
    case message_type::heartbeat:
      if (hdr.payload_len != 0)
        return refuse("heartbeat with a payload");
      asio::async_write(local, asio::buffer(head),
                        [self = this->shared_from_this()](error_code ec, std::size_t) {
                          if (ec)
                            return self->close("");
                          self->read_header();
                        });
      return;
    default:
      return refuse("unexpected BASP operation");
    }
  }

  void pump_payload() {
    if (remaining == 0)
      return read_header();
    auto n = static_cast<std::size_t>(std::min<uint64_t>(remaining, down_buf.size()));
    remote.async_read_some(asio::buffer(down_buf.data(), n), [self = this->shared_from_this()](
                                                                 error_code ec, std::size_t got) {
      if (ec)
        return self->close("");
      self->remaining -= got;
      if (self->discarding)
        return self->pump_payload();
      asio::async_write(self->local, asio::buffer(self->down_buf.data(), got),
                        [self](error_code e, std::size_t) {
                          if (e)
                            return self->close("");
                          self->pump_payload();
                        });
    });
  }

  void on_control(bool handshake) {
    caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                    frame.data() + header_size, frame.size() - header_size};
    // Our nodes' ids are CAF's default kind (process id and host hash); refusing the other kind
    // (a URI) keeps its parser away from remote input.
    caf::atom_value kind = caf::atom("");
    caf::binary_deserializer peek{static_cast<caf::execution_unit*>(nullptr),
                                  frame.data() + header_size, frame.size() - header_size};
    if (auto err = peek(kind); err || kind != caf::atom("default"))
      return refuse("a node id that is not CAF's default kind");
    caf::node_id claimed;
    if (auto err = source(claimed); err || !claimed)
      return refuse("undecodable node id");
    if (claimed == transport.system.node())
      return refuse("it claims this node's own node id");
    if (handshake && !node) {
      if (!transport.bind(claimed, peer_id))
        return refuse("node " + caf::to_string(claimed) +
                      " already belongs to another member's connection");
      node = claimed;
      bound = true;
      deadline.cancel();
      if (counted_pending) {
        counted_pending = false;
        --transport.pending_handshakes;
      }
    } else if (claimed != *node) {
      return refuse("it names node " + caf::to_string(claimed) + " after handshaking as " +
                    caf::to_string(*node));
    }
    asio::async_write(local, asio::buffer(frame),
                      [self = this->shared_from_this()](error_code ec, std::size_t) {
                        if (ec)
                          return self->close("");
                        self->read_header();
                      });
  }

  // -- CAF -> peer: our own output, passed through

  void pump_up() {
    local.async_read_some(asio::buffer(up_buf),
                          [self = this->shared_from_this()](error_code ec, std::size_t n) {
                            if (ec)
                              return self->close("");
                            asio::async_write(self->remote, asio::buffer(self->up_buf.data(), n),
                                              [self](error_code e, std::size_t) {
                                                if (e)
                                                  return self->close("");
                                                self->pump_up();
                                              });
                          });
  }
};

/// A doorman CAF's BASP broker owns like its own: `publish` adds it, `unpublish` shuts it
/// down. Connections come from the transport's listener instead of accept(2).
class transport_doorman : public caf::io::doorman {
 public:
  transport_doorman(caf::io::network::multiplexer& mpx,
                    std::shared_ptr<raft_transport::impl> transport, std::shared_ptr<listener> l,
                    int handle_id, uint16_t port, std::string addr)
      : caf::io::doorman(caf::io::accept_handle::from_int(handle_id)), mpx_(mpx),
        transport_(std::move(transport)), listener_(std::move(l)), port_(port),
        addr_(std::move(addr)) {}

  void launch() override {
    caf::intrusive_ptr<transport_doorman> self{this};
    auto* mpx = &mpx_;
    auto deliver = [self, mpx](int fd) { mpx->post([self, fd] { self->hand_over(fd); }); };
    asio::post(transport_->ioc, [l = listener_, deliver] {
      if (!l->acceptor.is_open())
        return;
      l->deliver = deliver;
      l->accept();
    });
  }

  bool new_connection() override { return false; } // never polled: see hand_over

  uint16_t port() const override { return port_; }

  std::string addr() const override { return addr_; }

  void graceful_shutdown() override {
    asio::post(transport_->ioc, [l = listener_] { l->close(); });
    detach(&mpx_, false);
  }

  void add_to_loop() override {}

  void remove_from_loop() override {}

 private:
  /// On the multiplexer's thread, like doorman_impl::new_connection.
  void hand_over(int fd) {
    if (detached()) {
      ::close(fd);
      return;
    }
    auto scribe = mpx_.new_scribe(fd);
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    caf::io::doorman::new_connection(&mpx_, hdl);
  }

  caf::io::network::multiplexer& mpx_;
  std::shared_ptr<raft_transport::impl> transport_;
  std::shared_ptr<listener> listener_;
  uint16_t port_;
  std::string addr_;
};

} // namespace

void raft_transport::impl::close_all() {
  for (auto& l : listeners)
    if (auto p = l.lock())
      p->close();
  listeners.clear();
  auto links = live;
  for (auto& entry : links)
    if (auto p = entry.second.lock())
      p->close("transport stopped");
}

template <class Stream>
void raft_transport::impl::start_inbound(tcp::socket socket, std::shared_ptr<listener> from) {
  auto where = endpoint_text(socket);
  if (stopped.load())
    return; // the socket closes with it
  if (pending_handshakes >= opts.max_pending_handshakes) {
    report("refused a connection from " + where + ": " + std::to_string(pending_handshakes) +
           " handshakes pending");
    error_code ignored;
    socket.close(ignored);
    return;
  }
  error_code ignored;
  socket.set_option(tcp::no_delay{true}, ignored);
  std::shared_ptr<link<Stream>> l;
  if constexpr (link<Stream>::is_tls)
    l = std::make_shared<link<Stream>>(*this, Stream{std::move(socket), *tls}, true, where);
  else
    l = std::make_shared<link<Stream>>(*this, std::move(socket), true, where);
  l->register_live();
  l->counted_pending = true;
  ++pending_handshakes;
  l->arm_deadline();
  auto hand_to_caf = [l, from] {
    if (!from->deliver)
      return l->close("not published");
    int caf_fd = l->open_pair();
    if (caf_fd < 0)
      return l->close("socketpair failed");
    from->deliver(caf_fd);
    l->start_pumps();
  };
  if constexpr (link<Stream>::is_tls) {
    l->remote.async_handshake(ssl::stream_base::server, [l, hand_to_caf](error_code ec) {
      if (ec)
        return l->close("TLS handshake failed: " + ec.message());
      auto id = certificate_cn(l->remote.native_handle());
      if (!valid_member_id(id))
        return l->close("its certificate's CN '" + id + "' is not a member id");
      l->authenticated(id);
      hand_to_caf();
    });
  } else {
    hand_to_caf();
  }
}

void raft_transport::impl::start_outbound(
    tcp::socket socket, std::string expected_id, std::string where,
    std::shared_ptr<std::promise<caf::expected<int>>> result) {
  if (stopped.load()) {
    result->set_value(dial_failed(where, "transport stopped"));
    return;
  }
  auto finish = [](auto l) {
    int caf_fd = l->open_pair();
    if (caf_fd < 0)
      return l->close("socketpair failed");
    l->dial_result->set_value(caf_fd);
    l->dial_result = nullptr;
    l->start_pumps();
  };
  if (!tls) {
    auto l = std::make_shared<link<tcp::socket>>(*this, std::move(socket), false, where);
    l->register_live();
    l->dial_result = std::move(result);
    l->arm_deadline();
    finish(l);
    return;
  }
  auto l =
      std::make_shared<link<tls_stream>>(*this, tls_stream{std::move(socket), *tls}, false, where);
  l->register_live();
  l->dial_result = std::move(result);
  l->arm_deadline();
  l->remote.async_handshake(ssl::stream_base::client, [l, expected_id, finish](error_code ec) {
    if (ec)
      return l->close("TLS handshake failed: " + ec.message());
    auto id = certificate_cn(l->remote.native_handle());
    if (id != expected_id)
      return l->close("it presented a certificate for '" + id + "', expected '" + expected_id +
                      "'");
    l->authenticated(id);
    finish(l);
  });
}

raft_transport::raft_transport(caf::actor_system& system, raft_transport_options options)
    : impl_(std::make_shared<impl>(system, std::move(options))) {
  auto& o = impl_->opts;
  int given = !o.tls_cert.empty() + !o.tls_key.empty() + !o.tls_ca.empty();
  if (given != 0 && given != 3)
    throw std::runtime_error("--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together");
  if (given == 3)
    impl_->tls.emplace(make_context(o));
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->thread = std::thread{[t = impl_.get()] {
    // An exception out of a handler (bad_alloc, most likely) must not end the thread and with
    // it the process: the failed connection's handlers are gone, the others go on.
    for (;;) {
      try {
        t->ioc.run();
        return;
      } catch (const std::exception& e) {
        t->report(std::string{"error on the transport thread: "} + e.what());
      }
    }
  }};
}

raft_transport::~raft_transport() {
  stop();
}

bool raft_transport::authenticates() const {
  return impl_->tls.has_value();
}

void raft_transport::stop() {
  auto& t = *impl_;
  if (t.stopped.exchange(true))
    return;
  asio::post(t.ioc, [&t] { t.close_all(); });
  t.work.reset();
  if (t.thread.joinable())
    t.thread.join();
}

caf::expected<caf::io::doorman_ptr> raft_transport::listen(uint16_t port, const std::string& host,
                                                           bool reuse) {
  auto& t = *impl_;
  auto where = host + ":" + std::to_string(port);
  try {
    tcp::resolver resolver{t.ioc};
    auto results = resolver.resolve(host.empty() ? "0.0.0.0" : host, std::to_string(port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service);
    if (results.empty())
      return caf::make_error(caf::sec::cannot_open_port, "cannot resolve " + where);
    // "localhost" resolves to both families; peers try every address, IPv4 first is enough.
    auto endpoint = results.begin()->endpoint();
    for (const auto& entry : results)
      if (entry.endpoint().address().is_v4()) {
        endpoint = entry.endpoint();
        break;
      }
    tcp::acceptor acceptor{t.ioc};
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address{reuse});
    ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    auto bound = acceptor.local_endpoint();
    int handle_id = acceptor.native_handle();
    auto l = std::make_shared<listener>(t, std::move(acceptor));
    asio::post(t.ioc, [&t, l] { t.listeners.push_back(l); });
    auto& mpx = t.system.middleman().backend();
    caf::io::doorman_ptr result{
        new transport_doorman(mpx, impl_, l, handle_id, bound.port(), bound.address().to_string()),
        false};
    return result;
  } catch (const boost::system::system_error& e) {
    return caf::make_error(caf::sec::cannot_open_port,
                           "cannot listen on " + where + ": " + e.code().message());
  }
}

caf::expected<int> raft_transport::dial(const std::string& host, uint16_t port,
                                        const std::string& expected_id,
                                        std::chrono::milliseconds connect_timeout) {
  auto& t = *impl_;
  auto where = host + ":" + std::to_string(port);
  if (t.stopped.load())
    return dial_failed(where, "transport stopped");
  auto fd = connect_with_timeout(host, port, connect_timeout);
  if (!fd)
    return std::move(fd.error());
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
  error_code ec;
  tcp::socket socket{t.ioc};
  socket.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), *fd, ec);
  if (ec) {
    ::close(*fd);
    return dial_failed(where, ec.message());
  }
  socket.set_option(tcp::no_delay{true}, ec);
  auto result = std::make_shared<std::promise<caf::expected<int>>>();
  auto future = result->get_future();
  asio::post(t.ioc, [&t, s = std::move(socket), expected_id, where, result]() mutable {
    t.start_outbound(std::move(s), expected_id, where, result);
  });
  if (future.wait_for(t.opts.handshake_timeout + std::chrono::seconds(1)) !=
      std::future_status::ready)
    return dial_failed(where, "handshake timed out");
  return future.get();
}

std::optional<std::string> raft_transport::peer_identity(const caf::node_id& node) const {
  if (!impl_->tls)
    return std::nullopt;
  std::lock_guard<std::mutex> guard{impl_->bindings_mutex};
  auto i = impl_->bindings.find(node);
  if (i == impl_->bindings.end())
    return std::nullopt;
  return i->second.id;
}

} // namespace infinity
