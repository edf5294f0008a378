#define BOOST_TEST_MODULE snapshot_store
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/storage/file_storage.hpp"
#include "actors/storage/snapshot_store.hpp"

namespace fs = std::filesystem;
using namespace infinity;

namespace {

/// A fresh directory under /tmp for each test, removed afterwards; the store gets a data
/// directory that does not exist yet.
struct scratch_dir {
  std::string root;
  std::string data;
  std::string snapshots;

  scratch_dir() {
    char name_template[] = "/tmp/snapshot_store_test.XXXXXX";
    if (::mkdtemp(name_template) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    root = name_template;
    data = root + "/data";
    snapshots = data + "/snapshots";
  }
  ~scratch_dir() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }

  std::string file(const std::string& name) const { return snapshots + "/" + name; }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  BOOST_REQUIRE_MESSAGE(out, "cannot write " << path);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void flip_byte(const std::string& path, std::size_t offset) {
  std::string bytes = read_bytes(path);
  BOOST_REQUIRE_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5A);
  write_bytes(path, bytes);
}

std::vector<std::string> names_in(const std::string& directory) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(directory))
    names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// -- an independent encoder, so the format is checked against the spec, not the code -----------

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::string encoded_snapshot(const snapshot_meta& meta, const std::string& body) {
  std::string out = "ISNP";
  put_le(out, 1, 4);
  put_le(out, meta.index, 8);
  put_le(out, meta.term, 8);
  put_le(out, meta.membership.size(), 4);
  out += meta.membership;
  put_le(out, meta.config_index, 8);
  put_le(out, body.size(), 8);
  out += body;
  put_le(out, crc32c(out.data(), out.size()), 4);
  return out;
}

std::string random_bytes(std::size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(size, '\0');
  for (auto& c : bytes)
    c = static_cast<char>(rng());
  return bytes;
}

snapshot_meta meta_of(uint64_t index, uint64_t term) {
  return snapshot_meta{index, term, index / 2, "members-at-" + std::to_string(index)};
}

snapshot_file write_snapshot(snapshot_store& store, const snapshot_meta& meta,
                             const std::string& body, std::size_t piece = 1000) {
  snapshot_writer writer = store.begin(meta);
  for (std::size_t offset = 0; offset < body.size(); offset += piece)
    writer.append(std::string_view(body).substr(offset, piece));
  return writer.finish();
}

std::string read_whole_body(snapshot_reader& reader, std::size_t chunk = 4096) {
  std::string body;
  while (body.size() < reader.body_size())
    body += reader.read_body(body.size(), chunk);
  return body;
}

} // namespace

BOOST_AUTO_TEST_SUITE(checksum)

