#include "net/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <caf/all.hpp>

#include "actors/http_session.hpp"

namespace infinity {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// What a connection may close on its strand when the server stops.
class closable {
 public:
  virtual ~closable() = default;
  /// Closes the connection on its own strand; callable from any thread.
  virtual void post_close() = 0;
};

/// Whether a connection serves requests or only answers 503 (it is over the connection limit).
enum class connection_role { serve, reject };

/// What the acceptor and every connection share. Connections keep it (and the io_context) alive
/// through shared_ptrs, so a connection that outlives `stop` never touches freed memory.
struct server_core {
  server_core(caf::actor_system& sys, http_server_options opts)
      : system(sys), options(std::move(opts)), client_ids(options.client_id_seed) {
    // nop
  }

  caf::actor_system& system;
  const http_server_options options;
  /// Set once before the first accept when the port speaks HTTPS.
  std::optional<ssl::context> tls;
  /// `options.max_connections` clamped to the descriptor limit, and how many connections over
  /// it may be answered 503 at once (the rest are closed without an answer).
  std::size_t connection_limit = 0;
  std::size_t reject_limit = 0;

  std::mutex mutex;
  std::condition_variable all_gone;
  bool stopping = false;
  caf::actor raft;
  std::shared_ptr<const local_read_view> view;
  std::mt19937_64 client_ids;
  std::vector<std::weak_ptr<closable>> connections;
  /// Connection objects alive (stop waits for 0), and open sockets per role (the limits).
  std::size_t live_connections = 0;
  std::size_t serving = 0;
  std::size_t rejecting = 0;
  /// Rate limit for the "connection limit reached" and accept error warnings.
  clock_type::time_point last_limit_warning;
  std::size_t refused_since_warning = 0;

  void log(const std::string& line) const noexcept {
    try {
      if (options.log)
        options.log(line);
    } catch (...) {
      // Logging must never be why a connection leaks.
    }
  }

  void connection_gone() noexcept {
    std::lock_guard<std::mutex> guard{mutex};
    --live_connections;
    all_gone.notify_all();
  }

