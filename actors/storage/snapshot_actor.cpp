#include "actors/storage/snapshot_actor.hpp"

#include <stdexcept>
#include <utility>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actors/messages.hpp"

namespace infinity {
namespace {

constexpr std::size_t restore_piece_bytes = std::size_t{1} << 20;

std::string describe(const snapshot_info& info) {
  return std::to_string(info.index) + " (term " + std::to_string(info.term) + ")";
}

std::optional<snapshot_file> find_file(snapshot_store& store, uint64_t index, uint64_t term) {
  for (auto& file : store.list())
    if (file.index == index && file.term == term)
      return file;
  return std::nullopt;
}

/// Parses a whole snapshot into a state machine.
/// The file's CRC was checked already (by `newest_valid` at startup, by the receiver's `finish`
/// for a snapshot from the leader): reading a large snapshot once more only to check it again
/// would double the I/O of a restart or an install.
kv_state_machine restore_from(snapshot_reader& reader) {
  kv_state_machine::restorer restorer;
  for (uint64_t offset = 0; offset < reader.body_size();) {
    auto piece = reader.read_body(offset, restore_piece_bytes);
    if (piece.empty())
      throw std::runtime_error("snapshot " + reader.file().path + " ends early");
    offset += piece.size();
    restorer.feed(piece);
  }
  auto machine = restorer.finish();
  if (machine.last_applied() != reader.meta().index || machine.config() != reader.meta().membership)
    throw std::runtime_error("snapshot " + reader.file().path +
                             ": its state disagrees with its header (applied index " +
                             std::to_string(machine.last_applied()) + ")");
  return machine;
}

snapshot_info info_of(const snapshot_reader& reader) {
  snapshot_info info;
  info.index = reader.meta().index;
  info.term = reader.meta().term;
  info.config = reader.meta().membership;
  info.config_index = reader.meta().config_index;
  info.size = reader.file_size();
  return info;
}

struct snapshot_actor_state {
  std::shared_ptr<snapshot_store> store;
  snapshot_actor_options options;
  /// The snapshot being sent to followers (pinned while open, so retention keeps it).
  std::optional<snapshot_reader> outgoing;
  /// The snapshot being received from the leader.
  std::optional<snapshot_receiver> incoming;
  bool lowered_priority = false;
  static inline const char* name = "snapshots";

  /// Serializing a large state machine takes seconds of CPU: on a busy machine it must not take
  /// them from the threads that keep the node a responsive Raft member (Linux: per-thread nice).
  void lower_priority() {
    if (lowered_priority || !options.background)
      return;
    lowered_priority = true;
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
  }

  void log(const std::string& line) const {
    if (options.log)
      options.log(line);
  }

