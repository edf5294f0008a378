#include "app/ctl/ctl_commands.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>

#include <boost/json.hpp>

namespace infinity::ctl {
namespace {

namespace json = boost::json;

std::optional<json::value> parse_json(const std::string& text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec)
    return std::nullopt;
  return value;
}

std::string with_newline(std::string text) {
  if (text.empty() || text.back() != '\n')
    text.push_back('\n');
  return text;
}

/// Control characters from a server or a user would move the cursor or worse on a terminal.
std::string printable(std::string_view text) {
  std::string out{text};
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  return out;
}

/// A key for an error message: quoted, or left out when long.
std::string quoted_key(std::string_view key) {
  if (key.size() > 128)
    return "(" + std::to_string(key.size()) + " bytes)";
  return "'" + printable(key) + "'";
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty())
      out += separator;
    out += part;
  }
  return out;
}

command_output failure(int code, const std::string& message) {
  return {code, "", "infinityctl: " + message + "\n"};
}

/// A JSON value as a table cell: strings bare, null as "-".
std::string cell(const json::value* value) {
  if (value == nullptr || value->is_null())
    return "-";
  if (value->is_string())
    return printable(value->as_string());
  return printable(json::serialize(*value));
}

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

/// The outcomes every command treats alike: no answer, 4xx other than 404, 5xx, anything
/// unexpected. Empty for 2xx and 404, which each command interprets.
std::optional<command_output> common_failure(const call_result& result, command_kind command,
                                             request_kind kind) {
  const std::string name = command_name(command);
  if (!result.reply) {
    std::string message = name + ": unavailable: " + join(result.failures, "; ");
    if (result.outcome_unknown)
      message += "; a request broke off after it was sent: the " + name +
                 " may or may not have taken effect";
    return failure(exit_unavailable, message);
  }
  const auto& reply = *result.reply;
  const std::string from = result.answered_by.display();
  const std::string status = std::to_string(reply.status);
  if ((reply.status >= 200 && reply.status < 300) || reply.status == 404)
    return std::nullopt;
  if (reply.status >= 400 && reply.status < 500)
    return failure(exit_refused, name + ": refused by " + from + " (" + status +
                                     "): " + server_message(reply.body));
  if (reply.status >= 500 && kind == request_kind::write)
    return failure(exit_unavailable, name + ": " + from + " answered " + status + ": " +
                                         server_message(reply.body) + "; the " + name +
                                         " may or may not have taken effect");
  return failure(exit_unavailable, name + ": unexpected answer from " + from + ": " + status + " " +
                                       server_message(reply.body));
}

command_output unsupported(const call_result& result, command_kind command) {
  return failure(exit_unavailable, std::string{"this server does not support "} +
                                       command_name(command) + " (404 from " +
                                       result.answered_by.display() + ": " +
                                       server_message(result.reply->body) + ")");
}

/// A write's 2xx: "OK (index N)", or the server's reply for -o json.
command_output acknowledged(const call_result& result, output_format format) {
  const auto& body = result.reply->body;
  if (format == output_format::json)
    return {exit_ok, with_newline(body), ""};
  std::string line = "OK";
  auto parsed = parse_json(body);
  if (parsed && parsed->is_object())
    if (auto* index = parsed->as_object().if_contains("index"); index && index->is_number())
      line += " (index " + json::serialize(*index) + ")";
  return {exit_ok, line + "\n", ""};
}

/// Commands whose 2xx is an acknowledgement and whose 404 means "not implemented here".
command_output simple_write(client& cl, const command_line& line, http_request request) {
  auto result = cl.call(request, request_kind::write);
  if (auto failed = common_failure(result, line.command, request_kind::write))
    return *failed;
  if (result.reply->status == 404)
    return unsupported(result, line.command);
  return acknowledged(result, line.options.output);
}

command_output run_put_or_del(client& cl, const command_line& line, const std::string& token) {
  json::object body;
  body["key"] = line.key;
  if (line.command == command_kind::put) {
    body["value"] = line.value;
    body["action"] = "set";
  } else {
    body["action"] = "delete";
  }
  return simple_write(cl, line, {"POST", "/set", json::serialize(body), token});
}

command_output run_get(client& cl, const command_line& line, const std::string& token) {
  std::string target = "/get?key=" + url_encode(line.key);
  if (line.options.stale)
    target += "&consistency=stale";
  auto result = cl.call({"GET", target, "", token}, request_kind::read);
  if (auto failed = common_failure(result, line.command, request_kind::read))
    return *failed;
  const auto& body = result.reply->body;
  auto parsed = parse_json(body);
  const json::object* object = parsed && parsed->is_object() ? &parsed->as_object() : nullptr;
  if (result.reply->status == 404) {
    // Our servers name the key in a 404; any other 404 is a path this server does not have.
    if (object == nullptr || object->if_contains("key") == nullptr)
      return unsupported(result, line.command);
    return failure(exit_not_found, "key " + quoted_key(line.key) + " not found");
  }
  if (line.options.output == output_format::json)
    return {exit_ok, with_newline(body), ""};
  const json::value* value = object ? object->if_contains("value") : nullptr;
  if (value == nullptr || !value->is_string())
    return failure(exit_unavailable, "get: unreadable reply from " + result.answered_by.display() +
                                         ": " + server_message(body));
  return {exit_ok, std::string{value->as_string()} + "\n", ""};
}