  void release_slot(connection_role role) noexcept {
    std::lock_guard<std::mutex> guard{mutex};
    --(role == connection_role::serve ? serving : rejecting);
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

/// The end of a peer's input: TCP EOF, a TLS close_notify, or a TLS peer that closed TCP without
/// one (truncation is harmless here: HTTP framing tells whether a request is complete).
bool is_eof(const beast::error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated;
}

/// One accepted socket, plain or TLS (one implementation: the differences are the handshake and
/// the shutdown, under `if constexpr`). Runs on its own strand; every member is touched only
/// there.
///
/// Reading drives Beast's parser by hand (`put`) instead of `http::async_read`, so that every
/// parser call sits in a try block (Beast throws std::length_error for a trailer field over
/// 64 KiB, which would otherwise unwind through Asio and strand the connection, its socket and
/// its session actor), the unparsed input has a hard bound (trailers and chunk headers are not
/// limited by Beast), and each phase has its own deadline.
template <class Stream>
class connection final : public closable, public std::enable_shared_from_this<connection<Stream>> {
 public:
  static constexpr bool tls = std::is_same_v<Stream, tls_stream>;

  connection(std::shared_ptr<server_core> core, std::shared_ptr<asio::io_context> ioc,
             tcp::socket socket, connection_role role)
      : core_(std::move(core)), ioc_(std::move(ioc)), stream_(make_stream(std::move(socket))),
        buffer_(core_->options.max_header_bytes + read_chunk), role_(role),
        response_estimate_(core_->options.limits.max_value_bytes +
                           core_->options.limits.max_key_bytes + response_overhead) {
    beast::error_code ec;
    auto peer = lowest().socket().remote_endpoint(ec);
    remote_ = ec ? std::string{"?"} : endpoint_text(peer);
    if (auto& counters = core_->options.metrics) {
      counters->connections_accepted.fetch_add(1, std::memory_order_relaxed);
      counters->open_connections.fetch_add(1, std::memory_order_relaxed);
    }
  }

  ~connection() override {
    release_slot();
    core_->connection_gone();
  }

  asio::any_io_executor executor() { return lowest().get_executor(); }

  void post_close() override {
    asio::post(executor(), [self = this->shared_from_this()] { self->close(); });
  }

  void start(caf::actor raft, std::shared_ptr<const local_read_view> view, uint64_t client_id) {
    guarded([&] {
      raft_ = std::move(raft);
      view_ = std::move(view);
      client_id_ = client_id;
      // The first request's headers (and the TLS handshake before them) must arrive in time.
      deadline_ = clock_type::now() + core_->options.header_timeout;
      lowest().expires_at(*deadline_);
      if constexpr (tls) {
        reading_ = true;
        beast::async_detect_ssl(lowest(), buffer_, handler(&connection::on_detect));
      } else {
        begin();
      }
    });
  }

  /// Hard close: no more responses. Idempotent.
  void close() noexcept {
    if (closed_)
      return;
    closed_ = true;
    release_slot();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
    end_session();
    if (!writing_) {
      // Free the queued responses now: the session's sink may keep this object a while longer.
      write_queue_.clear();
      queued_bytes_ = 0;
    }
  }

 private:
  /// Bytes read from the socket at most at once.
  static constexpr std::size_t read_chunk = 64 * 1024;
  /// Status line, headers and JSON framing around a response body, roughly.
  static constexpr std::size_t response_overhead = 512;

  struct request_meta {
    unsigned version;
    bool keep_alive;
    /// A HEAD response carries no body (405 is the only answer HEAD gets here).
    bool head;
    /// "METHOD target" for the debug log; empty when it is off.
    std::string summary;
    /// For a 401: the WWW-Authenticate header.
    std::string www_authenticate;
    /// For the request metrics: the route, and when the request was complete.
    metrics::route route = metrics::route::other;
    clock_type::time_point start = clock_type::now();
  };

  struct queued_response {
    std::shared_ptr<bhttp::response<bhttp::string_body>> message;
    std::size_t bytes;
  };

  Stream make_stream(tcp::socket socket) {
    if constexpr (tls)
      return Stream{std::move(socket), *core_->tls};
    else
      return Stream{std::move(socket)};
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  /// Runs `f`; an exception closes the connection instead of unwinding into Asio.
  template <class F>
  void guarded(F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      core_->log("http: " + remote_ + ": closing the connection after an error: " + e.what());
      close();
    } catch (...) {
      core_->log("http: " + remote_ + ": closing the connection after an unknown error");
      close();
    }
  }

  /// A completion handler for `member` that keeps the connection alive until it ran and guards
  /// it (see `guarded`).
  template <class... Args>
  auto handler(void (connection::*member)(Args...)) {
    return [self = this->shared_from_this(), member](Args... args) {
      self->guarded([&] { ((*self).*member)(std::move(args)...); });
    };
  }

  void release_slot() noexcept {
    if (slot_released_)
      return;
    slot_released_ = true;
    core_->release_slot(role_);
    if (auto& counters = core_->options.metrics)
      counters->open_connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void end_session() noexcept {
    if (!session_)
      return;
    try {
      caf::anon_send_exit(session_, caf::exit_reason::user_shutdown);
    } catch (...) {
      // Nothing else to do: the actor system is going away.
    }
    session_ = nullptr;
  }

  // -- TLS ----------------------------------------------------------------------------------

  void on_detect(beast::error_code ec, bool is_tls) {
    reading_ = false;
    if (ec)
      return close(); // the header deadline passed, or the client left
    if (!is_tls)
      return refuse_plaintext();
    reading_ = true;
    if constexpr (tls)
      stream_.async_handshake(ssl::stream_base::server, buffer_.data(),
                              handler(&connection::on_handshake));
  }

  void on_handshake(beast::error_code ec, std::size_t used) {
    reading_ = false;
    if (ec)
      return close();
    buffer_.consume(used);
    secured_ = true;
    begin();
  }

  /// Plain HTTP on the HTTPS port: one fixed answer in clear text, then close.
  void refuse_plaintext() {
    auto response = http::plaintext_on_tls_port_response();
    auto message = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), 11);
    message->set(bhttp::field::content_type, "application/json");
    message->body() = std::move(response.body);
    message->keep_alive(false);
    message->prepare_payload();
    plaintext_refusal_ = message;
    writing_ = true;
    lowest().expires_after(core_->options.write_timeout);
    bhttp::async_write(lowest(), *message, handler(&connection::on_refusal_written));
  }

  void on_refusal_written(beast::error_code ec, std::size_t) {
    writing_ = false;
    plaintext_refusal_.reset();
    if (ec)
      return close();
    graceful_close();
  }

  // -- reading ------------------------------------------------------------------------------

  /// After the handshake: serve, or answer 503 to a connection over the limit.
  void begin() {
    if (role_ == connection_role::reject) {
      read_closed_ = true;
      pending_.push_back(request_meta{11, false, false, "(over the connection limit)", {}});
      return on_response(http::too_many_connections_response(core_->connection_limit));
    }
    const auto& opts = core_->options;
    http_session_config config;
    config.raft = caf::actor_cast<raft_node_actor>(std::move(raft_));
    config.view = view_;
    config.client_id = client_id_;
    config.write_timeout = opts.write_request_timeout;
    config.read_timeout = opts.read_request_timeout;
    config.readiness = opts.readiness;
    config.storage_check = opts.storage_check;
    config.metrics = opts.metrics;
    // The sink owns the connection until the session actor exits (see notes §5: with only a
    // weak reference the connection would die while the actor works on its request).
    auto self = this->shared_from_this();
    session_ =
        spawn_http_session(core_->system, std::move(config), [self](http::api_response response) {
          asio::post(self->executor(), [self, r = std::move(response)]() mutable {
            self->guarded([&] { self->on_response(std::move(r)); });
          });
        });
    do_read();
  }

  /// Responses waiting to be written, plus those still being prepared at the largest size seen.
  std::size_t committed_bytes() const {
    return queued_bytes_ + pending_.size() * response_estimate_;
  }

  bool may_read() const {
    if (closed_ || draining_ || reading_ || read_closed_ || !session_)
      return false;
    auto outstanding = pending_.size() + write_queue_.size();
    if (outstanding == 0)
      return true; // one request at a time always works, whatever the limits
    return outstanding < core_->options.max_pipelined &&
           committed_bytes() < core_->options.max_queued_response_bytes;
  }

  void do_read() {
    if (!may_read())
      return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.limits.max_body_bytes);
    reading_ = true;
    in_body_ = false;
    if (requests_read_ > 0) {
      // Between requests only the idle timeout runs; the next request's first byte starts the
      // header deadline (on_read_some).
      deadline_.reset();
      if (buffer_.size() > 0) // a pipelined request has begun already
        deadline_ = clock_type::now() + core_->options.header_timeout;
      else if (buffer_.capacity() > 4096)
        buffer_.shrink_to_fit(); // idle connections keep little memory
    }
    parse_buffered();
  }

