// infinityctl: the command-line client (`infinityctl --help`). main() does the parts that touch
// the process: arguments and environment, the token and CA files, stdin, printing, the exit
// status. Everything else is in app/ctl/.
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "app/ctl/beast_io.hpp"
#include "app/ctl/ctl_commands.hpp"
#include "app/ctl/ctl_options.hpp"

namespace {

using namespace infinity::ctl;

int usage_error(const std::string& message) {
  std::cerr << "infinityctl: " << message << "\n";
  return exit_usage;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream file{path, std::ios::binary};
  if (!file)
    return std::nullopt;
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad())
    return std::nullopt;
  return contents.str();
}

} // namespace

int main(int argc, char** argv) {
  // A server closing the connection early must be an error to report, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_command_line(args, std::getenv("INFINITYCTL_ENDPOINTS"));
  switch (parsed.what) {
  case parse_outcome::action::help:
    std::cout << parsed.text;
    return exit_ok;
  case parse_outcome::action::version:
    std::cout << parsed.text << "\n";
    return exit_ok;
  case parse_outcome::action::fail:
    return usage_error(parsed.text);
  case parse_outcome::action::run:
    break;
  }
  command_line line = std::move(parsed.line);

  std::string token;
  if (!line.options.token_file.empty()) {
    auto contents = read_file(line.options.token_file);
    if (!contents)
      return usage_error("cannot read --token-file '" + line.options.token_file + "'");
    auto parsed_token = token_from_file_contents(*contents);
    if (auto* error = std::get_if<problem>(&parsed_token))
      return usage_error("--token-file '" + line.options.token_file + "': " + error->message);
    token = std::get<std::string>(std::move(parsed_token));
  }
  if (!line.options.cacert_file.empty()) {
    if (!read_file(line.options.cacert_file))
      return usage_error("cannot read --cacert '" + line.options.cacert_file + "'");
    if (auto error = beast_io::check_cacert(line.options.cacert_file); !error.empty())
      return usage_error(error);
  }
  if (line.value_from_stdin) {
    line.value.assign(std::istreambuf_iterator<char>{std::cin}, std::istreambuf_iterator<char>{});
    if (std::cin.bad())
      return usage_error("cannot read the value from stdin");
    if (!is_valid_utf8(line.value))
      return usage_error("the value read from stdin is not UTF-8 text");
  }

  beast_io io{line.options.cacert_file};
  auto output = run_command(io, line, token);
  std::cout << output.out << std::flush;
  std::cerr << output.err << std::flush;
  return output.exit_code;
}
