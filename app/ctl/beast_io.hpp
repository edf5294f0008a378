// The real `client_io`: one HTTP/1.1 request per connection with Boost.Beast, over TLS
// (boost::asio::ssl, OpenSSL) for https:// endpoints. Each exchange is a short run of an
// io_context, so one deadline covers resolving, connecting, the handshake, writing and reading.
#pragma once

#include <memory>
#include <string>

#include "app/ctl/ctl_client.hpp"

namespace infinity::ctl {

class beast_io : public client_io {
 public:
  /// `cacert_file`: PEM CA certificates that https:// servers must chain to; empty: the
  /// system's trust store. Loaded on the first https:// exchange.
  explicit beast_io(std::string cacert_file);
  ~beast_io() override;

  /// Why `cacert_file` cannot serve as --cacert (unreadable, no PEM certificate), or "".
  static std::string check_cacert(const std::string& cacert_file);

  exchange_result exchange(const endpoint& to, const http_request& request,
                           clock::time_point deadline) override;
  clock::time_point now() override;
  void sleep_until(clock::time_point until) override;

 private:
  struct tls_state;
  std::string cacert_file_;
  std::unique_ptr<tls_state> tls_;
};

} // namespace infinity::ctl
