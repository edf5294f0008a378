#include "app/ctl/ctl_client.hpp"

#include <algorithm>
#include <cstdio>

#include <boost/json.hpp>

namespace infinity::ctl {
namespace {

namespace json = boost::json;

constexpr std::chrono::milliseconds min_pause{100};
constexpr std::chrono::milliseconds max_pause{1000};
/// Between rounds when the server sent no Retry-After.
constexpr std::chrono::milliseconds default_pause{250};

std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& text) {
  if (text.empty() || text.size() > 6)
    return std::nullopt;
  int seconds = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt; // HTTP dates are allowed by the RFC; our servers send seconds
    seconds = seconds * 10 + (c - '0');
  }
  return std::chrono::milliseconds{seconds * 1000};
}

} // namespace

struct client::attempt {
  enum class outcome {
    /// `reply` is the answer to give.
    final,
    /// A live server that could not serve now (503, 5xx, timeout, broken connection): worth
    /// another round.
    transient,
    /// Nobody to talk to (unreachable, TLS refused, an unusable redirect): another round would
    /// fail the same way.
    dead,
  };
  outcome what = outcome::dead;
  http_reply reply;
  endpoint at;
  std::string failure;
  std::optional<std::chrono::milliseconds> retry_after;
  bool maybe_sent = false;
};

client::client(client_io& io, const global_options& options)
    : io_(io), options_(options), command_deadline_(io.now() + options.command_timeout) {}

client::attempt client::try_endpoint(const endpoint& start, const http_request& request,
                                     request_kind kind) {
  attempt result;
  result.at = start;
  http_request current = request;
  for (int hop = 0;; ++hop) {
    auto now = io_.now();
    if (now >= command_deadline_) {
      result.what = attempt::outcome::dead;
      result.failure = result.at.display() + ": not tried, --command-timeout " +
                       describe_duration(options_.command_timeout) + " expired";
      return result;
    }
    auto deadline = std::min(now + options_.request_timeout, command_deadline_);
    auto exchanged = io_.exchange(result.at, current, deadline);
    if (auto* error = std::get_if<transport_error>(&exchanged)) {
      bool gone = error->what == transport_error::kind::unreachable ||
                  error->what == transport_error::kind::tls;
      result.what = gone ? attempt::outcome::dead : attempt::outcome::transient;
      result.maybe_sent = error->maybe_sent;
      std::string why = error->message;
      if (error->what == transport_error::kind::timeout) {
        // Which limit ran out, and (from the transport) in which phase.
        why = deadline == command_deadline_
                  ? "--command-timeout " + describe_duration(options_.command_timeout) + " expired"
                  : "no answer within --timeout " + describe_duration(options_.request_timeout);
        if (!error->message.empty())
          why += " (" + error->message + ")";
      }
      result.failure = result.at.display() + ": " + why;
      return result;
    }
    result.reply = std::get<http_reply>(std::move(exchanged));
    const unsigned status = result.reply.status;
    if (status == 307 || status == 308) {
      if (hop == max_redirects) {
        result.what = attempt::outcome::dead;
        result.failure = start.display() + ": more than " + std::to_string(max_redirects) +
                         " redirects (last at " + result.at.display() + ")";
        return result;
      }
      auto next = parse_location(result.reply.location, result.at);
      if (auto* error = std::get_if<problem>(&next)) {
        result.what = attempt::outcome::dead;
        result.failure = result.at.display() + ": " + error->message;
        return result;
      }
      auto& [to, target] = std::get<std::pair<endpoint, std::string>>(next);
      if (result.at.tls && !to.tls) {
        // The token and the data would leave TLS.
        result.what = attempt::outcome::dead;
        result.failure =
            result.at.display() + ": refusing a redirect from https to " + to.display();
        return result;
      }
      result.at = to;
      current.target = target;
      continue;
    }
    bool may_retry = status >= 500 && (kind == request_kind::read || status == 503);
    if (!may_retry) {
      result.what = attempt::outcome::final;
      return result;
    }
    result.what = attempt::outcome::transient;
    result.retry_after = parse_retry_after(result.reply.retry_after);
    result.failure = result.at.display() + ": " + std::to_string(status) + " " +
                     server_message(result.reply.body);
    return result;
  }
}

call_result client::call(const http_request& request, request_kind kind) {
  call_result result;
  while (true) {
    result.failures.clear();
    bool worth_another_round = false;
    std::optional<std::chrono::milliseconds> pause;
    for (const auto& to : options_.endpoints) {
      auto tried = try_endpoint(to, request, kind);
      if (tried.what == attempt::outcome::final) {
        result.reply = std::move(tried.reply);
        result.answered_by = tried.at;
        result.failures.clear();
        return result;
      }
      result.failures.push_back(tried.failure);
      if (kind == request_kind::write && tried.maybe_sent)
        result.outcome_unknown = true;
      if (tried.what == attempt::outcome::transient) {
        worth_another_round = true;
        if (tried.retry_after)
          pause = pause ? std::min(*pause, *tried.retry_after) : *tried.retry_after;
      }
    }
    if (!worth_another_round)
      return result;
    auto wait = std::clamp(pause.value_or(default_pause), min_pause, max_pause);
    auto resume = io_.now() + wait;
    if (resume >= command_deadline_) {
      result.failures.push_back("gave up after --command-timeout " +
                                describe_duration(options_.command_timeout));
      return result;
    }
    io_.sleep_until(resume);
  }
}

call_result client::call_endpoint(const endpoint& to, const http_request& request) {
  call_result result;
  auto tried = try_endpoint(to, request, request_kind::read);
  if (tried.what == attempt::outcome::final) {
    result.reply = std::move(tried.reply);
    result.answered_by = tried.at;
  } else {
    result.failures.push_back(tried.failure);
  }
  return result;
}

std::string server_message(const std::string& body) {
  std::string message;
  boost::system::error_code ec;
  auto parsed = json::parse(body, ec);
  if (!ec && parsed.is_object()) {
    if (auto* error = parsed.as_object().if_contains("error"); error && error->is_string())
      message = std::string{error->as_string()};
  }
  if (message.empty())
    message = body.empty() ? "(empty body)" : body;
  constexpr std::size_t max_length = 300;
  if (message.size() > max_length)
    message = message.substr(0, max_length) + "...";
  for (char& c : message)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  return message;
}

std::string describe_duration(std::chrono::milliseconds duration) {
  auto ms = duration.count();
  if (ms % 1000 != 0 && ms < 1000)
    return std::to_string(ms) + "ms";
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03d", static_cast<int>(ms % 1000));
    std::string digits{fraction};
    while (digits.back() == '0')
      digits.pop_back();
    text += digits;
  }
  return text + "s";
}

} // namespace infinity::ctl