BOOST_AUTO_TEST_CASE(crc32c_combine_equals_the_crc_of_the_concatenation) {
  const std::string bytes = random_bytes(70000, 1);
  for (std::size_t split : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000},
                            std::size_t{65536}, bytes.size()}) {
    const uint32_t a = crc32c(bytes.data(), split);
    const uint32_t b = crc32c(bytes.data() + split, bytes.size() - split);
    BOOST_CHECK_EQUAL(crc32c_combine(a, b, bytes.size() - split),
                      crc32c(bytes.data(), bytes.size()));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(snapshot_store_tests, scratch_dir)

BOOST_AUTO_TEST_CASE(a_written_snapshot_matches_the_format_spec) {
  snapshot_store store(data);
  const snapshot_meta meta{7, 3, 5, std::string("n1\0n2", 5)};
  const std::string body = random_bytes(3000, 2);
  const snapshot_file file = write_snapshot(store, meta, body, 7);
  BOOST_CHECK_EQUAL(file.path, snapshots + "/snap-00000000000000000007-00000000000000000003.snap");
  BOOST_CHECK(read_bytes(file.path) == encoded_snapshot(meta, body));
  BOOST_CHECK(
      names_in(snapshots) ==
      (std::vector<std::string>{"LOCK", "snap-00000000000000000007-00000000000000000003.snap"}));
}

BOOST_AUTO_TEST_CASE(a_large_snapshot_round_trips_in_pieces) {
  snapshot_store store(data);
  const snapshot_meta meta = meta_of(1000, 9);
  const std::string body = random_bytes((std::size_t{3} << 20) + 17, 3); // > one stream chunk
  const snapshot_file file = write_snapshot(store, meta, body, 999);
  snapshot_reader reader = store.open(file);
  BOOST_CHECK_EQUAL(reader.meta().index, 1000u);
  BOOST_CHECK_EQUAL(reader.meta().term, 9u);
  BOOST_CHECK_EQUAL(reader.meta().config_index, 500u);
  BOOST_CHECK_EQUAL(reader.meta().membership, "members-at-1000");
  BOOST_CHECK_EQUAL(reader.body_size(), body.size());
  BOOST_CHECK(!reader.verify());
  BOOST_CHECK(read_whole_body(reader, 100000) == body);
  std::string raw;
  while (raw.size() < reader.file_size())
    raw += reader.read(raw.size(), 65536);
  BOOST_CHECK(raw == read_bytes(file.path));
  BOOST_CHECK(reader.read(reader.file_size(), 10).empty());
  BOOST_CHECK_THROW(reader.read(reader.file_size() + 1, 10), std::logic_error);
  // An empty body is a snapshot too.
  const snapshot_file empty = write_snapshot(store, meta_of(1001, 9), "");
  snapshot_reader empty_reader = store.open(empty);
  BOOST_CHECK_EQUAL(empty_reader.body_size(), 0u);
  BOOST_CHECK(!empty_reader.verify());
}

BOOST_AUTO_TEST_CASE(list_is_newest_first_and_ignores_other_names) {
  snapshot_store store(data);
  for (auto [index, term] :
       std::vector<std::pair<uint64_t, uint64_t>>{{5, 1}, {9, 2}, {9, 3}, {3, 4}})
    write_snapshot(store, meta_of(index, term), "body");
  write_bytes(file("snap-5-1.snap"), "x");
  write_bytes(file("notes.txt"), "x");
  std::vector<std::pair<uint64_t, uint64_t>> listed;
  for (const auto& file : store.list())
    listed.emplace_back(file.index, file.term);
  BOOST_CHECK(
      (listed == std::vector<std::pair<uint64_t, uint64_t>>{{9, 3}, {9, 2}, {5, 1}, {3, 4}}));
}

BOOST_AUTO_TEST_CASE(an_aborted_or_abandoned_write_leaves_nothing_visible) {
  {
    snapshot_store store(data);
    snapshot_writer aborted = store.begin(meta_of(4, 1));
    aborted.append("half");
    aborted.abort();
    BOOST_CHECK_THROW(aborted.append("more"), std::logic_error);
    {
      snapshot_writer abandoned = store.begin(meta_of(5, 1));
      abandoned.append("half");
    }
    BOOST_CHECK(store.list().empty());
    BOOST_CHECK(names_in(snapshots) == std::vector<std::string>{"LOCK"});
  }
  // What a crash before the rename leaves is removed at the next open.
  write_bytes(file("snap-00000000000000000006-00000000000000000001.snap.tmp"), "partial");
  snapshot_store store(data);
  BOOST_CHECK(store.list().empty());
  BOOST_CHECK(names_in(snapshots) == std::vector<std::string>{"LOCK"});
  BOOST_CHECK(store.open_report().find("snap.tmp") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(invalid_snapshots_cannot_be_begun) {
  snapshot_store store(data);
  BOOST_CHECK_THROW(store.begin(meta_of(0, 0)), std::logic_error);
  BOOST_CHECK_THROW(store.begin(meta_of(3, 0)), std::logic_error);
}

BOOST_AUTO_TEST_CASE(retain_keeps_the_newest_and_never_a_pinned_one) {
  snapshot_store store(data);
  for (uint64_t index = 1; index <= 5; ++index)
    write_snapshot(store, meta_of(index * 10, 1), "body");
  const auto files = store.list(); // 50, 40, 30, 20, 10
  {
    snapshot_reader being_sent = store.open(files[4]);
    const snapshot_pin pinned = store.pin(files[2]);
    const auto removed = store.retain(2);
    BOOST_REQUIRE_EQUAL(removed.size(), 1u);
    BOOST_CHECK_EQUAL(removed[0].index, 20u);
    BOOST_CHECK_EQUAL(store.list().size(), 4u);
    BOOST_CHECK_THROW(store.remove(files[4]), std::logic_error);
    // The reader still reads what it pinned.
    BOOST_CHECK(!being_sent.verify());
  }
  const auto removed = store.retain(2);
  BOOST_CHECK_EQUAL(removed.size(), 2u);
  std::vector<uint64_t> left;
  for (const auto& file : store.list())
    left.push_back(file.index);
  BOOST_CHECK((left == std::vector<uint64_t>{50, 40}));
  BOOST_CHECK_THROW(store.retain(0), std::logic_error);
  store.remove(store.list().back());
  BOOST_CHECK_EQUAL(store.list().size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_corrupt_header_is_refused_when_opened) {
  snapshot_store store(data);
  const snapshot_file file = write_snapshot(store, meta_of(8, 2), "body");
  const std::string good = read_bytes(file.path);
  auto refused = [&](const std::string& needle, const snapshot_file& which) {
    try {
      store.open(which);
      BOOST_ERROR("open accepted a corrupt header");
    } catch (const std::runtime_error& error) {
      BOOST_TEST_MESSAGE(error.what());
      BOOST_CHECK_MESSAGE(std::string(error.what()).find(needle) != std::string::npos,
                          error.what() << " lacks " << needle);
      BOOST_CHECK(std::string(error.what()).find(which.path) != std::string::npos);
    }
  };
  flip_byte(file.path, 0);
  refused("magic", file);
  write_bytes(file.path, good.substr(0, good.size() - 1));
  refused("body length", file);
  write_bytes(file.path, good.substr(0, 20));
  refused("only 20 bytes", file);
  // A file renamed to another snapshot's name.
  write_bytes(file.path, good);
  const snapshot_file renamed{
      9, 2, scratch_dir::file("snap-00000000000000000009-00000000000000000002.snap")};
  fs::rename(file.path, renamed.path);
  refused("name says index 9", renamed);
}

BOOST_AUTO_TEST_CASE(newest_valid_falls_back_only_when_the_log_covers_the_gap) {
  snapshot_store store(data);
  for (uint64_t index : {10, 20, 30})
    write_snapshot(store, meta_of(index, 1), random_bytes(500, index));
  {
    const snapshot_choice choice = store.newest_valid(1);
    BOOST_REQUIRE(choice.file);
    BOOST_CHECK_EQUAL(choice.file->index, 30u);
    BOOST_CHECK_EQUAL(choice.meta.membership, "members-at-30");
    BOOST_CHECK(choice.rejected.empty());
  }
  const std::string newest = store.list().front().path;
  flip_byte(newest, read_bytes(newest).size() - 100); // in the body
  {
    // The log starts at 15: snapshot 20 plus entries 21.. rebuild the state.
    const snapshot_choice choice = store.newest_valid(15);
    BOOST_REQUIRE(choice.file);
    BOOST_CHECK_EQUAL(choice.file->index, 20u);
    BOOST_REQUIRE_EQUAL(choice.rejected.size(), 1u);
    BOOST_CHECK_EQUAL(choice.rejected[0].file.index, 30u);
    BOOST_CHECK(choice.rejected[0].reason.find("CRC mismatch") != std::string::npos);
  }
  {
    // The log starts at 22: entry 21 is in no snapshot but the corrupt one: nothing usable.
    const snapshot_choice choice = store.newest_valid(22);
    BOOST_CHECK(!choice.file);
    BOOST_REQUIRE_EQUAL(choice.rejected.size(), 3u);
    BOOST_CHECK(choice.rejected[1].reason.find("too old") != std::string::npos);
    BOOST_CHECK(choice.rejected[1].reason.find("entries 21 to 21") != std::string::npos);
  }
  {
    // Exactly covered: the log starts right after snapshot 20.
    const snapshot_choice choice = store.newest_valid(21);
    BOOST_REQUIRE(choice.file);
    BOOST_CHECK_EQUAL(choice.file->index, 20u);
  }
  flip_byte(store.list()[1].path, 0); // snapshot 20's magic
  const snapshot_choice choice = store.newest_valid(1);
  BOOST_REQUIRE(choice.file);
  BOOST_CHECK_EQUAL(choice.file->index, 10u);
  BOOST_REQUIRE_EQUAL(choice.rejected.size(), 2u);
  BOOST_CHECK(choice.rejected[1].reason.find("magic") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_receiver_takes_chunks_only_in_order) {
  const snapshot_meta meta = meta_of(12, 3);
  const std::string bytes = encoded_snapshot(meta, random_bytes(10000, 4));
  snapshot_store store(data);
  snapshot_receiver receiver = store.receive(12, 3, bytes.size());
  BOOST_CHECK_EQUAL(receiver.size(), 0u);
  auto result = receiver.write(0, bytes.substr(0, 4000));
  BOOST_CHECK(result.accepted);
  BOOST_CHECK_EQUAL(result.size, 4000u);
  // A lost chunk: the next one is refused, with where to resume.
  result = receiver.write(6000, bytes.substr(6000, 2000));
  BOOST_CHECK(!result.accepted);
  BOOST_CHECK_EQUAL(result.size, 4000u);
  // A repeated chunk, and one running past the total size.
  BOOST_CHECK(!receiver.write(0, bytes.substr(0, 4000)).accepted);
  BOOST_CHECK(!receiver.write(4000, bytes.substr(4000) + "extra").accepted);
  BOOST_CHECK_THROW(receiver.finish(), std::logic_error);
  BOOST_CHECK(receiver.write(4000, bytes.substr(4000)).accepted);
  const auto finished = receiver.finish();
  BOOST_REQUIRE_MESSAGE(finished.file, finished.problem);
  BOOST_CHECK(read_bytes(finished.file->path) == bytes);
  BOOST_CHECK(
      names_in(snapshots) ==
      (std::vector<std::string>{"LOCK", "snap-00000000000000000012-00000000000000000003.snap"}));
  BOOST_CHECK(!store.pending());
}

BOOST_AUTO_TEST_CASE(a_received_file_that_is_corrupt_or_of_another_snapshot_is_discarded) {
  snapshot_store store(data);
  const snapshot_meta meta = meta_of(12, 3);
  std::string bytes = encoded_snapshot(meta, random_bytes(3000, 5));
  bytes[2000] = static_cast<char>(bytes[2000] ^ 1);
  for (const auto& [index, needle] : std::vector<std::pair<uint64_t, std::string>>{
           {12, "CRC mismatch"}, {13, "expected index 13"}}) {
    snapshot_receiver receiver = store.receive(index, 3, bytes.size());
    receiver.write(0, bytes);
    receiver.sync();
    const auto finished = receiver.finish();
    BOOST_CHECK(!finished.file);
    BOOST_CHECK_MESSAGE(finished.problem.find(needle) != std::string::npos, finished.problem);
    BOOST_CHECK(store.list().empty());
    BOOST_CHECK(names_in(snapshots) == std::vector<std::string>{"LOCK"});
    bytes[2000] = static_cast<char>(bytes[2000] ^ 1); // intact, but received as index 13
  }
}

BOOST_AUTO_TEST_CASE(an_interrupted_receive_resumes_at_its_durable_size_after_a_restart) {
  const snapshot_meta meta = meta_of(40, 6);
  const std::string bytes = encoded_snapshot(meta, random_bytes(20000, 6));
  {
    snapshot_store store(data);
    snapshot_receiver receiver = store.receive(40, 6, bytes.size());
    for (std::size_t offset = 0; offset < 9000; offset += 3000) {
      receiver.write(offset, bytes.substr(offset, 3000));
      receiver.sync();
    }
    receiver.write(9000, bytes.substr(9000, 3000)); // not synced: not acknowledged
    BOOST_CHECK_EQUAL(receiver.durable_size(), 9000u);
  }
  snapshot_store store(data);
  const auto pending = store.pending();
  BOOST_REQUIRE(pending);
  BOOST_CHECK_EQUAL(pending->index, 40u);
  BOOST_CHECK_EQUAL(pending->term, 6u);
  BOOST_CHECK_EQUAL(pending->total_size, bytes.size());
  BOOST_CHECK_EQUAL(pending->durable_size, 9000u);
  snapshot_receiver receiver = store.receive(40, 6, bytes.size());
  BOOST_CHECK_EQUAL(receiver.size(), 9000u);
  BOOST_CHECK(!receiver.write(12000, bytes.substr(12000, 1)).accepted);
  BOOST_CHECK(receiver.write(9000, bytes.substr(9000)).accepted);
  const auto finished = receiver.finish();
  BOOST_REQUIRE_MESSAGE(finished.file, finished.problem);
  snapshot_reader reader = store.open(*finished.file);
  BOOST_CHECK(!reader.verify());
  BOOST_CHECK(reader.meta().membership == meta.membership);
}

BOOST_AUTO_TEST_CASE(a_new_install_discards_another_partial_receive) {
  const std::string old_bytes = encoded_snapshot(meta_of(7, 3), random_bytes(5000, 7));
  const std::string new_bytes = encoded_snapshot(meta_of(9, 4), random_bytes(5000, 8));
  snapshot_store store(data);
  {
    snapshot_receiver receiver = store.receive(7, 3, old_bytes.size());
    receiver.write(0, old_bytes.substr(0, 2000));
    receiver.sync();
  }
  BOOST_CHECK_EQUAL(store.pending()->index, 7u);
  snapshot_receiver receiver = store.receive(9, 4, new_bytes.size());
  BOOST_CHECK_EQUAL(receiver.size(), 0u);
  BOOST_CHECK_EQUAL(store.pending()->index, 9u);
  for (const auto& name : names_in(snapshots))
    BOOST_CHECK_MESSAGE(name.find("00000000000000000007") == std::string::npos, name);
  // The same snapshot with another size is another receive too.
  snapshot_receiver other = store.receive(9, 4, new_bytes.size() + 1);
  BOOST_CHECK_EQUAL(store.pending()->total_size, new_bytes.size() + 1);
}

BOOST_AUTO_TEST_CASE(a_receive_resumes_its_own_partial_even_when_a_newer_one_is_left) {
  const std::string bytes = encoded_snapshot(meta_of(7, 3), random_bytes(5000, 9));
  const std::string size = "-" + std::string(20 - std::to_string(bytes.size()).size(), '0') +
                           std::to_string(bytes.size());
  const std::string own = "recv-00000000000000000007-00000000000000000003" + size;
  const std::string newer = "recv-00000000000000000009-00000000000000000004" + size;
  {
    snapshot_store store(data);
    snapshot_receiver receiver = store.receive(7, 3, bytes.size());
    receiver.write(0, bytes.substr(0, 2000));
    receiver.sync();
  }
  // What only an unusual crash leaves: two partial receives.
  fs::copy_file(file(own + ".part"), file(newer + ".part"));
  fs::copy_file(file(own + ".prog"), file(newer + ".prog"));
  snapshot_store store(data);
  BOOST_CHECK_EQUAL(store.pending()->index, 9u);
  snapshot_receiver receiver = store.receive(7, 3, bytes.size());
  BOOST_CHECK_EQUAL(receiver.size(), 2000u);
  BOOST_CHECK(!fs::exists(file(newer + ".part")));
  BOOST_CHECK(!fs::exists(file(newer + ".prog")));
  BOOST_CHECK_EQUAL(store.pending()->index, 7u);
}

BOOST_AUTO_TEST_CASE(a_second_store_on_the_same_directory_is_refused) {
  snapshot_store store(data);
  try {
    snapshot_store second(data);
    BOOST_ERROR("a second store locked the same directory");
  } catch (const std::runtime_error& error) {
    BOOST_CHECK(std::string(error.what()).find("in use") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(file_storage_ignores_the_snapshot_directory) {
  {
    file_storage storage(data);
    storage.recover();
    persist_request request;
    request.has_hard_state = true;
    request.state = hard_state{1, ""};
    request.entries.push_back(log_entry{1, 1, entry_kind::noop, ""});
    storage.write(request);
    storage.sync();
  }
  {
    snapshot_store store(data);
    write_snapshot(store, meta_of(1, 1), "state");
  }
  file_storage storage(data);
  BOOST_CHECK_EQUAL(storage.recover().entries.size(), 1u);
  BOOST_CHECK(storage.recovery_report().empty());
}

BOOST_AUTO_TEST_SUITE_END()