  void retain() {
    for (const auto& gone : store->retain(options.retain))
      log("snapshot: deleted " + gone.path + " (keeping the newest " +
          std::to_string(options.retain) + ")");
  }
};

using snapshot_pointer = snapshot_actor::stateful_pointer<snapshot_actor_state>;

snapshot_actor::behavior_type snapshot_impl(snapshot_pointer self,
                                            std::shared_ptr<snapshot_store> store,
                                            snapshot_actor_options options) {
  self->state.store = std::move(store);
  self->state.options = std::move(options);
  return {
      [self](snapshot_write_atom, const snapshot_job& job) -> caf::result<snapshot_info> {
        auto& st = self->state;
        st.lower_priority();
        try {
          snapshot_meta meta;
          meta.index = job.info.index;
          meta.term = job.info.term;
          meta.config_index = job.info.config_index;
          meta.membership = job.info.config;
          auto writer = st.store->begin(meta);
          kv_state_machine::serialize(*job.image,
                                      [&writer](std::string_view piece) { writer.append(piece); });
          auto file = writer.finish();
          auto written = info_of(st.store->open(file));
          st.log("snapshot: wrote " + describe(written) + ", " + std::to_string(written.size) +
                 " bytes, " + std::to_string(job.image->size) + " keys");
          st.retain();
          return written;
        } catch (const std::exception& e) {
          st.log("snapshot: cannot write snapshot " + describe(job.info) + ": " + e.what());
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [self](snapshot_read_atom, const snapshot_info& info, uint64_t offset,
             uint64_t length) -> caf::result<bool, std::string, snapshot_info> {
        auto& st = self->state;
        // When the requested snapshot is gone, the newest one: the sender starts over with it.
        auto gone = [&st]() -> caf::result<bool, std::string, snapshot_info> {
          try {
            auto files = st.store->list();
            if (!files.empty())
              return {false, std::string{}, info_of(st.store->open(files.front()))};
          } catch (const std::exception&) {
            // none readable: the caller finds out at its next attempt
          }
          return {false, std::string{}, snapshot_info{}};
        };
        try {
          if (!st.outgoing || st.outgoing->meta().index != info.index ||
              st.outgoing->meta().term != info.term) {
            st.outgoing.reset();
            auto file = find_file(*st.store, info.index, info.term);
            if (!file)
              return gone();
            st.outgoing.emplace(st.store->open(*file));
          }
          if (offset > st.outgoing->file_size())
            return gone();
          return {true, st.outgoing->read(offset, static_cast<std::size_t>(length)),
                  snapshot_info{}};
        } catch (const std::exception& e) {
          st.log("snapshot: cannot read snapshot " + describe(info) + ": " + e.what());
          st.outgoing.reset();
          return gone();
        }
      },
      [self](snapshot_store_atom, const snapshot_info& info, uint64_t offset,
             const std::string& data, bool) -> caf::result<uint64_t, bool, bool> {
        auto& st = self->state;
        try {
          if (!st.incoming || st.incoming->index() != info.index ||
              st.incoming->term() != info.term || st.incoming->total_size() != info.size) {
            st.incoming.reset();
            st.incoming.emplace(st.store->receive(info.index, info.term, info.size));
          }
          auto written = st.incoming->write(offset, data);
          if (!written.accepted)
            return {written.size, false, false}; // the leader resumes at what we hold
          st.incoming->sync();
          if (st.incoming->size() < st.incoming->total_size())
            return {st.incoming->size(), false, false};
          auto finished = st.incoming->finish();
          st.incoming.reset();
          if (!finished.file) {
            st.log("snapshot: received snapshot " + describe(info) +
                   " is unusable, starting over: " + finished.problem);
            return {uint64_t{0}, false, true};
          }
          st.log("snapshot: received " + describe(info) + ", " + std::to_string(info.size) +
                 " bytes");
          st.retain();
          return {info.size, true, false};
        } catch (const std::exception& e) {
          st.log("snapshot: cannot store a chunk of snapshot " + describe(info) + ": " + e.what());
          st.incoming.reset();
          return {uint64_t{0}, false, true};
        }
      },
      [self](snapshot_load_atom, const snapshot_info& info) -> caf::result<restored_state_machine> {
        auto& st = self->state;
        try {
          auto file = find_file(*st.store, info.index, info.term);
          if (!file)
            throw std::runtime_error("it is not on disk");
          auto reader = st.store->open(*file);
          auto machine = std::make_shared<kv_state_machine>(restore_from(reader));
          restored_state_machine restored;
          restored.info = info_of(reader);
          restored.machine = std::move(machine);
          st.log("snapshot: loaded " + describe(restored.info) + ", " +
                 std::to_string(restored.machine->size()) + " keys");
          return restored;
        } catch (const std::exception& e) {
          st.log("snapshot: cannot load snapshot " + describe(info) + ": " + e.what());
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
  };
}

} // namespace

snapshot_actor spawn_snapshot_actor(caf::actor_system& system,
                                    std::shared_ptr<snapshot_store> store,
                                    snapshot_actor_options options, bool detached) {
  if (detached) {
    options.background = true;
    return system.spawn<caf::detached>(snapshot_impl, std::move(store), std::move(options));
  }
  return system.spawn(snapshot_impl, std::move(store), std::move(options));
}

startup_snapshot load_startup_snapshot(snapshot_store& store, storage_backend& storage,
                                       recovered_state& recovered) {
  startup_snapshot out;
  const auto base = recovered.base;
  auto choice = store.newest_valid(base.index + 1);
  for (const auto& rejected : choice.rejected)
    out.report.push_back("snapshot " + rejected.file.path + " skipped: " + rejected.reason);
  if (!choice.file) {
    if (base.index > 0)
      throw std::runtime_error(
          "the log starts after index " + std::to_string(base.index) +
          " but no intact snapshot covers the entries before it" +
          (choice.rejected.empty() ? std::string{} : " (" + choice.rejected.front().reason + ")") +
          "; restore the data directory from a backup, or remove it and add the node anew");
    return out;
  }
  auto reader = store.open(*choice.file);
  out.machine = restore_from(reader);
  auto info = info_of(reader);
  const uint64_t last_index = base.index + recovered.entries.size();
  if (info.index == base.index) {
    if (info.term != base.term)
      throw std::runtime_error("snapshot " + describe(info) +
                               " contradicts the log, which starts "
                               "after an entry of term " +
                               std::to_string(base.term));
  } else if (info.index > last_index ||
             recovered.entries[info.index - base.index - 1].term != info.term) {
    // The snapshot holds committed state the log lacks or contradicts (a crash between storing a
    // received snapshot and resetting the log, or uncommitted entries of an old leader there):
    // every entry the log holds is superseded.
    persist_request reset;
    reset.has_reset = true;
    reset.reset_to = log_base{info.index, info.term};
    if (info.term > recovered.state.term) {
      // The snapshot was received from a leader of a term whose record had not reached the
      // disk yet: adopt that term (without a vote), as the message that carried it did.
      reset.has_hard_state = true;
      reset.state = recovered.state;
      reset.state.term = info.term;
      reset.state.voted_for.clear();
      recovered.state = reset.state;
    }
    storage.write(reset);
    storage.sync();
    out.report.push_back("log (entries " + std::to_string(base.index + 1) + " to " +
                         std::to_string(last_index) + ") reset to continue after snapshot " +
                         describe(info));
    recovered.base = reset.reset_to;
    recovered.entries.clear();
  }
  out.report.push_back("loaded snapshot " + describe(info) + ": " +
                       std::to_string(out.machine->size()) + " keys");
  recovered.snapshot = info;
  return out;
}

} // namespace infinity
