// infinitystore: one node process. Parses the options, runs a node_runtime until SIGINT or
// SIGTERM (or a fatal error of the node), and stops it within a bound.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <pthread.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "app/logger.hpp"
#include "app/node_options.hpp"
#include "app/node_runtime.hpp"

using namespace infinity;

int main(int argc, char** argv) {
  auto parsed = parse_node_options(argc, argv);
  switch (parsed.what) {
  case options_outcome::action::help:
    std::cout << parsed.text;
    return 0;
  case options_outcome::action::version:
    std::cout << parsed.text << "\n";
    return 0;
  case options_outcome::action::fail:
    std::fprintf(stderr, "infinitystore: %s (see --help)\n", parsed.text.c_str());
    return 2;
  case options_outcome::action::run:
    break;
  }
  const node_options opts = parsed.options;
  logger log{opts.level, opts.format, opts.node_id};

#if defined(__GLIBC__)
  // Memory (issue 13, bench/README.md): blocks of 256 KiB or more (a large shard's arena, the
  // Raft log's vector, snapshot buffers) are mapped on their own, so freeing one (the old copy
  // of a shard once a snapshot is written, say) gives it back to the system at once; smaller free
  // space goes back with the malloc_trim after each snapshot. Not lower: at 32 KiB every request
  // carrying a 64 KB value mapped and unmapped its buffers (reads of 64 KB values ran 4-5x
  // slower), with no gain in RSS at 100,000 keys of 100 bytes (36.1 against 36.2 MiB). A fixed
  // threshold also stops glibc from raising its default (128 KiB) to the largest block freed.
  // Set before any thread exists; MALLOC_MMAP_THRESHOLD_ in the environment still wins.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr)
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif

  // Blocked before any thread exists, so every thread inherits the mask and the signals wait
  // for sigwait below instead of killing the process mid-write.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  log.write(log_level::info, "infinitystore " INFINITYSTORE_VERSION " node " + opts.node_id +
                                 ": data-dir " + opts.data_dir + ", raft-addr " + opts.raft_addr +
                                 ", http-addr " + opts.http_addr);
  node_runtime node{opts, log};
  node.on_fatal = [] { ::kill(::getpid(), SIGTERM); };
  if (auto error = node.start(); !error.empty()) {
    // JSON logs stay one object per line even for the reason a node could not start.
    if (opts.format == log_format::json)
      log.write(log_level::error, "cannot start: " + error);
    else
      std::fprintf(stderr, "infinitystore: %s\n", error.c_str());
    return 1;
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  if (node.exit_code() == 0)
    log.write(log_level::info, std::string{"received "} +
                                   (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
                                   ", shutting down");
  // A hung actor must not keep the process alive: give up after a bound.
  std::thread{[&log] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    log.write(log_level::error, "shutdown took longer than 10 s, exiting anyway");
    std::_Exit(3);
  }}.detach();
  node.stop();
  log.write(log_level::info, "stopped");
  return node.exit_code();
}
