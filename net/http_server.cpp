#include "net/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <caf/all.hpp>

#include "actors/http_session.hpp"

namespace infinity {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class connection;

/// What the acceptor and every connection share. Connections keep it (and the io_context) alive
/// through shared_ptrs, so a connection that outlives `stop` never touches freed memory.
struct server_core {
  server_core(caf::actor_system& sys, http_server_options opts)
      : system(sys), options(std::move(opts)), client_ids(options.client_id_seed) {
    // nop
  }

  caf::actor_system& system;
  const http_server_options options;

  std::mutex mutex;
  std::condition_variable all_gone;
  bool stopping = false;
  caf::actor raft;
  caf::actor kv;
  std::mt19937_64 client_ids;
  std::vector<std::weak_ptr<connection>> connections;
  std::size_t live_connections = 0;

  void log(const std::string& line) const {
    if (options.log)
      options.log(line);
  }

  void connection_gone() {
    std::lock_guard<std::mutex> guard{mutex};
    --live_connections;
    all_gone.notify_all();
  }
};

std::string endpoint_text(const tcp::endpoint& endpoint) {
  auto address = endpoint.address();
  auto host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

std::string_view to_std(beast::string_view text) {
  return {text.data(), text.size()};
}

/// One accepted socket. Runs on its own strand; every member is touched only there.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(std::shared_ptr<server_core> core, std::shared_ptr<asio::io_context> ioc,
             tcp::socket socket)
      : core_(std::move(core)), ioc_(std::move(ioc)), stream_(std::move(socket)) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? std::string{"?"} : endpoint_text(peer);
  }

  ~connection() { core_->connection_gone(); }

  asio::any_io_executor executor() { return stream_.get_executor(); }

  void start(caf::actor raft, caf::actor kv, uint64_t client_id) {
    const auto& opts = core_->options;
    http_session_config config;
    config.raft = std::move(raft);
    config.kv = std::move(kv);
    config.client_id = client_id;
    config.write_timeout = opts.write_request_timeout;
    config.read_timeout = opts.read_request_timeout;
    // The sink owns the connection until the session actor exits (see notes §5: with only a
    // weak reference the connection would die while the actor works on its request).
    auto self = shared_from_this();
    session_ =
        spawn_http_session(core_->system, std::move(config), [self](http::api_response response) {
          asio::post(self->executor(), [self, r = std::move(response)]() mutable {
            self->on_response(std::move(r));
          });
        });
    do_read();
  }

  /// Hard close: no more responses. Idempotent.
  void close() {
    if (closed_)
      return;
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    end_session();
  }

 private:
  struct request_meta {
    unsigned version;
    bool keep_alive;
    /// A HEAD response carries no body (405 is the only answer HEAD gets here).
    bool head;
    /// "METHOD target" for the debug log; empty when it is off.
    std::string summary;
  };

  void end_session() {
    if (session_) {
      caf::anon_send_exit(session_, caf::exit_reason::user_shutdown);
      session_ = nullptr;
    }
  }

  bool may_read() const {
    return !closed_ && !draining_ && !reading_ && !read_closed_ &&
           pending_.size() < core_->options.max_pipelined;
  }

  void do_read() {
    if (!may_read())
      return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.limits.max_body_bytes);
    reading_ = true;
    stream_.expires_after(core_->options.idle_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&connection::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    reading_ = false;
    if (ec)
      return on_read_error(ec);
    const auto& req = parser_->get();
    // curl and others hold the body back until told to send it; answer only when nothing else
    // is queued, because an interim response must not overtake earlier final ones.
    if (beast::iequals(req[bhttp::field::expect], "100-continue") && pending_.empty() &&
        write_queue_.empty() && !writing_) {
      continue_.emplace(bhttp::status::continue_, req.version());
      writing_ = true;
      stream_.expires_after(core_->options.write_timeout);
      bhttp::async_write(
          stream_, *continue_,
          beast::bind_front_handler(&connection::on_continue_written, shared_from_this()));
      return;
    }
    read_body();
  }

  void on_continue_written(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec)
      return close();
    read_body();
  }

  void read_body() {
    if (closed_)
      return;
    reading_ = true;
    stream_.expires_after(core_->options.idle_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&connection::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    reading_ = false;
    if (ec)
      return on_read_error(ec);
    auto req = parser_->release();
    parser_.reset();
    bool keep_alive = req.keep_alive();
    auto parsed = http::parse_request(to_std(req.method_string()), to_std(req.target()), req.body(),
                                      core_->options.limits);
    if (!keep_alive)
      read_closed_ = true;
    std::string summary;
    if (core_->options.debug_log) {
      constexpr std::size_t max_target = 200;
      auto target = to_std(req.target());
      summary = std::string{to_std(req.method_string())} + " " +
                std::string{target.substr(0, max_target)} +
                (target.size() > max_target ? "..." : "");
    }
    dispatch(std::move(parsed),
             request_meta{req.version(), keep_alive, req.method() == bhttp::verb::head,
                          std::move(summary)});
    do_read();
  }

  void on_read_error(beast::error_code ec) {
    if (closed_)
      return;
    if (ec == bhttp::error::end_of_stream) {
      // The client is done sending; it still gets the answers to what it sent.
      read_closed_ = true;
      return maybe_finish();
    }
    // After a framing error the rest of the stream cannot be parsed, so answer and close.
    std::optional<http::api_error> error;
    if (ec == bhttp::error::body_limit)
      error = http::api_error{413,
                              "body is larger than " +
                                  std::to_string(core_->options.limits.max_body_bytes) + " bytes",
                              {}};
    else if (ec == bhttp::error::header_limit)
      error = http::api_error{431,
                              "request line and headers are larger than " +
                                  std::to_string(core_->options.max_header_bytes) + " bytes",
                              {}};
    else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
             ec != bhttp::error::partial_message)
      error = http::api_error{400, "malformed HTTP request: " + ec.message(), {}};
    if (!error)
      return close(); // timeout, reset, or the client vanished mid-request
    read_closed_ = true;
    dispatch(std::move(*error), request_meta{11, false, false, "(unparsable request)"});
  }

  void dispatch(http::parsed_request request, request_meta meta) {
    pending_.push_back(std::move(meta));
    submit_http_request(session_, std::move(request));
  }

  void on_response(http::api_response response) {
    if (closed_ || draining_ || pending_.empty())
      return;
    auto meta = std::move(pending_.front());
    pending_.pop_front();
    if (core_->options.debug_log)
      core_->options.debug_log("http: " + remote_ + " " + meta.summary + " -> " +
                               std::to_string(response.status));
    if (meta.head)
      response.body.clear();
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), meta.version);
    res->set(bhttp::field::server, "infinitystore/" INFINITYSTORE_VERSION);
    res->set(bhttp::field::content_type, "application/json");
    for (const auto& [name, value] : response.headers)
      res->set(name, value);
    res->body() = std::move(response.body);
    bool stopping;
    {
      std::lock_guard<std::mutex> guard{core_->mutex};
      stopping = core_->stopping;
    }
    res->keep_alive(meta.keep_alive && !stopping);
    res->prepare_payload();
    write_queue_.push_back(std::move(res));
    if (!writing_)
      do_write();
  }

  void do_write() {
    writing_ = true;
    stream_.expires_after(core_->options.write_timeout);
    bhttp::async_write(stream_, *write_queue_.front(),
                       beast::bind_front_handler(&connection::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec || closed_)
      return close();
    bool last = write_queue_.front()->need_eof();
    write_queue_.pop_front();
    if (last)
      return graceful_close();
    if (!write_queue_.empty())
      return do_write();
    maybe_finish();
    do_read(); // reading may have paused at max_pipelined
  }

  void maybe_finish() {
    if (read_closed_ && pending_.empty() && write_queue_.empty() && !writing_)
      graceful_close();
  }

  /// Half-closes and drains what the client still sends (e.g. the rest of an oversized body)
  /// before closing: closing with unread input makes the kernel send a reset, which can destroy
  /// the response we just wrote before the client reads it.
  void graceful_close() {
    if (closed_ || draining_)
      return;
    end_session();
    if (reading_)
      return close();
    draining_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(
        std::min(core_->options.write_timeout, std::chrono::milliseconds(std::chrono::seconds(2))));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            beast::bind_front_handler(&connection::on_drain, shared_from_this()));
  }

  void on_drain(beast::error_code ec, std::size_t bytes) {
    drained_ += bytes;
    if (ec || closed_ || drained_ > 4 * core_->options.limits.max_body_bytes)
      return close();
    drain();
  }

  std::shared_ptr<server_core> core_;
  std::string remote_;
  /// Declared before the stream so it is destroyed after it.
  std::shared_ptr<asio::io_context> ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  caf::actor session_;
  /// One entry per request handed to the session and not yet answered, oldest first.
  std::deque<request_meta> pending_;
  std::deque<std::shared_ptr<bhttp::response<bhttp::string_body>>> write_queue_;
  std::array<char, 8192> drain_buffer_;
  std::size_t drained_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  /// No further requests will be read (client EOF, `Connection: close`, framing error).
  bool read_closed_ = false;
  bool draining_ = false;
  bool closed_ = false;
};