  void read_some() {
    if (deadline_)
      lowest().expires_at(*deadline_);
    else
      lowest().expires_after(core_->options.idle_timeout);
    auto size = beast::read_size(buffer_, read_chunk);
    if (size == 0)
      return reject_request(431, "unparsed input is larger than " +
                                     std::to_string(buffer_.max_size()) + " bytes");
    stream_.async_read_some(buffer_.prepare(size), handler(&connection::on_read_some));
  }

  void on_read_some(beast::error_code ec, std::size_t bytes) {
    buffer_.commit(bytes);
    if (closed_)
      return;
    if (ec) {
      reading_ = false;
      if (is_eof(ec) && !parser_->got_some() && buffer_.size() == 0) {
        // The client is done sending; it still gets the answers to what it sent.
        read_closed_ = true;
        return maybe_finish();
      }
      return close(); // timeout, reset, or the client vanished mid-request
    }
    if (!deadline_ && bytes > 0)
      deadline_ = clock_type::now() + core_->options.header_timeout;
    parse_buffered();
  }

  /// Feeds buffered input to the parser until the current phase (headers, then body) is done;
  /// reads more when it needs more.
  void parse_buffered() {
    for (;;) {
      if (in_body_ && parser_->is_done())
        return on_request();
      if (!in_body_ && parser_->is_header_done())
        return on_header();
      if (buffer_.size() == 0)
        return read_some();
      beast::error_code ec;
      std::size_t used = 0;
      try {
        used = parser_->put(buffer_.data(), ec);
      } catch (const std::length_error&) {
        return reject_request(431, "a header or trailer field is larger than 64 KiB");
      } catch (const std::exception& e) {
        return reject_request(400, std::string{"malformed HTTP request: "} + e.what());
      }
      buffer_.consume(used);
      if (ec == bhttp::error::need_more || (!ec && used == 0 && !parser_->is_done())) {
        // Beast bounds the headers, not a chunk header line or the trailer: without this an
        // endless trailer would grow the buffer until read_size gives up.
        if (parser_->is_header_done() && buffer_.size() >= core_->options.max_header_bytes)
          return reject_request(431, "a chunk header or the trailer is larger than " +
                                         std::to_string(core_->options.max_header_bytes) +
                                         " bytes");
        return read_some();
      }
      if (ec)
        return on_parse_error(ec);
    }
  }

