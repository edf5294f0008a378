#include "net/http_api.hpp"

#include <algorithm>

#include "actors/raft/membership.hpp"

#include <boost/json.hpp>

namespace infinity::http {
namespace {

namespace json = boost::json;

std::string to_json(const json::value& value) {
  return json::serialize(value);
}

api_response json_response(unsigned status, const json::value& body) {
  api_response response;
  response.status = status;
  response.body = to_json(body);
  return response;
}

/// Echoes client input into an error message only when it is short and valid UTF-8, so error
/// bodies stay small and valid JSON whatever the client sent.
std::string quote_input(std::string_view text) {
  constexpr std::size_t max_echo = 128;
  if (text.size() > max_echo || !is_valid_utf8(text))
    return "(not shown)";
  return "'" + std::string{text} + "'";
}

struct query_param {
  std::string name;
  std::string value;
};

/// Splits and decodes a query string; an api_error for malformed percent-encoding.
std::variant<std::vector<query_param>, api_error> parse_query(std::string_view query) {
  std::vector<query_param> params;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty())
      continue;
    auto eq = part.find('=');
    auto name = url_decode(part.substr(0, eq));
    auto value =
        url_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
    if (!name || !value)
      return api_error{400, "malformed percent-encoding in the query string", {}};
    params.push_back({std::move(*name), std::move(*value)});
  }
  return params;
}

/// The value of the query parameter `name`; a duplicate is an error because which one a
/// client meant is a guess.
struct param_lookup {
  const std::vector<query_param>& params;
  std::optional<api_error> error;

  std::optional<std::string> get(std::string_view name) {
    std::optional<std::string> found;
    for (const auto& param : params) {
      if (param.name != name)
        continue;
      if (found) {
        error = api_error{400, "duplicate query parameter '" + std::string{name} + "'", {}};
        return std::nullopt;
      }
      found = param.value;
    }
    return found;
  }
};

std::optional<api_error> check_key(std::string_view key, const api_limits& limits) {
  if (key.empty())
    return api_error{400, "key must not be empty", {}};
  if (key.size() > limits.max_key_bytes)
    return api_error{
        400, "key is longer than " + std::to_string(limits.max_key_bytes) + " bytes", {}};
  if (!is_valid_utf8(key))
    return api_error{400, "key must be valid UTF-8", {}};
  return std::nullopt;
}

parsed_request parse_set_body(std::string_view body, const api_limits& limits) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view{body.data(), body.size()}, ec);
  if (ec)
    return api_error{400, "body is not valid JSON: " + ec.message(), {}};
  auto* object = doc.if_object();
  if (object == nullptr)
    return api_error{400, "body must be a JSON object", {}};

  auto* key = object->if_contains("key");
  if (key == nullptr)
    return api_error{400, "missing \"key\"", {}};
  if (!key->is_string())
    return api_error{400, "\"key\" must be a string", {}};
  std::string_view key_text{key->get_string().data(), key->get_string().size()};
  if (auto error = check_key(key_text, limits))
    return *error;

  auto* action = object->if_contains("action");
  if (action == nullptr)
    return api_error{400, "missing \"action\" (\"set\" or \"delete\")", {}};
  if (!action->is_string())
    return api_error{400, "\"action\" must be a string (\"set\" or \"delete\")", {}};
  std::string_view action_text{action->get_string().data(), action->get_string().size()};

  write_request request;
  request.command.key = std::string{key_text};
  if (action_text == "set") {
    request.command.op = kv_op::set;
    auto* value = object->if_contains("value");
    if (value == nullptr)
      return api_error{400, "missing \"value\" for action \"set\"", {}};
    if (!value->is_string())
      return api_error{400, "\"value\" must be a string", {}};
    const auto& text = value->get_string();
    if (text.size() > limits.max_value_bytes)
      return api_error{
          413, "value is larger than " + std::to_string(limits.max_value_bytes) + " bytes", {}};
    request.command.value.assign(text.data(), text.size());
  } else if (action_text == "delete") {
    request.command.op = kv_op::del;
  } else {
    return api_error{
        400, "unknown action " + quote_input(action_text) + " (use \"set\" or \"delete\")", {}};
  }
  api_request result;
  result.body = std::move(request);
  return result;
}