tcp::endpoint resolve_listen_address(asio::io_context& ioc, const std::string& address) {
  auto parsed = http::parse_host_port(address, {true, true});
  if (!parsed)
    throw std::runtime_error("invalid HTTP address '" + address +
                             "': expected HOST:PORT, [IPV6]:PORT or :PORT");
  if (parsed->host.empty())
    return {tcp::v4(), parsed->port};
  beast::error_code ec;
  auto ip = asio::ip::make_address(parsed->host, ec);
  if (!ec)
    return {ip, parsed->port};
  tcp::resolver resolver{ioc};
  auto results =
      resolver.resolve(parsed->host, std::to_string(parsed->port), tcp::resolver::passive, ec);
  if (ec || results.empty())
    throw std::runtime_error("cannot resolve HTTP address '" + address +
                             "': " + (ec ? ec.message() : std::string{"no addresses"}));
  // Prefer IPv4: "localhost" then means the same thing as in the Raft addresses.
  for (const auto& entry : results)
    if (entry.endpoint().address().is_v4())
      return entry.endpoint();
  return results.begin()->endpoint();
}

} // namespace

struct http_server::impl {
  impl(caf::actor_system& system, http_server_options options)
      : core(std::make_shared<server_core>(system, std::move(options))),
        ioc(std::make_shared<asio::io_context>()), acceptor_strand(asio::make_strand(*ioc)),
        acceptor(acceptor_strand), retry_timer(acceptor_strand) {
    const auto& address = core->options.address;
    auto endpoint = resolve_listen_address(*ioc, address);
    beast::error_code ec;
    auto fail = [&](const char* what) {
      throw std::runtime_error("cannot listen on HTTP address '" + address + "' (" +
                               endpoint_text(endpoint) + "): " + what + ": " + ec.message());
    };
    acceptor.open(endpoint.protocol(), ec);
    if (ec)
      fail("open");
    // Lets a restarted node bind while connections of its previous run sit in TIME-WAIT; a
    // live listener on the port still makes bind fail.
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec)
      fail("setsockopt");
    acceptor.bind(endpoint, ec);
    if (ec)
      fail("bind");
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      fail("listen");
    bound = acceptor.local_endpoint(ec);
    if (ec)
      fail("getsockname");
  }

  void accept() {
    acceptor.async_accept(
        asio::make_strand(*ioc),
        [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;
    if (ec) {
      // Typically EMFILE: back off instead of spinning, and keep serving existing connections.
      core->log("http: accept failed: " + ec.message());
      retry_timer.expires_after(std::chrono::milliseconds(100));
      retry_timer.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec)
          accept();
      });
      return;
    }
    std::shared_ptr<connection> conn;
    caf::actor raft;
    caf::actor kv;
    uint64_t client_id = 0;
    {
      std::lock_guard<std::mutex> guard{core->mutex};
      if (core->stopping)
        return; // `socket` closes as it goes out of scope
      conn = std::make_shared<connection>(core, ioc, std::move(socket));
      ++core->live_connections;
      auto& list = core->connections;
      list.erase(
          std::remove_if(list.begin(), list.end(), [](const auto& weak) { return weak.expired(); }),
          list.end());
      list.push_back(conn);
      raft = core->raft;
      kv = core->kv;
      do
        client_id = core->client_ids();
      while (client_id == 0);
    }
    asio::dispatch(conn->executor(),
                   [conn, raft, kv, client_id] { conn->start(raft, kv, client_id); });
    accept();
  }

  std::shared_ptr<server_core> core;
  std::shared_ptr<asio::io_context> ioc;
  asio::strand<asio::io_context::executor_type> acceptor_strand;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  tcp::endpoint bound;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;
};

