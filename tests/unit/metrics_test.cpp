// The Prometheus text writer and the node's metric families (net/metrics.hpp). promtool checks
// a real node's output in tests/e2e/metrics_test.sh; here the format rules are pinned exactly.
#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include <sys/statvfs.h>

#include "net/metrics.hpp"

using namespace infinity;
using namespace infinity::metrics;

namespace {

/// Every sample line of `text` as name{labels} -> value text.
std::map<std::string, std::string> samples_of(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

} // namespace

BOOST_AUTO_TEST_CASE(writer_emits_help_type_and_samples_exactly) {
  metrics_writer w;
  w.family("demo_requests_total", "counter", "Requests.\nSecond line with a \\ backslash.");
  w.sample("demo_requests_total", {{"route", "/get"}, {"code", "200"}}, 3);
  w.sample("demo_requests_total", {{"route", "a\"b\\c\nd"}, {"code", "500"}}, 1);
  w.family("demo_temperature", "gauge", "A gauge.");
  w.sample("demo_temperature", {}, -2.5);
  BOOST_TEST(w.text() == "# HELP demo_requests_total Requests.\\nSecond line with a \\\\ "
                         "backslash.\n"
                         "# TYPE demo_requests_total counter\n"
                         "demo_requests_total{route=\"/get\",code=\"200\"} 3\n"
                         "demo_requests_total{route=\"a\\\"b\\\\c\\nd\",code=\"500\"} 1\n"
                         "# HELP demo_temperature A gauge.\n"
                         "# TYPE demo_temperature gauge\n"
                         "demo_temperature -2.5\n");
}

BOOST_AUTO_TEST_CASE(values_are_formatted_as_the_format_spells_them) {
  BOOST_TEST(metrics_writer::format_value(0) == "0");
  BOOST_TEST(metrics_writer::format_value(42) == "42");
  BOOST_TEST(metrics_writer::format_value(18446744073709551615.0) != ""); // huge: no crash
  BOOST_TEST(metrics_writer::format_value(9007199254740991.0) == "9007199254740991");
  BOOST_TEST(metrics_writer::format_value(0.1) == "0.1");
  BOOST_TEST(metrics_writer::format_value(0.00025) == "0.00025");
  BOOST_TEST(metrics_writer::format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  BOOST_TEST(metrics_writer::format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  BOOST_TEST(metrics_writer::format_value(std::nan("")) == "NaN");
  // Round trip: what is written reads back as the same double.
  for (double v : {1.0 / 3, 123456.789, 1e-9, 2.5e21})
    BOOST_TEST(std::stod(metrics_writer::format_value(v)) == v);
}

BOOST_AUTO_TEST_CASE(writer_refuses_what_prometheus_would_reject) {
  metrics_writer w;
  BOOST_CHECK_THROW(w.sample("x", {}, 1), std::logic_error); // no family yet
  BOOST_CHECK_THROW(w.family("9starts_with_digit", "gauge", "h"), std::invalid_argument);
  BOOST_CHECK_THROW(w.family("has-dash", "gauge", "h"), std::invalid_argument);
  BOOST_CHECK_THROW(w.family("requests", "counter", "h"), std::invalid_argument); // no _total
  BOOST_CHECK_THROW(w.family("x", "summary", "h"), std::invalid_argument);
  w.family("ok_total", "counter", "h");
  BOOST_CHECK_THROW(w.sample("other_total", {}, 1), std::invalid_argument);
  BOOST_CHECK_THROW(w.sample("ok_total", {{"__reserved", "v"}}, 1), std::invalid_argument);
  BOOST_CHECK_THROW(w.sample("ok_total", {{"bad-label", "v"}}, 1), std::invalid_argument);
  BOOST_CHECK_THROW(w.family("ok_total", "counter", "again"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_with_inf_sum_and_count) {
  latency_histogram h;
  h.observe_ns(50'000);         // 50 µs: first bucket
  h.observe_ns(100'000);        // exactly 100 µs: still le="0.0001" (upper bounds inclusive)
  h.observe_ns(3'000'000);      // 3 ms: le="0.005"
  h.observe_ns(60'000'000'000); // a minute: only +Inf
  auto snap = h.read();
  BOOST_TEST(snap.count == 4u);
  BOOST_TEST(std::fabs(snap.sum_seconds - 60.00315) < 1e-9);
  BOOST_TEST(snap.cumulative.front() == 2u);
  BOOST_TEST(snap.cumulative.back() == 4u);
  for (std::size_t i = 1; i < snap.cumulative.size(); ++i)
    BOOST_TEST(snap.cumulative[i] >= snap.cumulative[i - 1]);

  metrics_writer w;
  w.family("demo_seconds", "histogram", "Demo.");
  w.histogram({{"route", "/x"}}, snap);
  auto samples = samples_of(w.text());
  BOOST_TEST(samples.at(R"(demo_seconds_bucket{route="/x",le="0.0001"})") == "2");
  BOOST_TEST(samples.at(R"(demo_seconds_bucket{route="/x",le="0.0025"})") == "2");
  BOOST_TEST(samples.at(R"(demo_seconds_bucket{route="/x",le="0.005"})") == "3");
  BOOST_TEST(samples.at(R"(demo_seconds_bucket{route="/x",le="10"})") == "3");
  BOOST_TEST(samples.at(R"(demo_seconds_bucket{route="/x",le="+Inf"})") == "4");
  BOOST_TEST(samples.at(R"(demo_seconds_count{route="/x"})") == "4");
  BOOST_TEST(samples.at(R"(demo_seconds_sum{route="/x"})") == "60.00315");
}

BOOST_AUTO_TEST_CASE(routes_are_a_closed_set) {
  BOOST_TEST(to_string(route_of("/get")) == std::string{"/get"});
  BOOST_TEST(to_string(route_of("/transfer-leader")) == std::string{"/transfer-leader"});
  BOOST_TEST((route_of("/metrics") == route::metrics));
  BOOST_TEST((route_of("/get/") == route::other)); // a client cannot mint label values
  BOOST_TEST((route_of("/random-path-1234") == route::other));
  BOOST_TEST((route_of("") == route::other));
}

BOOST_AUTO_TEST_CASE(node_series_carry_status_counters_and_process_facts) {
  raft_status status;
  status.id = "n1";
  status.cluster_id = "c\"1";
  status.role = raft_role::leader;
  status.leader_id = "n1";
  status.term = 7;
  status.commit_index = 40;
  status.applied_index = 39;
  status.last_log_index = 41;
  status.leader_commit = 40;
  status.members = {"n1", "n2", "n3"};
  status.leader_changes = 3;
  status.proposals_committed = 25;
  status.proposals_failed = 2;
  status.log_entries = 41;
  status.snapshot_index = 30;
  status.log_first_index = 12;
  status.appends_sent = 10;
  status.entries_sent = 35;
  status.read_rounds = 4;
  status.reads_served = 12;
  member_progress p2;
  p2.id = "n2";
  p2.match_index = 41;
  p2.connected = true;
  p2.last_contact_ms = 20;
  member_progress p3;
  p3.id = "n3";
  p3.match_index = 30;
  p3.lag = 11;
  status.progress = {p2, p3};

  node_metrics counters;
  counters.record_request(route::get, 200, 2'000'000);
  counters.record_request(route::get, 200, 4'000'000);
  counters.record_request(route::set, 503, 1'000'000);
  counters.record_request(route::set, 418, 1'000'000); // untracked code: "other"
  counters.open_connections = 5;
  counters.connections_accepted = 9;
  counters.fsync_seconds.observe_ns(300'000);
  counters.entry_bytes_written = 1234;

  process_facts process;
  process.resident_bytes = 1 << 20;
  process.open_fds = 17;

  auto text = render_metrics(status, &counters, process);
  auto samples = samples_of(text);
  BOOST_TEST(samples.at("infinity_raft_term") == "7");
  BOOST_TEST(samples.at(R"(infinity_raft_role{role="leader"})") == "1");
  BOOST_TEST(samples.at(R"(infinity_raft_role{role="follower"})") == "0");
  BOOST_TEST(samples.at("infinity_raft_leader_changes_total") == "3");
  BOOST_TEST(samples.at("infinity_raft_commit_index") == "40");
  BOOST_TEST(samples.at("infinity_raft_applied_index") == "39");
  BOOST_TEST(samples.at("infinity_raft_last_log_index") == "41");
  BOOST_TEST(samples.at("infinity_raft_proposals_committed_total") == "25");
  BOOST_TEST(samples.at("infinity_raft_proposals_failed_total") == "2");
  BOOST_TEST(samples.at("infinity_raft_log_entries") == "41");
  BOOST_TEST(samples.at("infinity_raft_snapshot_index") == "30");
  BOOST_TEST(samples.at("infinity_raft_log_first_index") == "12");
  BOOST_TEST(samples.at("infinity_raft_appends_sent_total") == "10");
  BOOST_TEST(samples.at("infinity_raft_append_entries_sent_total") == "35");
  BOOST_TEST(samples.at("infinity_raft_read_index_rounds_total") == "4");
  BOOST_TEST(samples.at("infinity_raft_read_index_reads_total") == "12");
  BOOST_TEST(samples.at(R"(infinity_raft_peer_match_index{peer="n3"})") == "30");
  BOOST_TEST(samples.at(R"(infinity_raft_peer_lag_entries{peer="n3"})") == "11");
  BOOST_TEST(samples.at(R"(infinity_raft_peer_connected{peer="n2"})") == "1");
  BOOST_TEST(samples.at(R"(infinity_raft_peer_connected{peer="n3"})") == "0");
  BOOST_TEST(samples.at(R"(infinity_raft_peer_last_contact_seconds{peer="n2"})") == "0.02");
  BOOST_TEST(samples.at(R"(infinity_http_requests_total{route="/get",code="200"})") == "2");
  BOOST_TEST(samples.at(R"(infinity_http_requests_total{route="/set",code="503"})") == "1");
  BOOST_TEST(samples.at(R"(infinity_http_requests_total{route="/set",code="other"})") == "1");
  BOOST_TEST(samples.count(R"(infinity_http_requests_total{route="/status",code="200"})") == 0u);
  BOOST_TEST(samples.at(R"(infinity_http_request_duration_seconds_count{route="/get"})") == "2");
  BOOST_TEST(samples.at(R"(infinity_http_request_duration_seconds_sum{route="/get"})") == "0.006");
  BOOST_TEST(samples.at("infinity_http_open_connections") == "5");
  BOOST_TEST(samples.at("infinity_http_connections_accepted_total") == "9");
  BOOST_TEST(samples.at(R"(infinity_storage_fsync_duration_seconds_bucket{le="0.0005"})") == "1");
  BOOST_TEST(samples.at("infinity_storage_entry_bytes_written_total") == "1234");
  BOOST_TEST(samples.at("process_resident_memory_bytes") == "1048576");
  BOOST_TEST(samples.at("process_open_fds") == "17");
  BOOST_TEST(samples.count("process_cpu_seconds_total") == 0u); // unknown (-1): left out
  BOOST_TEST(text.find(R"(cluster_id="c\"1")") != std::string::npos);
  // Each family is described exactly once.
  BOOST_TEST(count_of(text, "# TYPE infinity_http_requests_total counter\n") == 1u);
  BOOST_TEST(count_of(text, "# TYPE infinity_http_request_duration_seconds histogram\n") == 1u);

  // Without counters (e.g. a test server) the Raft and process series remain.
  auto bare = render_metrics(status, nullptr, process);
  BOOST_TEST(bare.find("infinity_raft_term 7") != std::string::npos);
  BOOST_TEST(bare.find("infinity_http_") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(process_facts_come_from_proc) {
  auto facts = read_process_facts();
  BOOST_TEST(facts.resident_bytes > 0);
  BOOST_TEST(facts.open_fds >= 3); // at least stdin, stdout, stderr
  BOOST_TEST(facts.cpu_seconds >= 0);
  BOOST_TEST(facts.start_time_seconds > 1.6e9); // after 2020
  BOOST_TEST(facts.max_fds >= facts.open_fds);
}

BOOST_AUTO_TEST_CASE(storage_problems_are_named) {
  node_metrics counters;
  auto dir = std::filesystem::temp_directory_path().string();
  BOOST_TEST(storage_problem(dir, counters, std::chrono::seconds(5)) == "");
  auto missing = storage_problem("/nonexistent/infinitystore", counters, std::chrono::seconds(5));
  BOOST_TEST(missing.find("cannot stat /nonexistent/infinitystore") == 0u, missing);
  // A sync in progress for a short while is normal; one that has hung is a problem.
  counters.sync_started_ns = steady_now_ns() - 1'000'000'000;
  BOOST_TEST(storage_problem(dir, counters, std::chrono::seconds(5)) == "");
  counters.sync_started_ns = steady_now_ns() - 7'000'000'000;
  auto stalled = storage_problem(dir, counters, std::chrono::seconds(5));
  BOOST_TEST(stalled.find("has not returned for 7 s") != std::string::npos, stalled);
  counters.sync_started_ns = 0;
  // A read-only file system, where this machine has one (containers often mount /sys so).
  struct statvfs fs {};
  if (::statvfs("/sys", &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0)
    BOOST_TEST(storage_problem("/sys", counters, std::chrono::seconds(5)).find("read-only") !=
               std::string::npos);
}