std::optional<bool> parse_flag(std::string_view text) {
  if (text == "true" || text == "1" || text.empty())
    return true;
  if (text == "false" || text == "0")
    return false;
  return std::nullopt;
}

api_error method_not_allowed(std::string_view method, std::string_view path,
                             std::string_view allowed) {
  return api_error{405,
                   "method " + quote_input(method) + " is not allowed on " + std::string{path} +
                       " (use " + std::string{allowed} + ")",
                   std::string{allowed}};
}

json::value leader_json(const std::string& leader_id) {
  if (leader_id.empty())
    return nullptr;
  return json::value(leader_id);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Case-insensitive (ASCII) prefix test, for URI schemes and auth schemes.
bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (ascii_lower(text[i]) != ascii_lower(prefix[i]))
      return false;
  return true;
}

bool is_host_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

} // namespace

std::optional<std::string> api_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name)
      return value;
  return std::nullopt;
}

// -- parsing
// ---------------------------------------------------------------------------------------

parsed_request parse_request(std::string_view method, std::string_view target,
                             std::string_view body, const api_limits& limits) {
  target = origin_form(target);
  auto question = target.find('?');
  auto path = target.substr(0, question);
  auto query =
      question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);

  enum class endpoint { set, get, join, status, remove, transfer, members, simple };
  endpoint which;
  std::string_view allowed;
  if (path == "/set") {
    which = endpoint::set;
    allowed = "POST";
  } else if (path == "/get") {
    which = endpoint::get;
    allowed = "GET";
  } else if (path == "/join") {
    which = endpoint::join;
    allowed = "POST";
  } else if (path == "/status") {
    which = endpoint::status;
    allowed = "GET";
  } else if (path == "/remove") {
    which = endpoint::remove;
    allowed = "POST";
  } else if (path == "/transfer-leader") {
    which = endpoint::transfer;
    allowed = "POST";
  } else if (path == "/members") {
    which = endpoint::members;
    allowed = "GET";
  } else if (path == "/health" || path == "/ready" || path == "/metrics" || path == "/ui") {
    which = endpoint::simple;
    allowed = "GET";
  } else {
    return api_error{404, "no such endpoint: " + quote_input(path), {}};
  }
  if (method != allowed)
    return method_not_allowed(method, path, allowed);
  // Checked before anything is parsed: the server enforces the same limit while reading, this
  // keeps the codec safe on its own.
  if (body.size() > limits.max_body_bytes)
    return api_error{
        413, "body is larger than " + std::to_string(limits.max_body_bytes) + " bytes", {}};

  auto params_or_error = parse_query(query);
  if (auto* error = std::get_if<api_error>(&params_or_error))
    return *error;
  param_lookup params{std::get<std::vector<query_param>>(params_or_error), std::nullopt};

  bool redirect = false;
  if (auto text = params.get("redirect")) {
    auto flag = parse_flag(*text);
    if (!flag)
      return api_error{400, "redirect must be true, false, 1 or 0", {}};
    redirect = *flag;
  }

  api_request request;
  switch (which) {
  case endpoint::set: {
    auto parsed = parse_set_body(body, limits);
    if (std::holds_alternative<api_error>(parsed))
      return parsed;
    request = std::get<api_request>(std::move(parsed));
    break;
  }
  case endpoint::get: {
    auto key = params.get("key");
    auto consistency = params.get("consistency");
    if (params.error)
      return *params.error;
    if (!key)
      return api_error{400, "missing query parameter 'key'", {}};
    if (auto error = check_key(*key, limits))
      return *error;
    get_request get{std::move(*key), read_consistency::linearizable};
    if (consistency) {
      if (*consistency == "stale")
        get.consistency = read_consistency::stale;
      else if (*consistency != "linearizable")
        return api_error{400,
                         "consistency must be 'linearizable' or 'stale', not " +
                             quote_input(*consistency),
                         {}};
    }
    request.body = std::move(get);
    break;
  }
  case endpoint::join: {
    auto node_id = params.get("nodeid");
    auto node_addr = params.get("nodeaddr");
    if (params.error)
      return *params.error;
    if (!node_id)
      return api_error{400, "missing query parameter 'nodeid'", {}};
    if (!is_valid_node_id(*node_id))
      return api_error{400,
                       "nodeid must be 1 to 64 characters from [A-Za-z0-9._-], not " +
                           quote_input(*node_id),
                       {}};
    if (!node_addr)
      return api_error{400, "missing query parameter 'nodeaddr'", {}};
    if (!parse_host_port(*node_addr))
      return api_error{400, "nodeaddr must be HOST:PORT, not " + quote_input(*node_addr), {}};
    request.body = join_request{std::move(*node_id), std::move(*node_addr)};
    break;
  }
  case endpoint::status:
    request.body = status_request{};
    break;
  case endpoint::members:
    request.body = members_request{};
    break;
  case endpoint::simple:
    // Parameters are ignored (probes and scrapers may add their own, e.g. a cache buster).
    if (path == "/health")
      request.body = health_request{};
    else if (path == "/ready")
      request.body = ready_request{};
    else if (path == "/metrics")
      request.body = metrics_request{};
    else
      request.body = ui_request{};
    break;
  case endpoint::remove:
  case endpoint::transfer: {
    auto node_id = params.get("nodeid");
    auto force_text = params.get("force");
    if (params.error)
      return *params.error;
    if (which == endpoint::remove && !node_id)
      return api_error{400, "missing query parameter 'nodeid'", {}};
    if (node_id && !is_valid_node_id(*node_id))
      return api_error{400,
                       "nodeid must be 1 to 64 characters from [A-Za-z0-9._-], not " +
                           quote_input(*node_id),
                       {}};
    if (which == endpoint::transfer) {
      if (force_text)
        return api_error{400, "force applies to /remove only", {}};
      request.body = transfer_request{node_id.value_or(std::string{})};
      break;
    }
    bool force = false;
    if (force_text) {
      auto flag = parse_flag(*force_text);
      if (!flag)
        return api_error{400, "force must be true, false, 1 or 0", {}};
      force = *flag;
    }
    request.body = remove_request{std::move(*node_id), force};
    break;
  }
  }
  if (params.error)
    return *params.error;
  request.redirect = redirect;
  request.target = std::string{target};
  return request;
}