  void on_parse_error(beast::error_code ec) {
    if (ec == bhttp::error::body_limit)
      return reject_request(413, "body is larger than " +
                                     std::to_string(core_->options.limits.max_body_bytes) +
                                     " bytes");
    if (ec == bhttp::error::header_limit)
      return reject_request(431, "request line and headers are larger than " +
                                     std::to_string(core_->options.max_header_bytes) + " bytes");
    reject_request(400, "malformed HTTP request: " + ec.message());
  }

  /// After a framing error the rest of the stream cannot be parsed: answer, then close.
  void reject_request(unsigned status, std::string message) {
    reading_ = false;
    read_closed_ = true;
    parser_.reset();
    dispatch(http::api_error{status, std::move(message), {}},
             request_meta{11, false, false, "(unparsable request)", {}});
  }

  void on_header() {
    in_body_ = true;
    const auto& req = parser_->get();
    std::optional<std::string_view> authorization;
    if (auto it = req.find(bhttp::field::authorization); it != req.end())
      authorization = to_std(it->value());
    // Checked before the body is read: a client without a valid token must not make us buffer
    // it. The body stays unread, so the connection closes after the answer.
    if (auto denied =
            http::check_access(to_std(req.target()), authorization, core_->options.tokens)) {
      reading_ = false;
      read_closed_ = true;
      auto meta = make_meta(req, false);
      meta.www_authenticate = std::move(denied->www_authenticate);
      parser_.reset();
      return dispatch(std::move(denied->error), std::move(meta));
    }
    deadline_ = clock_type::now() + core_->options.body_timeout;
    parser_->eager(true);
    // curl and others hold the body back until told to send it; answer only when nothing else
    // is queued, because an interim response must not overtake earlier final ones.
    if (!parser_->is_done() && beast::iequals(req[bhttp::field::expect], "100-continue") &&
        pending_.empty() && write_queue_.empty() && !writing_) {
      continue_.emplace(bhttp::status::continue_, req.version());
      writing_ = true;
      lowest().expires_after(core_->options.write_timeout);
      bhttp::async_write(stream_, *continue_, handler(&connection::on_continue_written));
      return;
    }
    parse_buffered();
  }

  void on_continue_written(beast::error_code ec, std::size_t) {
    writing_ = false;
    continue_.reset();
    if (ec)
      return close();
    if (!write_queue_.empty())
      do_write();
    parse_buffered();
  }

  request_meta make_meta(const bhttp::request<bhttp::string_body>& req, bool keep_alive) const {
    std::string summary;
    if (core_->options.debug_log) {
      constexpr std::size_t max_target = 200;
      auto target = to_std(req.target());
      summary = std::string{to_std(req.method_string())} + " " +
                std::string{target.substr(0, max_target)} +
                (target.size() > max_target ? "..." : "");
    }
    auto target = http::origin_form(to_std(req.target()));
    return request_meta{
        req.version(),      keep_alive, req.method() == bhttp::verb::head,
        std::move(summary), {},         metrics::route_of(target.substr(0, target.find('?'))),
        clock_type::now()};
  }

  void on_request() {
    reading_ = false;
    ++requests_read_;
    deadline_.reset();
    auto req = parser_->release();
    parser_.reset();
    bool keep_alive = req.keep_alive();
    if (!keep_alive)
      read_closed_ = true;
    auto parsed = http::parse_request(to_std(req.method_string()), to_std(req.target()), req.body(),
                                      core_->options.limits);
    dispatch(std::move(parsed), make_meta(req, keep_alive));
    do_read();
  }

  void dispatch(http::parsed_request request, request_meta meta) {
    pending_.push_back(std::move(meta));
    if (pending_.size() == 1 && view_ && answers_alone(request)) {
      // Nothing ahead of it is unanswered, so answering here keeps the response order.
      const auto& get = std::get<http::get_request>(std::get<http::api_request>(request).body);
      return on_response(stale_read_response(*view_, get.key));
    }
    submit_http_request(session_, std::move(request));
  }

