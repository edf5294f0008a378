// infinityctl's commands: which requests each sends, how replies become output and exit
// statuses. Output is returned rather than printed so tests can check it.
#pragma once

#include <string>

#include "app/ctl/ctl_client.hpp"
#include "app/ctl/ctl_options.hpp"

namespace infinity::ctl {

struct command_output {
  int exit_code = exit_ok;
  /// For stdout: the result.
  std::string out;
  /// For stderr: errors and warnings, one per line, each starting with "infinityctl: ".
  std::string err;
};

/// Runs `line.command`. For `put KEY -`, main() has already read stdin into `line.value`.
/// `bearer_token` (possibly empty) goes with every request.
command_output run_command(client_io& io, const command_line& line,
                           const std::string& bearer_token);

} // namespace infinity::ctl