std::optional<std::string> url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size())
        return std::nullopt;
      int hi = hex_digit(text[i + 1]);
      int lo = hex_digit(text[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
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
    // Overlong forms, UTF-16 surrogates and code points past Unicode are not UTF-8.
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
      return false;
    p += extra + 1;
  }
  return true;
}

std::optional<host_port> parse_host_port(std::string_view text, host_port_rules rules) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.empty())
      return std::nullopt;
    for (char c : host)
      if (hex_digit(c) < 0 && c != ':' && c != '.')
        return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty() && !rules.allow_empty_host)
      return std::nullopt;
    if (host.size() > 253)
      return std::nullopt;
    for (char c : host)
      if (!is_host_name_char(c))
        return std::nullopt;
  }
  if (port.empty() || port.size() > 5)
    return std::nullopt;
  uint32_t number = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      return std::nullopt;
    number = number * 10 + static_cast<uint32_t>(c - '0');
  }
  if (number > 65535 || (number == 0 && !rules.allow_port_zero))
    return std::nullopt;
  return host_port{std::string{host}, static_cast<uint16_t>(number)};
}

bool is_valid_node_id(std::string_view id) {
  // One rule for ids everywhere: the membership entries in the log enforce the same.
  return valid_member_id(id);
}

// -- targets and access
// ------------------------------------------------------------------------------