  // -- writing ------------------------------------------------------------------------------

  void on_response(http::api_response response) {
    if (closed_ || draining_ || pending_.empty())
      return;
    auto meta = std::move(pending_.front());
    pending_.pop_front();
    if (auto& counters = core_->options.metrics)
      counters->record_request(
          meta.route, response.status,
          static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - meta.start)
                  .count()));
    if (core_->options.debug_log)
      core_->options.debug_log("http: " + remote_ + " " + meta.summary + " -> " +
                               std::to_string(response.status));
    if (meta.head)
      response.body.clear();
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), meta.version);
    res->set(bhttp::field::server, "infinitystore/" INFINITYSTORE_VERSION);
    res->set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) {
      // The session builds redirects as http://; a TLS node assumes its peers speak HTTPS too.
      if (tls && name == "Location" && value.rfind("http://", 0) == 0)
        value.insert(4, "s");
      res->set(name, value);
    }
    if (!meta.www_authenticate.empty())
      res->set(bhttp::field::www_authenticate, meta.www_authenticate);
    res->body() = std::move(response.body);
    // boost::json grows its output by doubling, so a 512 KiB value can sit in a 1 MiB string;
    // queued responses are what a slow reader makes us hold, so they keep only their bytes.
    if (res->body().capacity() - res->body().size() > 64 * 1024)
      res->body().shrink_to_fit();
    bool stopping;
    {
      std::lock_guard<std::mutex> guard{core_->mutex};
      stopping = core_->stopping;
    }
    res->keep_alive(meta.keep_alive && !stopping);
    res->prepare_payload();
    auto bytes = res->body().capacity() + response_overhead;
    response_estimate_ = std::max(response_estimate_, bytes);
    queued_bytes_ += bytes;
    write_queue_.push_back(queued_response{std::move(res), bytes});
    if (!writing_)
      do_write();
    do_read(); // the slot this response held at the estimate may let reading resume
  }

  void do_write() {
    writing_ = true;
    lowest().expires_after(core_->options.write_timeout);
    bhttp::async_write(stream_, *write_queue_.front().message, handler(&connection::on_write));
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec || closed_)
      return close();
    auto& front = write_queue_.front();
    bool last = front.message->need_eof();
    queued_bytes_ -= front.bytes;
    write_queue_.pop_front();
    if (last)
      return graceful_close();
    if (!write_queue_.empty())
      do_write();
    maybe_finish();
    do_read(); // reading may have paused at max_pipelined or max_queued_response_bytes
  }

  void maybe_finish() {
    if (read_closed_ && pending_.empty() && write_queue_.empty() && !writing_)
      graceful_close();
  }

  /// Half-closes and drains what the client still sends (e.g. the rest of an oversized body)
  /// before closing: closing with unread input makes the kernel send a reset, which can destroy
  /// the response we just wrote before the client reads it. Over TLS, sends close_notify and
  /// waits (as briefly) for the client's.
  void graceful_close() {
    if (closed_ || draining_)
      return;
    end_session();
    if (reading_ || writing_)
      return close();
    draining_ = true;
    lowest().expires_after(
        std::min(core_->options.write_timeout, std::chrono::milliseconds(std::chrono::seconds(2))));
    if constexpr (tls) {
      if (secured_) {
        stream_.async_shutdown(handler(&connection::on_tls_shutdown));
        return;
      }
    }
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    drain();
  }

  void on_tls_shutdown(beast::error_code) { close(); }

  void drain() {
    buffer_.clear();
    lowest().async_read_some(buffer_.prepare(4096), handler(&connection::on_drain));
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
  Stream stream_;
  /// Unparsed input; its limit bounds what one connection can make us hold before parsing.
  beast::flat_buffer buffer_;
  const connection_role role_;
  bool slot_released_ = false;
  /// Handed to the session actor when it is spawned (after the TLS handshake).
  caf::actor raft_;
  std::shared_ptr<const local_read_view> view_;
  uint64_t client_id_ = 0;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  /// When the current read phase must be done; unset while idle between requests.
  std::optional<clock_type::time_point> deadline_;
  /// The current request's headers are done (and checked); the body is being read.
  bool in_body_ = false;
  std::size_t requests_read_ = 0;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::shared_ptr<bhttp::response<bhttp::string_body>> plaintext_refusal_;
  caf::actor session_;
  /// One entry per request handed to the session and not yet answered, oldest first.
  std::deque<request_meta> pending_;
  std::deque<queued_response> write_queue_;
  std::size_t queued_bytes_ = 0;
  /// The largest response seen on this connection (at first, one with a maximal value):
  /// what each unanswered request is assumed to add to the queue.
  std::size_t response_estimate_;
  std::size_t drained_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  /// The TLS handshake is done (so a graceful close sends close_notify).
  bool secured_ = false;
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

/// Descriptors kept free for the rest of the node: storage files, Raft peer sockets, CAF's
/// multiplexer and pipes, the listening socket, stdio.
constexpr std::size_t descriptor_reserve = 64;

/// `wanted`, clamped so that it, `reject_slots` and the reserve fit in the process's
/// descriptor limit; at least 1.
std::size_t clamp_to_descriptor_limit(std::size_t wanted, std::size_t reject_slots) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return wanted;
  auto available = static_cast<std::size_t>(limit.rlim_cur);
  auto needed = descriptor_reserve + reject_slots;
  auto room = available > needed ? available - needed : std::size_t{1};
  return std::max<std::size_t>(1, std::min(wanted, room));
}

