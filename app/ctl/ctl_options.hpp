// The command line of `infinityctl`: endpoints, durations, global options, commands and their
// arguments. Pure functions (no sockets, no files, no environment lookups), so every rule is
// unit tested; main() feeds in argv and the environment and reads the files named here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace infinity::ctl {

/// Exit statuses scripts can rely on (documented in --help and the README).
enum exit_status : int {
  exit_ok = 0,
  /// `get` of a key that does not exist.
  exit_not_found = 1,
  /// Bad command, option or argument: one line on stderr, nothing sent.
  exit_usage = 2,
  /// No endpoint answered usefully: connection errors, timeouts, 5xx, or the server does not
  /// support the command.
  exit_unavailable = 3,
  /// The server refused the request (a 4xx other than 404): its message is printed.
  exit_refused = 4,
};

/// One server to talk to: `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
struct endpoint {
  bool tls = false;
  /// Without brackets for IPv6 literals ("::1").
  std::string host;
  uint16_t port = 0;

  /// HOST:PORT, with brackets around an IPv6 literal: the Host header and the URL authority.
  std::string authority() const;
  /// As users write it: HOST:PORT for plain HTTP, https://HOST:PORT for TLS.
  std::string display() const;

  friend bool operator==(const endpoint& a, const endpoint& b) {
    return a.tls == b.tls && a.host == b.host && a.port == b.port;
  }
};

/// Why an argument, option or file is unusable: one line for stderr.
struct problem {
  std::string message;
};

/// A parse result: the value, or what is wrong with it.
template <class T>
using parsed = std::variant<T, problem>;

/// `[http://|https://]HOST:PORT[/]`; HOST is a name, an IPv4 literal or a bracketed IPv6
/// literal, PORT 1..65535. Nothing after the authority but an optional '/'.
parsed<endpoint> parse_endpoint(std::string_view text);

/// Comma-separated endpoints, at least one; empty entries are errors (a stray comma is a typo).
parsed<std::vector<endpoint>> parse_endpoint_list(std::string_view text);

/// The endpoint and target (path and query) a redirect's `Location` points at. Absolute
/// `http(s)://HOST:PORT/...` URLs and absolute paths (relative to `from`) are accepted.
parsed<std::pair<endpoint, std::string>> parse_location(std::string_view location,
                                                        const endpoint& from);

/// `500ms`, `5s`, `2m`, or a bare number of seconds (`2.5`); must be positive, at most 1 hour.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// The bearer token in a --token-file's contents: surrounding whitespace (a trailing newline)
/// removed; empty or containing control characters (which would break the header) is an error.
parsed<std::string> token_from_file_contents(std::string_view contents);

bool is_valid_utf8(std::string_view text);

/// Percent-encodes everything except RFC 3986 unreserved characters, for query values.
std::string url_encode(std::string_view text);

enum class output_format { table, json };

enum class command_kind { put, get, del, status, members, join, remove, transfer_leader };

/// The name users type ("transfer-leader").
const char* command_name(command_kind kind);

struct global_options {
  std::vector<endpoint> endpoints;
  output_format output = output_format::table;
  /// `--consistency stale` (get only).
  bool stale = false;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds command_timeout{15000};
  /// Empty when not given.
  std::string token_file;
  std::string cacert_file;
};

/// A command and its validated arguments; fields a command does not take stay empty.
struct command_line {
  command_kind command = command_kind::status;
  std::string key;
  std::string value;
  /// `put KEY -`: main() reads the value from stdin.
  bool value_from_stdin = false;
  std::string node_id;
  std::string node_addr;
  global_options options;
};

struct parse_outcome {
  enum class action {
    run,
    /// `text` is the help to print on stdout; exit 0.
    help,
    /// `text` is the version line; exit 0.
    version,
    /// `text` is a one-line error; exit `exit_usage`.
    fail,
  };
  action what = action::run;
  std::string text;
  command_line line;
};

/// The default when neither --endpoints nor INFINITYCTL_ENDPOINTS is given.
inline constexpr std::string_view default_endpoints = "127.0.0.1:8001";

/// `args` without the program name; `env_endpoints` is INFINITYCTL_ENDPOINTS (null or empty:
/// unset). Options may appear before or after the command; `--` ends them. Never throws.
parse_outcome parse_command_line(const std::vector<std::string>& args,
                                 const char* env_endpoints = nullptr);

/// The tool's help (no command) or a command's.
std::string help_text(std::optional<command_kind> command = std::nullopt);

} // namespace infinity::ctl