std::string_view origin_form(std::string_view target) {
  std::size_t scheme = 0;
  if (starts_with_nocase(target, "http://"))
    scheme = 7;
  else if (starts_with_nocase(target, "https://"))
    scheme = 8;
  else
    return target;
  // The authority ends at the path or the query (RFC 3986 §3.2).
  auto rest = target.substr(scheme);
  auto end = rest.find_first_of("/?");
  if (end == std::string_view::npos)
    return "/";
  rest = rest.substr(end);
  // "http://host?q" has an empty path, which stands for "/"; the query alone cannot be routed
  // without it, so it routes as "/" (a 404) rather than as the query text.
  return rest.front() == '?' ? std::string_view{"/"} : rest;
}

bool is_admin_path(std::string_view path) {
  return path == "/join" || path == "/remove" || path == "/transfer-leader";
}

bool is_public_path(std::string_view path) {
  // Probes must not need a secret; the page holds no data (what it reads needs the token).
  return path == "/health" || path == "/ready" || path == "/ui";
}

bool is_valid_bearer_token(std::string_view token) {
  auto end = token.find_last_not_of('=');
  if (end == std::string_view::npos)
    return false;
  for (char c : token.substr(0, end + 1)) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '.' && c != '_' && c != '~' && c != '+' && c != '/')
      return false;
  }
  return true;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer";
  if (!starts_with_nocase(authorization, scheme) || authorization.size() == scheme.size() ||
      authorization[scheme.size()] != ' ')
    return std::nullopt;
  auto token = authorization.substr(scheme.size());
  auto first = token.find_first_not_of(' ');
  if (first == std::string_view::npos)
    return std::nullopt;
  token = token.substr(first, token.find_last_not_of(' ') - first + 1);
  if (!is_valid_bearer_token(token))
    return std::nullopt;
  return token;
}

bool token_matches(std::string_view presented, std::string_view secret) {
  // Every byte of the secret is looked at whatever the guess; no early exit.
  unsigned difference = presented.size() == secret.size() ? 0u : 1u;
  for (std::size_t i = 0; i < secret.size(); ++i) {
    auto guess = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0u;
    difference |= guess ^ static_cast<unsigned char>(secret[i]);
  }
  return difference == 0 && !secret.empty();
}

std::optional<access_denied> check_access(std::string_view target,
                                          std::optional<std::string_view> authorization,
                                          const access_tokens& tokens) {
  target = origin_form(target);
  auto path = target.substr(0, target.find('?'));
  bool admin_path = is_admin_path(path);
  bool admin_configured = !tokens.admin.empty();
  bool client_configured = !tokens.client.empty();
  if (is_public_path(path) || (!admin_configured && !client_configured))
    return std::nullopt; // no tokens at all: the original, open API
  if (!admin_path && !client_configured)
    return std::nullopt; // only the admin endpoints are protected
  std::optional<std::string_view> token;
  if (authorization)
    token = bearer_token(*authorization);
  // Both comparisons always run, so timing does not even tell which kind of token matched.
  bool admin = token && token_matches(*token, tokens.admin);
  bool client = token && token_matches(*token, tokens.client);
  if (admin || (client && !admin_path))
    return std::nullopt;
  if (client) {
    std::string why =
        admin_configured
            ? "this endpoint needs the admin token"
            : "admin endpoints are disabled on this node: no admin token is configured";
    return access_denied{api_error{403, why, {}}, {}};
  }
  std::string message;
  std::string challenge = "Bearer realm=\"infinitystore\"";
  if (!authorization) {
    message = "this endpoint needs an Authorization: Bearer token";
  } else if (!token) {
    message = "the Authorization header is not a valid Bearer token";
    challenge += ", error=\"invalid_request\"";
  } else {
    message = "invalid token";
    challenge += ", error=\"invalid_token\"";
  }
  return access_denied{api_error{401, message, {}}, challenge};
}

// -- responses
// -------------------------------------------------------------------------------------