ssl::context make_tls_context(const std::string& cert_file, const std::string& key_file) {
  ssl::context ctx{ssl::context::tls_server};
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  // Idle TLS connections then hold no read/write buffers (about 34 KiB each otherwise).
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  beast::error_code ec;
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec)
    throw http_tls_error("cannot use --http-tls-cert '" + cert_file + "': " + ec.message());
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec)
    throw http_tls_error("cannot use --http-tls-key '" + key_file + "': " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw http_tls_error("--http-tls-key '" + key_file +
                         "' does not match the certificate in --http-tls-cert '" + cert_file + "'");
  return ctx;
}

} // namespace

struct http_server::impl {
  impl(caf::actor_system& system, http_server_options options)
      : core(std::make_shared<server_core>(system, std::move(options))),
        ioc(std::make_shared<asio::io_context>()), acceptor_strand(asio::make_strand(*ioc)),
        acceptor(acceptor_strand), retry_timer(acceptor_strand) {
    const auto& opts = core->options;
    if (opts.tls_cert_file.empty() != opts.tls_key_file.empty())
      throw http_tls_error("--http-tls-cert and --http-tls-key go together");
    if (!opts.tls_cert_file.empty())
      core->tls.emplace(make_tls_context(opts.tls_cert_file, opts.tls_key_file));
    core->reject_limit = std::clamp<std::size_t>(opts.max_connections / 16, 8, 64);
    core->connection_limit = clamp_to_descriptor_limit(opts.max_connections, core->reject_limit);
    if (core->connection_limit < opts.max_connections)
      core->log("http: serving at most " + std::to_string(core->connection_limit) +
                " connections, not " + std::to_string(opts.max_connections) +
                ": the descriptor limit (ulimit -n) leaves no room for more");

    const auto& address = opts.address;
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

  /// Runs on the acceptor strand. Never gives up: any failure retries after a pause.
  void accept() {
    try {
      acceptor.async_accept(
          asio::make_strand(*ioc),
          [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
    } catch (const std::exception& e) {
      retry_later(std::string{"http: cannot accept: "} + e.what());
    }
  }

  void retry_later(const std::string& why) {
    warn_rate_limited(why);
    try {
      retry_timer.expires_after(std::chrono::milliseconds(100));
      retry_timer.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec)
          accept();
      });
    } catch (const std::exception& e) {
      core->log(std::string{"http: the acceptor cannot schedule a retry: "} + e.what());
    }
  }

  /// At most one line per 10 s, so an attack cannot flood the log.
  void warn_rate_limited(const std::string& line) {
    std::size_t suppressed;
    {
      std::lock_guard<std::mutex> guard{core->mutex};
      auto now = clock_type::now();
      if (now - core->last_limit_warning < std::chrono::seconds(10)) {
        ++core->refused_since_warning;
        return;
      }
      core->last_limit_warning = now;
      suppressed = std::exchange(core->refused_since_warning, 0);
    }
    core->log(line + (suppressed > 0 ? " (and " + std::to_string(suppressed) +
                                           " similar events since the last warning)"
                                     : std::string{}));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;
    if (ec) {
      // Typically EMFILE: back off instead of spinning, and keep serving existing connections.
      return retry_later("http: accept failed: " + ec.message());
    }
    try {
      if (!admit(std::move(socket)))
        return; // stopping
    } catch (const std::exception& e) {
      core->log(std::string{"http: dropped a new connection: "} + e.what());
    }
    accept();
  }

