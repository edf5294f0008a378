#include "app/ctl/beast_io.hpp"

#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace infinity::ctl {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

/// Values are at most 512 KiB, JSON-escaped at most six times larger; anything bigger is not
/// one of our servers.
constexpr std::uint64_t max_response_bytes = std::uint64_t{16} << 20;

transport_error make_error(transport_error::kind what, bool maybe_sent, std::string message) {
  return transport_error{what, maybe_sent, std::move(message)};
}

/// Runs the one pending operation to completion; the stream's timer ends it at the deadline.
void run(net::io_context& io) {
  io.restart();
  io.run();
}

http::request<http::string_body> build_request(const endpoint& to, const http_request& request) {
  bool post = request.method == "POST";
  http::request<http::string_body> out{post ? http::verb::post : http::verb::get, request.target,
                                       11};
  out.set(http::field::host, to.authority());
  out.set(http::field::user_agent, std::string{"infinityctl/"} + INFINITYSTORE_VERSION);
  out.set(http::field::accept, "application/json");
  if (!request.bearer_token.empty())
    out.set(http::field::authorization, "Bearer " + request.bearer_token);
  if (post) {
    out.set(http::field::content_type, "application/json");
    out.body() = request.body;
  }
  // One request per connection: nothing to keep alive for a one-shot command.
  out.keep_alive(false);
  out.prepare_payload();
  return out;
}

/// Connects `lowest` (the TCP layer of either stream) to `to`, resolving its name first.
std::optional<transport_error> connect(net::io_context& io, beast::tcp_stream& lowest,
                                       const endpoint& to, clock::time_point deadline) {
  tcp::resolver resolver{io};
  error_code ec;
  tcp::resolver::results_type addresses;
  bool resolved = false;
  resolver.async_resolve(to.host, std::to_string(to.port),
                         [&](error_code e, tcp::resolver::results_type results) {
                           ec = e;
                           addresses = std::move(results);
                           resolved = true;
                         });
  io.restart();
  io.run_until(deadline);
  if (!resolved)
    return make_error(transport_error::kind::timeout, false, "while resolving " + to.host);
  if (ec)
    return make_error(transport_error::kind::unreachable, false,
                      "cannot resolve '" + to.host + "': " + ec.message());
  lowest.expires_at(deadline);
  lowest.async_connect(addresses, [&](error_code e, const tcp::endpoint&) { ec = e; });
  run(io);
  if (ec == beast::error::timeout)
    return make_error(transport_error::kind::timeout, false, "while connecting");
  if (ec)
    return make_error(transport_error::kind::unreachable, false, "cannot connect: " + ec.message());
  return std::nullopt;
}

/// Writes the request and reads the response on a connected (and, for TLS, handshaken) stream.
template <class Stream>
exchange_result talk(net::io_context& io, Stream& stream,
                     const http::request<http::string_body>& request) {
  error_code ec;
  http::async_write(stream, request, [&](error_code e, std::size_t) { ec = e; });
  run(io);
  // From here on the server may have seen the request, whatever happens next.
  if (ec == beast::error::timeout)
    return make_error(transport_error::kind::timeout, true, "while sending the request");
  if (ec)
    return make_error(transport_error::kind::broken, true,
                      "connection broken while sending: " + ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_response_bytes);
  http::async_read(stream, buffer, parser, [&](error_code e, std::size_t) { ec = e; });
  run(io);
  if (ec == beast::error::timeout)
    return make_error(transport_error::kind::timeout, true, "while waiting for the response");
  if (ec)
    return make_error(transport_error::kind::broken, true, "no complete response: " + ec.message());
  auto& response = parser.get();
  http_reply reply;
  reply.status = response.result_int();
  reply.body = std::move(response.body());
  reply.location = std::string{response[http::field::location]};
  reply.retry_after = std::string{response[http::field::retry_after]};
  return reply;
}

} // namespace

struct beast_io::tls_state {
  ssl::context context{ssl::context::tls_client};
  /// Why the trust store could not be set up; every https exchange then fails with it.
  std::string error;
};

beast_io::beast_io(std::string cacert_file) : cacert_file_(std::move(cacert_file)) {}

beast_io::~beast_io() = default;

std::string beast_io::check_cacert(const std::string& cacert_file) {
  ssl::context context{ssl::context::tls_client};
  error_code ec;
  context.load_verify_file(cacert_file, ec);
  if (ec)
    return "cannot use --cacert '" + cacert_file + "': " + ec.message();
  return {};
}

clock::time_point beast_io::now() {
  return clock::now();
}

void beast_io::sleep_until(clock::time_point until) {
  std::this_thread::sleep_until(until);
}

exchange_result beast_io::exchange(const endpoint& to, const http_request& request,
                                   clock::time_point deadline) {
  net::io_context io;
  auto message = build_request(to, request);
  if (!to.tls) {
    beast::tcp_stream stream{io};
    if (auto error = connect(io, stream, to, deadline))
      return *error;
    auto result = talk(io, stream, message);
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return result;
  }

  if (!tls_) {
    tls_ = std::make_unique<tls_state>();
    auto& context = tls_->context;
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
    context.set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (cacert_file_.empty())
      context.set_default_verify_paths(ec);
    else
      context.load_verify_file(cacert_file_, ec);
    if (ec)
      tls_->error = (cacert_file_.empty() ? std::string{"cannot load the system's CA certificates"}
                                          : "cannot load --cacert '" + cacert_file_ + "'") +
                    ": " + ec.message();
  }
  if (!tls_->error.empty())
    return make_error(transport_error::kind::tls, false, tls_->error);

  beast::ssl_stream<beast::tcp_stream> stream{io, tls_->context};
  SSL* handle = stream.native_handle();
  error_code not_an_address;
  net::ip::make_address(to.host, not_an_address);
  if (not_an_address) {
    // A name: sent for virtual hosting (SNI) and matched against the certificate's names.
    SSL_set_tlsext_host_name(handle, to.host.c_str());
    SSL_set1_host(handle, to.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), to.host.c_str());
  }
  if (auto error = connect(io, beast::get_lowest_layer(stream), to, deadline))
    return *error;
  error_code ec;
  stream.async_handshake(ssl::stream_base::client, [&](error_code e) { ec = e; });
  run(io);
  if (ec == beast::error::timeout)
    return make_error(transport_error::kind::timeout, false, "during the TLS handshake");
  if (ec) {
    std::string why = ec.message();
    long verify = SSL_get_verify_result(handle);
    if (verify != X509_V_OK)
      why += " (" + std::string{X509_verify_cert_error_string(verify)} + ")";
    return make_error(transport_error::kind::tls, false, "TLS handshake failed: " + why);
  }
  auto result = talk(io, stream, message);
  // No close_notify exchange: the response is complete (Content-Length), and waiting for the
  // server's close_notify would only add a round trip.
  error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  return result;
}

} // namespace infinity::ctl