api_response error_response(const api_error& error) {
  auto response = json_response(error.status, json::object{{"error", error.message}});
  if (!error.allow.empty())
    response.headers.emplace_back("Allow", error.allow);
  return response;
}

api_response error_response(unsigned status, std::string_view message) {
  return error_response(api_error{status, std::string{message}, {}});
}

api_response too_many_connections_response(std::size_t limit) {
  auto response = error_response(503, "too many open connections (this node serves at most " +
                                          std::to_string(limit) + "); retry shortly");
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response plaintext_on_tls_port_response() {
  return error_response(400, "this port speaks HTTPS only; use an https:// URL");
}

const char* action_name(kv_op op) {
  return op == kv_op::del ? "delete" : "set";
}

api_response removed_response(std::string_view reason) {
  // 409, not 503: retrying on this node never helps; the client must go to a member.
  return json_response(
      409, json::object{{"error", reason.empty() ? std::string{"this node was removed from the "
                                                               "cluster and no longer serves"}
                                                 : std::string{reason}},
                        {"reason", "removed"}});
}

namespace {

/// The answer to a proposal (`what`: "write", "join") that did not succeed. Every status is
/// handled here, so one that is added later fails the build (-Wswitch) instead of a request.
api_response proposal_failure(const client_reply& result, const std::string& what) {
  auto unknown = [&](const std::string& why) {
    return json_response(
        500, json::object{{"error", why + ": the " + what + " may or may not have been applied"},
                          {"reason", to_string(result.status)}});
  };
  switch (result.status) {
  case reply_status::not_leader:
  case reply_status::no_leader: {
    std::string message = result.leader_id.empty()
                              ? "no leader is known right now; retry later"
                              : "this node is not the leader; the leader is " + result.leader_id;
    auto response = json_response(503, json::object{{"error", message},
                                                    {"reason", to_string(result.status)},
                                                    {"leader", leader_json(result.leader_id)}});
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  case reply_status::busy: {
    auto response = json_response(
        503, json::object{{"error", "the cluster is busy (a membership change is in progress); "
                                    "nothing was changed; retry shortly"},
                          {"reason", to_string(result.status)}});
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  case reply_status::unreachable: {
    auto response =
        json_response(503, json::object{{"error", "the " + what + " failed: " + result.reason +
                                                      "; nothing was changed"},
                                        {"reason", to_string(result.status)}});
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  case reply_status::removed:
    return removed_response(result.reason);
  case reply_status::rejected:
    return json_response(
        409,
        json::object{{"error", "the " + what + " was rejected" +
                                   (result.reason.empty() ? std::string{} : ": " + result.reason) +
                                   "; nothing was changed"},
                     {"reason", to_string(result.status)}});
  case reply_status::leadership_lost:
    return unknown("leadership changed before the " + what + " was confirmed");
  case reply_status::timeout:
    return unknown("the " + what + " was not confirmed in time");
  case reply_status::stopping:
    return unknown("the node is shutting down");
  case reply_status::ok:
    break;
  }
  return unknown("unexpected outcome " + std::string{to_string(result.status)});
}

} // namespace

api_response write_response(const write_request& request, const client_reply& result) {
  const auto& command = request.command;
  if (result.status != reply_status::ok)
    return proposal_failure(result, "write");
  return json_response(200, json::object{{"key", command.key},
                                         {"action", action_name(command.op)},
                                         {"index", result.index}});
}

api_response join_result_response(const join_request& request, const client_reply& result) {
  if (result.status != reply_status::ok)
    return proposal_failure(result, "join");
  return json_response(200, json::object{{"nodeid", request.node_id},
                                         {"nodeaddr", request.node_addr},
                                         {"index", result.index}});
}

api_response remove_result_response(const remove_request& request, const client_reply& result) {
  if (result.status != reply_status::ok)
    return proposal_failure(result, "removal");
  return json_response(200, json::object{{"nodeid", request.node_id}, {"index", result.index}});
}

api_response transfer_result_response(const transfer_request& request, const client_reply& result) {
  if (result.status != reply_status::ok)
    return proposal_failure(result, "leadership transfer");
  auto leader = result.leader_id.empty() ? request.node_id : result.leader_id;
  return json_response(200,
                       json::object{{"leader", leader_json(leader)}, {"detail", result.reason}});
}

namespace {

json::array progress_json(const raft_status& status) {
  json::array progress;
  for (const auto& p : status.progress)
    progress.emplace_back(json::object{{"id", p.id},
                                       {"voter", p.voter},
                                       {"match_index", p.match_index},
                                       {"next_index", p.next_index},
                                       {"lag", p.lag},
                                       {"last_contact_ms", p.last_contact_ms},
                                       {"state", p.state},
                                       {"connected", p.connected},
                                       {"repairing", p.repairing}});
  return progress;
}

} // namespace

api_response members_response(const raft_status& status) {
  json::array members;
  for (const auto& [id, address] : status.addresses) {
    bool learner =
        std::find(status.learners.begin(), status.learners.end(), id) != status.learners.end();
    members.emplace_back(json::object{{"id", id},
                                      {"raft_address", address},
                                      {"role", learner ? "learner" : "voter"},
                                      {"leader", id == status.leader_id}});
  }
  return json_response(200, json::object{{"members", std::move(members)},
                                         {"leader", leader_json(status.leader_id)},
                                         {"progress", progress_json(status)}});
}

api_response write_failed_response(const write_request&, std::string_view reason) {
  return json_response(500,
                       json::object{{"error", "the write got no answer (" + std::string{reason} +
                                                  "): it may or may not have been applied"},
                                    {"reason", "unknown"}});
}

api_response read_barrier_response(const client_reply& result) {
  std::string message;
  switch (result.status) {
  case reply_status::not_leader:
    message = result.leader_id.empty()
                  ? "this node is not the leader and no leader is known; retry later"
                  : "this node is not the leader; the leader is " + result.leader_id;
    break;
  case reply_status::no_leader:
    message = "no leader is known right now; retry later";
    break;
  case reply_status::removed:
    return removed_response(result.reason);
  case reply_status::ok:
  case reply_status::leadership_lost:
  case reply_status::timeout:
  case reply_status::stopping:
  case reply_status::busy:
  case reply_status::rejected:
  case reply_status::unreachable:
    message = std::string{"the read could not be confirmed ("} + to_string(result.status) +
              "); retry later";
    break;
  }
  auto response = json_response(503, json::object{{"error", message},
                                                  {"reason", to_string(result.status)},
                                                  {"leader", leader_json(result.leader_id)}});
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response read_failed_response(std::string_view reason) {
  auto response =
      json_response(503, json::object{{"error", "the read could not be served (" +
                                                    std::string{reason} + "); retry later"}});
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response get_response(const std::string& key, bool found, const std::string& value) {
  if (!found)
    return json_response(404, json::object{{"error", "key not found"}, {"key", key}});
  return json_response(200, json::object{{"key", key}, {"value", value}});
}

api_response status_response(const raft_status& status) {
  json::array members;
  for (const auto& member : status.members)
    members.emplace_back(member);
  json::array learners;
  for (const auto& learner : status.learners)
    learners.emplace_back(learner);
  json::object body{{"id", status.id},
                    {"role", status.removed ? "removed" : to_string(status.role)},
                    {"term", status.term},
                    {"leader", leader_json(status.leader_id)},
                    {"commit_index", status.commit_index},
                    {"applied_index", status.applied_index},
                    {"last_log_index", status.last_log_index},
                    {"members", std::move(members)},
                    {"learners", std::move(learners)},
                    {"leader_http", leader_json(status.leader_http)},
                    {"leader_raft", leader_json(status.leader_raft)},
                    {"cluster_id", status.cluster_id},
                    {"progress", progress_json(status)}};
  if (status.repair_until_index > 0)
    body["repairing_until_index"] = status.repair_until_index;
  if (status.removed)
    body["removed_at_index"] = status.removed_at_index;
  if (!status.transfer_target.empty())
    body["transferring_to"] = status.transfer_target;
  body["leader_commit_index"] = status.leader_commit;
  body["snapshot_index"] = status.snapshot_index;
  body["log_first_index"] = status.log_first_index;
  body["leader_changes"] = status.leader_changes;
  auto response = json_response(200, std::move(body));
  // Read-only and token-protected when tokens are set: the dashboard served by a follower
  // reads the leader's view of every member from here.
  response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  return response;
}

api_response health_response(const raft_status& status) {
  return json_response(200,
                       json::object{{"status", "ok"},
                                    {"id", status.id},
                                    {"role", status.removed ? "removed" : to_string(status.role)}});
}

api_response health_failed_response(std::string_view reason) {
  auto response = json_response(
      503, json::object{{"status", "unavailable"},
                        {"error", "the Raft node did not answer (" + std::string{reason} + ")"}});
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

std::vector<std::string> readiness_problems(const raft_status& status,
                                            const readiness_limits& limits,
                                            const std::string& storage_problem) {
  std::vector<std::string> problems;
  if (status.removed)
    problems.push_back("this node was removed from the cluster");
  else if (status.leader_id.empty())
    problems.push_back("no leader is known");
  if (status.repair_until_index > 0)
    problems.push_back("repairing lost log entries up to index " +
                       std::to_string(status.repair_until_index));
  auto lag = status.leader_commit > status.applied_index
                 ? status.leader_commit - status.applied_index
                 : uint64_t{0};
  if (lag > limits.max_lag)
    problems.push_back("applied index " + std::to_string(status.applied_index) + " is " +
                       std::to_string(lag) + " entries behind the leader's commit index " +
                       std::to_string(status.leader_commit) + " (more than --ready-max-lag " +
                       std::to_string(limits.max_lag) + ")");
  if (!storage_problem.empty())
    problems.push_back("storage: " + storage_problem);
  return problems;
}

api_response ready_response(const raft_status& status, const readiness_limits& limits,
                            const std::string& storage_problem) {
  auto problems = readiness_problems(status, limits, storage_problem);
  json::array reasons;
  for (auto& problem : problems)
    reasons.emplace_back(std::move(problem));
  bool ready = reasons.empty();
  auto lag = status.leader_commit > status.applied_index
                 ? status.leader_commit - status.applied_index
                 : uint64_t{0};
  auto response = json_response(
      ready ? 200 : 503, json::object{{"ready", ready},
                                      {"reasons", std::move(reasons)},
                                      {"id", status.id},
                                      {"role", status.removed ? "removed" : to_string(status.role)},
                                      {"leader", leader_json(status.leader_id)},
                                      {"applied_index", status.applied_index},
                                      {"leader_commit_index", status.leader_commit},
                                      {"lag", lag},
                                      {"max_lag", limits.max_lag}});
  if (!ready)
    response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response ready_failed_response(std::string_view reason) {
  auto response =
      json_response(503, json::object{{"ready", false},
                                      {"reasons", json::array{"the Raft node did not answer (" +
                                                              std::string{reason} + ")"}}});
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response metrics_text_response(std::string text) {
  api_response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = std::move(text);
  return response;
}

api_response ui_response() {
  api_response response;
  response.content_type = "text/html; charset=utf-8";
  response.body = std::string{ui_page()};
  // Nothing but this page's own inline code and same-node requests.
  response.headers.emplace_back("Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; img-src data:; connect-src *");
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

api_response status_failed_response(std::string_view reason) {
  auto response = json_response(
      503, json::object{{"error", "status unavailable (" + std::string{reason} + ")"}});
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

api_response redirect_response(const std::string& location, const std::string& leader_id) {
  auto response = json_response(
      307, json::object{{"error", "this node is not the leader; the leader is " + leader_id},
                        {"leader", leader_id},
                        {"location", location}});
  response.headers.emplace_back("Location", location);
  return response;
}

} // namespace infinity::http
