#include "app/ctl/ctl_options.hpp"

#include <cmath>
#include <map>

#include "actors/raft/membership.hpp"

namespace infinity::ctl {
namespace {

std::string quoted(std::string_view text) {
  return "'" + std::string{text} + "'";
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_hex_digit(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_host_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.';
}

/// HOST:PORT or [IPV6]:PORT (the same rules as the server's parse_host_port); an error
/// message that does not repeat the input.
std::variant<std::pair<std::string, uint16_t>, std::string> parse_authority(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return std::string{"unclosed '['"};
    host = text.substr(1, close - 1);
    if (host.empty() || host.find(':') == std::string_view::npos)
      return std::string{"brackets must hold an IPv6 address"};
    for (char c : host)
      if (!is_hex_digit(c) && c != ':' && c != '.')
        return std::string{"brackets must hold an IPv6 address"};
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return std::string{"missing :PORT"};
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::string{"missing :PORT"};
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty())
      return std::string{"missing host"};
    if (host.find(':') != std::string_view::npos)
      return std::string{"write IPv6 addresses in brackets, as [::1]:8001"};
    if (host.size() > 253)
      return std::string{"host name too long"};
    for (char c : host)
      if (!is_host_name_char(c))
        return std::string{"the host may hold only letters, digits, '-' and '.'"};
  }
  if (port.empty() || port.size() > 5)
    return std::string{"the port must be a number from 1 to 65535"};
  uint32_t number = 0;
  for (char c : port) {
    if (!is_digit(c))
      return std::string{"the port must be a number from 1 to 65535"};
    number = number * 10 + static_cast<uint32_t>(c - '0');
  }
  if (number == 0 || number > 65535)
    return std::string{"the port must be a number from 1 to 65535"};
  return std::make_pair(std::string{host}, static_cast<uint16_t>(number));
}

/// Splits a URL or endpoint into scheme and the rest; an error for schemes other than http(s).
std::variant<std::pair<bool, std::string_view>, std::string> split_scheme(std::string_view text) {
  if (starts_with(text, "https://"))
    return std::make_pair(true, text.substr(8));
  if (starts_with(text, "http://"))
    return std::make_pair(false, text.substr(7));
  if (text.find("://") != std::string_view::npos)
    return std::string{"only http:// and https:// are supported"};
  return std::make_pair(false, text);
}

const std::map<std::string_view, command_kind>& commands() {
  static const std::map<std::string_view, command_kind> table{
      {"put", command_kind::put},         {"get", command_kind::get},
      {"del", command_kind::del},         {"status", command_kind::status},
      {"members", command_kind::members}, {"join", command_kind::join},
      {"remove", command_kind::remove},   {"transfer-leader", command_kind::transfer_leader},
  };
  return table;
}

std::optional<command_kind> find_command(std::string_view name) {
  auto it = commands().find(name);
  if (it == commands().end())
    return std::nullopt;
  return it->second;
}

struct option_spec {
  std::string_view name;
  bool takes_value;
};

constexpr option_spec option_specs[] = {
    {"endpoints", true}, {"output", true},          {"consistency", true},
    {"timeout", true},   {"command-timeout", true}, {"token-file", true},
    {"cacert", true},    {"help", false},           {"version", false},
};

const option_spec* find_option(std::string_view name) {
  for (const auto& spec : option_specs)
    if (spec.name == name)
      return &spec;
  return nullptr;
}

/// Options and positional words as given, before any value is interpreted.
struct scanned_line {
  std::vector<std::string> words;
  /// Last one wins, as with getopt, so an alias can be overridden.
  std::map<std::string, std::string> values;
  bool help = false;
  bool version = false;
  /// The first malformed option; scanning goes on so `--help` still wins.
  std::string error;
};

scanned_line scan(const std::vector<std::string>& args) {
  scanned_line out;
  auto set_error = [&](std::string message) {
    if (out.error.empty())
      out.error = std::move(message);
  };
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      out.words.push_back(arg); // "-" is a word: put's stdin marker
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name;
    std::optional<std::string> inline_value;
    if (arg[1] == '-') {
      auto eq = arg.find('=');
      name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos)
        inline_value = arg.substr(eq + 1);
    } else if (arg[1] == 'o') {
      name = "output";
      if (arg.size() > 2)
        inline_value = arg.substr(arg[2] == '=' ? 3 : 2);
    } else if (arg == "-h") {
      name = "help";
    } else {
      set_error("unknown option " + quoted(arg));
      continue;
    }
    const option_spec* spec = find_option(name);
    if (spec == nullptr) {
      set_error("unknown option " + quoted("--" + name));
      continue;
    }
    if (!spec->takes_value) {
      if (inline_value)
        set_error("option --" + name + " takes no value");
      else if (name == "help")
        out.help = true;
      else
        out.version = true;
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        set_error("option --" + name + " needs a value");
        continue;
      }
      inline_value = args[++i];
    }
    out.values[name] = *inline_value;
  }
  return out;
}