http_server::http_server(caf::actor_system& system, http_server_options options)
    : impl_(std::make_unique<impl>(system, std::move(options))) {
  // nop
}

http_server::~http_server() {
  stop();
}

uint16_t http_server::port() const {
  return impl_->bound.port();
}

std::string http_server::local_address() const {
  return endpoint_text(impl_->bound);
}

void http_server::start(caf::actor raft, caf::actor kv) {
  auto& d = *impl_;
  if (d.started || d.stopped)
    return;
  d.started = true;
  {
    std::lock_guard<std::mutex> guard{d.core->mutex};
    d.core->raft = std::move(raft);
    d.core->kv = std::move(kv);
  }
  d.work.emplace(d.ioc->get_executor());
  asio::post(d.acceptor_strand, [&d] { d.accept(); });
  auto count = std::max(1u, d.core->options.io_threads);
  for (unsigned i = 0; i < count; ++i)
    d.threads.emplace_back([ioc = d.ioc, core = d.core] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {
          core->log(std::string{"http: unexpected exception on an I/O thread: "} + e.what());
        }
      }
    });
  d.core->log("http: listening on " + local_address());
}

void http_server::stop() {
  auto& d = *impl_;
  if (d.stopped)
    return;
  d.stopped = true;
  std::vector<std::shared_ptr<connection>> open;
  {
    std::lock_guard<std::mutex> guard{d.core->mutex};
    d.core->stopping = true;
    for (auto& weak : d.core->connections)
      if (auto conn = weak.lock())
        open.push_back(std::move(conn));
    d.core->connections.clear();
  }
  if (!d.started) {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    return;
  }
  asio::post(d.acceptor_strand, [&d] {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    d.retry_timer.cancel();
  });
  for (auto& conn : open)
    asio::post(conn->executor(), [conn] { conn->close(); });
  open.clear();
  bool all_closed;
  {
    // Each connection goes away once its session actor has exited and its handlers have run.
    std::unique_lock<std::mutex> lock{d.core->mutex};
    all_closed = d.core->all_gone.wait_for(lock, std::chrono::seconds(3),
                                           [&] { return d.core->live_connections == 0; });
    d.core->raft = nullptr;
    d.core->kv = nullptr;
  }
  if (!all_closed)
    d.core->log("http: stopped with connections still winding down");
  d.work.reset();
  d.ioc->stop();
  for (auto& thread : d.threads)
    thread.join();
  d.threads.clear();
  d.core->log("http: stopped");
}

} // namespace infinity