  /// Starts a connection for `socket` (serving, or answering 503 when over the limit), or closes
  /// it. False when the server is stopping.
  bool admit(tcp::socket socket) {
    connection_role role = connection_role::serve;
    bool refuse = false;
    caf::actor raft;
    std::shared_ptr<const local_read_view> view;
    uint64_t client_id = 0;
    {
      std::lock_guard<std::mutex> guard{core->mutex};
      if (core->stopping)
        return false; // `socket` closes as it goes out of scope
      if (core->serving < core->connection_limit) {
        ++core->serving;
      } else if (core->rejecting < core->reject_limit) {
        role = connection_role::reject;
        ++core->rejecting;
      } else {
        refuse = true; // no room even for a 503
      }
      raft = core->raft;
      view = core->view;
      do
        client_id = core->client_ids();
      while (client_id == 0);
    }
    if (refuse) {
      beast::error_code ignored;
      socket.close(ignored);
      warn_rate_limited("http: connection limit (" + std::to_string(core->connection_limit) +
                        ") reached; closing new connections without an answer");
      return true;
    }
    if (role == connection_role::reject)
      warn_rate_limited("http: connection limit (" + std::to_string(core->connection_limit) +
                        ") reached; answering new connections 503");
    std::shared_ptr<closable> handle;
    if (core->tls)
      handle = launch<tls_stream>(std::move(socket), role, raft, view, client_id);
    else
      handle = launch<plain_stream>(std::move(socket), role, raft, view, client_id);
    std::lock_guard<std::mutex> guard{core->mutex};
    auto& list = core->connections;
    if (list.size() >= 2 * core->live_connections + 64)
      list.erase(
          std::remove_if(list.begin(), list.end(), [](const auto& weak) { return weak.expired(); }),
          list.end());
    list.push_back(handle);
    return true;
  }

  template <class Stream>
  std::shared_ptr<closable> launch(tcp::socket socket, connection_role role, caf::actor raft,
                                   std::shared_ptr<const local_read_view> view,
                                   uint64_t client_id) {
    std::shared_ptr<connection<Stream>> conn;
    try {
      {
        std::lock_guard<std::mutex> guard{core->mutex};
        ++core->live_connections;
      }
      conn = std::make_shared<connection<Stream>>(core, ioc, std::move(socket), role);
    } catch (...) {
      // The connection never existed: give back what its destructor would have.
      core->connection_gone();
      core->release_slot(role);
      throw;
    }
    asio::dispatch(conn->executor(),
                   [conn, raft, view, client_id] { conn->start(raft, view, client_id); });
    return conn;
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

void http_server::start(caf::actor raft, std::shared_ptr<const local_read_view> view) {
  auto& d = *impl_;
  if (d.started || d.stopped)
    return;
  d.started = true;
  {
    std::lock_guard<std::mutex> guard{d.core->mutex};
    d.core->raft = std::move(raft);
    d.core->view = std::move(view);
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
          // Handlers catch their own exceptions; this is the last resort.
          core->log(std::string{"http: unexpected exception on an I/O thread: "} + e.what());
        }
      }
    });
  d.core->log("http: listening on " + local_address() + (d.core->tls ? " (HTTPS)" : "") +
              ", at most " + std::to_string(d.core->connection_limit) + " connections");
}

void http_server::stop() {
  auto& d = *impl_;
  if (d.stopped)
    return;
  d.stopped = true;
  std::vector<std::shared_ptr<closable>> open;
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
    conn->post_close();
  open.clear();
  bool all_closed;
  {
    // Each connection goes away once its session actor has exited and its handlers have run.
    std::unique_lock<std::mutex> lock{d.core->mutex};
    all_closed = d.core->all_gone.wait_for(lock, std::chrono::seconds(3),
                                           [&] { return d.core->live_connections == 0; });
    d.core->raft = nullptr;
    d.core->view = nullptr;
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