std::string check_key(const std::string& key) {
  if (key.empty())
    return "the key must not be empty";
  if (!is_valid_utf8(key))
    return "the key must be UTF-8 text";
  return {};
}

std::string check_node_id(const std::string& id) {
  if (!valid_member_id(id))
    return "invalid node id " + quoted(id) + ": use 1 to 64 characters from [A-Za-z0-9._-]";
  return {};
}

/// Fills the command's fields from its words; an error message, or "".
std::string apply_arguments(command_kind command, const std::vector<std::string>& args,
                            command_line& line) {
  const std::string name = command_name(command);
  auto count_error = [&](std::string_view takes) {
    return name + " takes " + std::string{takes} + " (see infinityctl " + name + " --help)";
  };
  switch (command) {
  case command_kind::put: {
    if (args.size() != 2)
      return count_error("KEY VALUE, or KEY - to read the value from stdin");
    line.key = args[0];
    if (args[1] == "-") {
      line.value_from_stdin = true;
    } else {
      if (!is_valid_utf8(args[1]))
        return "the value must be UTF-8 text";
      line.value = args[1];
    }
    return check_key(line.key);
  }
  case command_kind::get:
  case command_kind::del:
    if (args.size() != 1)
      return count_error("exactly one KEY");
    line.key = args[0];
    return check_key(line.key);
  case command_kind::status:
  case command_kind::members:
    if (!args.empty())
      return "unexpected argument " + quoted(args[0]) + ": " + name + " takes none";
    return {};
  case command_kind::join: {
    if (args.size() != 2)
      return count_error("ID and RAFT_ADDR (HOST:PORT)");
    line.node_id = args[0];
    line.node_addr = args[1];
    auto addr = parse_authority(args[1]);
    if (auto* error = std::get_if<std::string>(&addr))
      return "invalid RAFT_ADDR " + quoted(args[1]) + ": " + *error;
    return check_node_id(line.node_id);
  }
  case command_kind::remove:
    if (args.size() != 1)
      return count_error("exactly one node ID");
    line.node_id = args[0];
    return check_node_id(line.node_id);
  case command_kind::transfer_leader:
    if (args.size() > 1)
      return count_error("at most one node ID");
    if (args.empty())
      return {};
    line.node_id = args[0];
    return check_node_id(line.node_id);
  }
  return "unknown command";
}