/// One endpoint's /status: the parsed object, or why there is none.
struct endpoint_status {
  endpoint at;
  std::optional<json::object> status;
  std::string error;
  /// The endpoint answered, but refused (4xx): not a reachability problem.
  bool refused = false;
};

std::vector<endpoint_status> ask_every_status(client& cl, const command_line& line,
                                              const std::string& token) {
  std::vector<endpoint_status> out;
  for (const auto& to : line.options.endpoints) {
    endpoint_status entry{to, std::nullopt, {}, false};
    auto result = cl.call_endpoint(to, {"GET", "/status", "", token});
    if (!result.reply) {
      entry.error = result.failures.empty() ? "no answer" : result.failures.front();
    } else if (result.reply->status != 200) {
      entry.refused = result.reply->status >= 400 && result.reply->status < 500;
      entry.error = to.display() + ": " + std::to_string(result.reply->status) + " " +
                    server_message(result.reply->body);
    } else if (auto parsed = parse_json(result.reply->body); parsed && parsed->is_object()) {
      entry.status = std::move(parsed->as_object());
    } else {
      entry.error =
          to.display() + ": unreadable /status reply: " + server_message(result.reply->body);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

command_output run_status(client& cl, const command_line& line, const std::string& token) {
  auto statuses = ask_every_status(cl, line, token);
  command_output output;
  bool unreachable = false;
  bool refused = false;
  for (const auto& entry : statuses) {
    if (entry.status)
      continue;
    output.err += "infinityctl: status: " + printable(entry.error) + "\n";
    (entry.refused ? refused : unreachable) = true;
  }
  output.exit_code = unreachable ? exit_unavailable : refused ? exit_refused : exit_ok;
  if (line.options.output == output_format::json) {
    json::array endpoints;
    for (const auto& entry : statuses) {
      json::object item;
      item["endpoint"] = entry.at.display();
      if (entry.status)
        item["status"] = *entry.status;
      else
        item["error"] = entry.error;
      endpoints.push_back(std::move(item));
    }
    output.out = json::serialize(json::object{{"endpoints", std::move(endpoints)}}) + "\n";
    return output;
  }
  std::vector<std::vector<std::string>> rows{
      {"ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST INDEX"}};
  for (const auto& entry : statuses) {
    if (!entry.status)
      continue;
    const auto& s = *entry.status;
    rows.push_back({entry.at.display(), cell(s.if_contains("id")), cell(s.if_contains("role")),
                    cell(s.if_contains("term")), cell(s.if_contains("leader")),
                    cell(s.if_contains("commit_index")), cell(s.if_contains("applied_index")),
                    cell(s.if_contains("last_log_index"))});
  }
  if (rows.size() > 1)
    output.out = render_table(rows);
  return output;
}

uint64_t number_or_zero(const json::object& object, std::string_view name) {
  auto* value = object.if_contains(name);
  if (value == nullptr)
    return 0;
  if (value->is_uint64())
    return value->as_uint64();
  if (value->is_int64() && value->as_int64() > 0)
    return static_cast<uint64_t>(value->as_int64());
  return 0;
}

std::string string_or_empty(const json::object& object, std::string_view name) {
  auto* value = object.if_contains(name);
  return value && value->is_string() ? std::string{value->as_string()} : std::string{};
}

/// A /members reply of unknown shape as a table: an array of ids or of objects (their keys as
/// columns, in order of appearance), alone or under "members". Empty when it is neither.
std::string render_members_reply(const json::value& reply) {
  const json::array* members = nullptr;
  if (reply.is_array())
    members = &reply.as_array();
  else if (reply.is_object())
    if (auto* inner = reply.as_object().if_contains("members"); inner && inner->is_array())
      members = &inner->as_array();
  if (members == nullptr)
    return {};
  std::vector<std::string> columns;
  for (const auto& member : *members) {
    if (!member.is_object())
      continue;
    for (const auto& field : member.as_object())
      if (std::find(columns.begin(), columns.end(), field.key()) == columns.end())
        columns.emplace_back(field.key());
  }
  if (columns.empty())
    columns.push_back("id");
  std::vector<std::vector<std::string>> rows{{}};
  for (const auto& column : columns) {
    std::string title = column;
    for (char& c : title)
      c = c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    rows.front().push_back(title);
  }
  for (const auto& member : *members) {
    std::vector<std::string> row;
    for (const auto& column : columns)
      row.push_back(member.is_object()          ? cell(member.as_object().if_contains(column))
                    : column == columns.front() ? cell(&member)
                                                : "-");
    rows.push_back(std::move(row));
  }
  return render_table(rows);
}

/// Members from every endpoint's /status, for servers without /members.
command_output members_from_status(client& cl, const command_line& line, const std::string& token) {
  auto statuses = ask_every_status(cl, line, token);
  // The leader's view if one answered, else the most recent: highest term, then commit index.
  const json::object* view = nullptr;
  auto rank = [](const json::object& s) {
    return std::make_tuple(string_or_empty(s, "role") == "leader", number_or_zero(s, "term"),
                           number_or_zero(s, "commit_index"));
  };
  std::vector<std::string> errors;
  for (const auto& entry : statuses) {
    if (!entry.status) {
      errors.push_back(entry.error);
      continue;
    }
    if (view == nullptr || rank(*entry.status) > rank(*view))
      view = &*entry.status;
  }
  if (view == nullptr)
    return failure(exit_unavailable, "members: unavailable: " + join(errors, "; "));
  command_output output;
  for (const auto& error : errors)
    output.err += "infinityctl: members: warning: " + printable(error) + "\n";
  const std::string leader = string_or_empty(*view, "leader");
  json::array members;
  if (auto* list = view->if_contains("members"); list && list->is_array()) {
    for (const auto& id_value : list->as_array()) {
      if (!id_value.is_string())
        continue;
      std::string id{id_value.as_string()};
      json::object member;
      member["id"] = id;
      member["leader"] = !leader.empty() && id == leader;
      json::value http = nullptr;
      json::value raft = nullptr;
      if (id == leader) {
        if (auto* addr = view->if_contains("leader_http"); addr && addr->is_string())
          http = *addr;
        if (auto* addr = view->if_contains("leader_raft"); addr && addr->is_string())
          raft = *addr;
      }
      for (const auto& entry : statuses)
        if (entry.status && http.is_null() && string_or_empty(*entry.status, "id") == id)
          http = entry.at.display();
      member["http_addr"] = std::move(http);
      member["raft_addr"] = std::move(raft);
      members.push_back(std::move(member));
    }
  }
  if (line.options.output == output_format::json) {
    json::object document;
    document["leader"] = leader.empty() ? json::value(nullptr) : json::value(json::string(leader));
    document["members"] = std::move(members);
    output.out = json::serialize(document) + "\n";
    return output;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "LEADER", "HTTP ADDR", "RAFT ADDR"}};
  for (const auto& member : members) {
    const auto& m = member.as_object();
    rows.push_back({cell(m.if_contains("id")), m.at("leader").as_bool() ? "yes" : "no",
                    cell(m.if_contains("http_addr")), cell(m.if_contains("raft_addr"))});
  }
  output.out = render_table(rows);
  return output;
}

command_output run_members(client& cl, const command_line& line, const std::string& token) {
  auto result = cl.call({"GET", "/members", "", token}, request_kind::read);
  if (auto failed = common_failure(result, line.command, request_kind::read))
    return *failed;
  if (result.reply->status == 404)
    return members_from_status(cl, line, token);
  const auto& body = result.reply->body;
  if (line.options.output == output_format::json)
    return {exit_ok, with_newline(body), ""};
  auto parsed = parse_json(body);
  std::string table = parsed ? render_members_reply(*parsed) : std::string{};
  return {exit_ok, table.empty() ? with_newline(printable(body)) : table, ""};
}

} // namespace

command_output run_command(client_io& io, const command_line& line,
                           const std::string& bearer_token) {
  client cl{io, line.options};
  switch (line.command) {
  case command_kind::put:
  case command_kind::del:
    return run_put_or_del(cl, line, bearer_token);
  case command_kind::get:
    return run_get(cl, line, bearer_token);
  case command_kind::status:
    return run_status(cl, line, bearer_token);
  case command_kind::members:
    return run_members(cl, line, bearer_token);
  case command_kind::join:
    return simple_write(
        cl, line,
        {"POST",
         "/join?nodeid=" + url_encode(line.node_id) + "&nodeaddr=" + url_encode(line.node_addr), "",
         bearer_token});
  case command_kind::remove:
    return simple_write(cl, line,
                        {"POST", "/remove?nodeid=" + url_encode(line.node_id), "", bearer_token});
  case command_kind::transfer_leader: {
    std::string target = "/transfer-leader";
    if (!line.node_id.empty())
      target += "?nodeid=" + url_encode(line.node_id);
    return simple_write(cl, line, {"POST", target, "", bearer_token});
  }
  }
  return failure(exit_usage, "unknown command");
}

} // namespace infinity::ctl