/// Interprets the global options' values; an error message, or "".
std::string apply_options(const scanned_line& scanned, const char* env_endpoints,
                          command_line& line) {
  auto& opts = line.options;
  auto value = [&](const char* name) -> std::optional<std::string> {
    auto it = scanned.values.find(name);
    if (it == scanned.values.end())
      return std::nullopt;
    return it->second;
  };
  std::string endpoints_source = "--endpoints";
  std::string endpoints_text{default_endpoints};
  if (auto v = value("endpoints")) {
    endpoints_text = *v;
  } else if (env_endpoints != nullptr && *env_endpoints != '\0') {
    endpoints_source = "INFINITYCTL_ENDPOINTS";
    endpoints_text = env_endpoints;
  }
  auto endpoints = parse_endpoint_list(endpoints_text);
  if (auto* error = std::get_if<problem>(&endpoints))
    return endpoints_source + ": " + error->message;
  opts.endpoints = std::get<std::vector<endpoint>>(std::move(endpoints));

  if (auto v = value("output")) {
    if (*v == "table")
      opts.output = output_format::table;
    else if (*v == "json")
      opts.output = output_format::json;
    else
      return "invalid --output " + quoted(*v) + ": use table or json";
  }
  if (auto v = value("consistency")) {
    if (*v == "stale")
      opts.stale = true;
    else if (*v != "linearizable")
      return "invalid --consistency " + quoted(*v) + ": use linearizable or stale";
    if (line.command != command_kind::get)
      return "--consistency applies to get only";
  }
  for (auto [name, target] : {std::pair{"timeout", &opts.request_timeout},
                              std::pair{"command-timeout", &opts.command_timeout}}) {
    if (auto v = value(name)) {
      auto duration = parse_duration(*v);
      if (!duration)
        return "invalid --" + std::string{name} + " " + quoted(*v) +
               ": expected a duration such as 500ms, 5s or 1m (at most 1h)";
      *target = *duration;
    }
  }
  for (auto [name, target] :
       {std::pair{"token-file", &opts.token_file}, std::pair{"cacert", &opts.cacert_file}}) {
    if (auto v = value(name)) {
      if (v->empty())
        return "--" + std::string{name} + " needs a file name";
      *target = *v;
    }
  }
  return {};
}

parse_outcome failure(std::string message) {
  parse_outcome outcome;
  outcome.what = parse_outcome::action::fail;
  outcome.text = std::move(message);
  return outcome;
}

parse_outcome help(std::optional<command_kind> command) {
  parse_outcome outcome;
  outcome.what = parse_outcome::action::help;
  outcome.text = help_text(command);
  return outcome;
}

} // namespace

std::string endpoint::authority() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port);
}

std::string endpoint::display() const {
  return (tls ? "https://" : "") + authority();
}

parsed<endpoint> parse_endpoint(std::string_view text) {
  auto fail = [&](const std::string& why) -> parsed<endpoint> {
    return problem{"invalid endpoint " + quoted(text) + ": " + why};
  };
  auto split = split_scheme(text);
  if (auto* error = std::get_if<std::string>(&split))
    return fail(*error);
  auto [tls, rest] = std::get<std::pair<bool, std::string_view>>(split);
  if (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return fail("expected [http://|https://]HOST:PORT, without a path or user");
  auto authority = parse_authority(rest);
  if (auto* error = std::get_if<std::string>(&authority))
    return fail(*error);
  auto& [host, port] = std::get<std::pair<std::string, uint16_t>>(authority);
  return endpoint{tls, host, port};
}

parsed<std::vector<endpoint>> parse_endpoint_list(std::string_view text) {
  std::vector<endpoint> out;
  while (true) {
    auto comma = text.find(',');
    auto entry = text.substr(0, comma);
    if (entry.empty())
      return problem{"empty entry in the endpoint list (expected HOST:PORT,HOST:PORT,...)"};
    auto parsed_entry = parse_endpoint(entry);
    if (auto* error = std::get_if<problem>(&parsed_entry))
      return *error;
    out.push_back(std::get<endpoint>(std::move(parsed_entry)));
    if (comma == std::string_view::npos)
      return out;
    text = text.substr(comma + 1);
  }
}

parsed<std::pair<endpoint, std::string>> parse_location(std::string_view location,
                                                        const endpoint& from) {
  auto fail = [&](const std::string& why) -> parsed<std::pair<endpoint, std::string>> {
    return problem{"unusable redirect to " + quoted(location.substr(0, 200)) + ": " + why};
  };
  if (starts_with(location, "/"))
    return std::make_pair(from, std::string{location});
  if (location.find("://") == std::string_view::npos)
    return fail("expected an absolute URL or path");
  auto split = split_scheme(location);
  if (auto* error = std::get_if<std::string>(&split))
    return fail(*error);
  auto [tls, rest] = std::get<std::pair<bool, std::string_view>>(split);
  auto slash = rest.find('/');
  auto authority = parse_authority(rest.substr(0, slash));
  if (auto* error = std::get_if<std::string>(&authority))
    return fail(*error);
  auto& [host, port] = std::get<std::pair<std::string, uint16_t>>(authority);
  std::string target = slash == std::string_view::npos ? "/" : std::string{rest.substr(slash)};
  return std::make_pair(endpoint{tls, host, port}, target);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits_end = 0;
  bool seen_dot = false;
  bool seen_digit = false;
  while (digits_end < text.size()) {
    char c = text[digits_end];
    if (is_digit(c)) {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
    ++digits_end;
  }
  if (!seen_digit || digits_end > 12)
    return std::nullopt;
  auto unit = text.substr(digits_end);
  double millis_per_unit;
  if (unit.empty() || unit == "s")
    millis_per_unit = 1000;
  else if (unit == "ms")
    millis_per_unit = 1;
  else if (unit == "m")
    millis_per_unit = 60000;
  else if (unit == "h")
    millis_per_unit = 3600000;
  else
    return std::nullopt;
  double number = std::stod(std::string{text.substr(0, digits_end)});
  double millis = std::round(number * millis_per_unit);
  if (millis < 1 || millis > 3600000)
    return std::nullopt;
  return std::chrono::milliseconds{static_cast<int64_t>(millis)};
}

parsed<std::string> token_from_file_contents(std::string_view contents) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!contents.empty() && is_space(contents.front()))
    contents.remove_prefix(1);
  while (!contents.empty() && is_space(contents.back()))
    contents.remove_suffix(1);
  if (contents.empty())
    return problem{"the token file is empty"};
  for (char c : contents)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return problem{"the token file holds more than one line or control characters"};
  return std::string{contents};
}

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t extra;
    uint32_t code;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= extra)
      return false;
    for (std::size_t i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (code < min || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
      return false;
    p += extra + 1;
  }
  return true;
}

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
                      c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[byte >> 4]);
      out.push_back(hex[byte & 0x0F]);
    }
  }
  return out;
}

const char* command_name(command_kind kind) {
  switch (kind) {
  case command_kind::put:
    return "put";
  case command_kind::get:
    return "get";
  case command_kind::del:
    return "del";
  case command_kind::status:
    return "status";
  case command_kind::members:
    return "members";
  case command_kind::join:
    return "join";
  case command_kind::remove:
    return "remove";
  case command_kind::transfer_leader:
    return "transfer-leader";
  }
  return "unknown";
}

parse_outcome parse_command_line(const std::vector<std::string>& args, const char* env_endpoints) {
  try {
    auto scanned = scan(args);
    std::optional<command_kind> command;
    if (!scanned.words.empty())
      command = find_command(scanned.words.front());
    bool help_word = !scanned.words.empty() && scanned.words.front() == "help";
    if (scanned.help) // `infinityctl put --help`, `infinityctl --help`: help wins over errors
      return help(command);
    if (!scanned.error.empty())
      return failure(scanned.error + " (see infinityctl --help)");
    if (scanned.version) {
      parse_outcome outcome;
      outcome.what = parse_outcome::action::version;
      outcome.text = std::string{"infinityctl "} + INFINITYSTORE_VERSION;
      return outcome;
    }
    if (scanned.words.empty())
      return failure("no command given (see infinityctl --help)");
    if (help_word) {
      if (scanned.words.size() == 1)
        return help(std::nullopt);
      auto topic = find_command(scanned.words[1]);
      if (!topic || scanned.words.size() > 2)
        return failure("help takes one command name (see infinityctl --help)");
      return help(topic);
    }
    if (!command)
      return failure("unknown command " + quoted(scanned.words.front()) +
                     " (see infinityctl --help)");
    parse_outcome outcome;
    outcome.line.command = *command;
    std::vector<std::string> command_args(scanned.words.begin() + 1, scanned.words.end());
    auto error = apply_arguments(*command, command_args, outcome.line);
    if (error.empty())
      error = apply_options(scanned, env_endpoints, outcome.line);
    if (!error.empty())
      return failure(error);
    return outcome;
  } catch (const std::exception& e) {
    return failure(std::string{"cannot parse the command line: "} + e.what());
  }
}

} // namespace infinity::ctl
