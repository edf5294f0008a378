// The live dashboard served at GET /ui: one page, compiled in, nothing fetched from elsewhere.
//
// It polls this node's /status and /metrics once a second, and the leader's /status (CORS) for
// its view of every follower (match index, lag, connection). The timeline is what the page saw
// change between polls (leader, term, members, connections), newest first. A token for nodes
// that require one comes from the URL fragment (`/ui#token=...`, never sent to the server in
// the URL); cross-node requests then fail preflight and the page shows this node's view only.
#include "net/http_api.hpp"

namespace infinity::http {

namespace {

constexpr std::string_view page = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>InfinityStore cluster</title>
<style>
:root{--bg:#0f1420;--card:#182033;--fg:#e6e9f0;--dim:#8a93a8;--lead:#f5b942;--ok:#3ecf8e;--bad:#ef5b5b;--mid:#5b8def}
*{box-sizing:border-box}
body{margin:0;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{padding:12px 16px;display:flex;flex-wrap:wrap;gap:8px 20px;align-items:baseline;border-bottom:1px solid #263049}
h1{font-size:18px;margin:0}
.dim{color:var(--dim)}
main{padding:12px 16px;display:grid;gap:16px}
#members{display:flex;flex-wrap:wrap;gap:12px}
.member{background:var(--card);border-radius:10px;padding:12px;min-width:200px;flex:1 1 200px;border:2px solid transparent}
.member.leader{border-color:var(--lead)}
.member.down{opacity:.55}
.member h2{margin:0 0 6px;font-size:16px;display:flex;justify-content:space-between;gap:8px}
.badge{font-size:12px;padding:1px 8px;border-radius:10px;background:#263049;text-transform:uppercase;letter-spacing:.04em}
.badge.leader{background:var(--lead);color:#1b1b1b}
.badge.candidate,.badge.pre_candidate{background:var(--mid)}
.badge.unknown{background:#444}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0}
dt{color:var(--dim)}dd{margin:0;font-variant-numeric:tabular-nums}
.ok{color:var(--ok)}.bad{color:var(--bad)}
.bar{height:6px;background:#263049;border-radius:3px;margin-top:8px;overflow:hidden}
.bar>div{height:100%;background:var(--ok)}
section{background:var(--card);border-radius:10px;padding:12px}
section h3{margin:0 0 8px;font-size:14px;color:var(--dim);font-weight:600;text-transform:uppercase;letter-spacing:.05em}
#stats{display:flex;flex-wrap:wrap;gap:8px 24px}
#stats b{font-size:22px;font-variant-numeric:tabular-nums}
#timeline{list-style:none;margin:0;padding:0;max-height:260px;overflow:auto;font-size:14px}
#timeline li{padding:3px 0;border-bottom:1px solid #263049}
#timeline time{color:var(--dim);margin-right:8px;font-variant-numeric:tabular-nums}
svg{width:100%;height:40px}
</style>
</head>
<body>
<header>
<h1>InfinityStore</h1>
<span>leader: <b id="leader">?</b></span>
<span>term: <b id="term">?</b></span>
<span class="dim">cluster <span id="cluster">?</span></span>
<span class="dim">via <span id="via"></span> · <span id="updated">connecting…</span></span>
</header>
<main>
<div id="members"></div>
<section><h3>Client requests on this node</h3>
<div id="stats"><span><b id="rate">–</b> req/s</span><span><b id="latency">–</b> ms avg</span>
<span><b id="leaderchanges">–</b> leader changes seen</span><span><b id="fds">–</b> open fds</span>
<span><b id="rss">–</b> MiB resident</span></div>
<svg id="spark" viewBox="0 0 120 40" preserveAspectRatio="none"><polyline id="sparkline" fill="none" stroke="#5b8def" stroke-width="1.5" points=""/></svg>
</section>
<section><h3>Timeline</h3><ul id="timeline"></ul></section>
</main>
<script>
"use strict";
const token = (location.hash.match(/token=([^&]+)/) || [])[1];
const headers = token ? {Authorization: "Bearer " + decodeURIComponent(token)} : {};
const origin = location.host;
const endpoints = [origin];   // HTTP addresses seen (this node, then leaders), for failover
let last = null;              // previous poll's picture, to detect changes
let lastMetrics = null;
const rates = [];
const $ = id => document.getElementById(id);

async function getJson(host, path) {
  const r = await fetch(location.protocol + "//" + host + path,
                        {headers: host === origin ? headers : {}, cache: "no-store",
                         signal: AbortSignal.timeout(1500)});
  if (!r.ok && r.status !== 503) throw new Error(host + path + ": " + r.status);
  return r.json();
}

function event(text) {
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.textContent = new Date().toLocaleTimeString();
  li.append(t, document.createTextNode(text));
  $("timeline").prepend(li);
  while ($("timeline").children.length > 50) $("timeline").lastChild.remove();
}

async function status() {
  for (const host of endpoints) {
    try { const s = await getJson(host, "/status"); if (s.id) return [host, s]; } catch (e) {}
  }
  return [null, null];
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render(self, lead) {
  const leader = (lead && lead.role === "leader") ? lead.id : self.leader;
  const learners = new Set(self.learners || []);
  const ids = [...new Set([...(self.members || []), ...(self.learners || []), self.id])].sort();
  const progress = new Map(((lead && lead.progress) || []).map(p => [p.id, p]));
  const box = $("members");
  box.replaceChildren();
  for (const id of ids) {
    let role = id === leader ? "leader" : learners.has(id) ? "learner" : "follower";
    if (id === self.id) role = self.role === "follower" && learners.has(id) ? "learner" : self.role;
    const p = progress.get(id);
    const up = id === self.id || id === leader || (p && p.connected);
    // A member the leader cannot reach: its role is whatever it last was, which we cannot know.
    if (p && !p.connected) role = "unreachable";
    const known = (id === self.id || id === leader || p) && role !== "unreachable";
    const card = el("div", "member" + (role === "leader" ? " leader" : "") + (up ? "" : " down"));
    card.dataset.member = id;
    card.dataset.role = known || role === "unreachable" ? role : "unknown";
    const h = el("h2", "", id);
    h.append(el("span", "badge " + (known ? role : "unknown"),
                known ? role : role === "unreachable" ? "unreachable" : "?"));
    card.append(h);
    const dl = el("dl");
    const row = (k, v, cls) => { dl.append(el("dt", "", k), el("dd", cls || "", String(v))); };
    const src = id === self.id ? self : (id === leader && lead) ? lead : null;
    row("term", src ? src.term : (lead ? lead.term : self.term));
    if (src) { row("commit", src.commit_index); row("applied", src.applied_index); }
    else if (p) row("match", p.match_index);
    const lag = id === leader ? 0 : p ? p.lag
              : id === self.id ? Math.max(0, (self.leader_commit_index || 0) - self.applied_index) : null;
    if (lag !== null) row("lag", lag, !up ? "dim" : lag > 100 ? "bad" : "ok");
    if (id === self.id) row("connection", "this node", "ok");
    else if (id === leader) row("connection", "leader", "ok");
    else if (p) row("connection", p.connected ? "up, " + p.last_contact_ms + " ms ago" : "down",
                    p.connected ? "ok" : "bad");
    else row("connection", "unknown", "dim");
    card.append(dl);
    const commit = (lead || self).commit_index || 0;
    const have = src ? src.applied_index : p ? p.match_index : 0;
    const bar = el("div", "bar"); const fill = el("div");
    fill.style.width = (commit ? Math.min(100, 100 * have / commit) : 100) + "%";
    bar.append(fill); card.append(bar);
    box.append(card);
  }
  $("leader").textContent = leader || "none";
  $("term").textContent = (lead || self).term;
  $("cluster").textContent = self.cluster_id || "?";
  const picture = {leader: leader || "", term: (lead || self).term, ids: ids.join(","),
                   conn: [...progress.values()].map(p => p.id + (p.connected ? "+" : "-")).join(",")};
  if (last) {
    if (picture.leader !== last.leader)
      event(picture.leader ? "leader is now " + picture.leader + " (term " + picture.term + ")"
                           : "leader lost (was " + last.leader + ")");
    else if (picture.term !== last.term) event("term " + picture.term);
    if (picture.ids !== last.ids) {
      const before = new Set(last.ids.split(",")), now = new Set(ids);
      for (const id of now) if (!before.has(id)) event(id + " joined");
      for (const id of before) if (!now.has(id)) event(id + " left");
    }
    if (picture.conn !== last.conn && picture.leader === last.leader)
      for (const p of progress.values())
        if (!last.conn.split(",").includes(p.id + (p.connected ? "+" : "-")))
          event(p.id + (p.connected ? " connected" : " disconnected") + " (seen by the leader)");
  } else {
    event("watching " + self.id + ": leader " + (leader || "none") + ", term " + picture.term);
  }
  last = picture;
}

// The sum of a series' samples; `skip` leaves out lines it matches.
function metric(text, name, skip) {
  let sum = 0, seen = false;
  for (const line of text.split("\n"))
    if ((line.startsWith(name + " ") || line.startsWith(name + "{")) && !(skip && skip.test(line))) {
      sum += parseFloat(line.slice(line.lastIndexOf(" ") + 1)); seen = true;
    }
  return seen ? sum : null;
}

async function metrics(host) {
  const r = await fetch(location.protocol + "//" + host + "/metrics",
                        {headers: host === origin ? headers : {}, cache: "no-store",
                         signal: AbortSignal.timeout(1500)});
  if (!r.ok) return;
  const text = await r.text();
  // Client traffic only: this page's own polls and probes would otherwise dominate an idle node.
  const own = /route="\/(status|metrics|ui|health|ready)"/;
  const now = {t: performance.now(), n: metric(text, "infinity_http_requests_total", own) || 0,
               s: metric(text, "infinity_http_request_duration_seconds_sum", own) || 0,
               c: metric(text, "infinity_http_request_duration_seconds_count", own) || 0};
  if (lastMetrics && now.n >= lastMetrics.n) {
    const dt = (now.t - lastMetrics.t) / 1000, dn = now.c - lastMetrics.c;
    const rate = (now.n - lastMetrics.n) / dt;
    $("rate").textContent = rate.toFixed(1);
    $("latency").textContent = dn > 0 ? ((now.s - lastMetrics.s) / dn * 1000).toFixed(2) : "–";
    rates.push(rate); if (rates.length > 120) rates.shift();
    const max = Math.max(1, ...rates);
    $("sparkline").setAttribute("points",
      rates.map((v, i) => (i * 120 / Math.max(1, rates.length - 1)).toFixed(1) + "," +
                          (39 - 38 * v / max).toFixed(1)).join(" "));
  }
  lastMetrics = now;
  const lc = metric(text, "infinity_raft_leader_changes_total");
  if (lc !== null) $("leaderchanges").textContent = lc;
  const fds = metric(text, "process_open_fds");
  if (fds !== null) $("fds").textContent = fds;
  const rss = metric(text, "process_resident_memory_bytes");
  if (rss !== null) $("rss").textContent = (rss / 1048576).toFixed(1);
}

let wasDown = false;
async function poll() {
  const [host, self] = await status();
  if (!self) {
    if (!wasDown) event("no node answers (" + endpoints.join(", ") + ")");
    wasDown = true;
    $("updated").textContent = "unreachable";
    document.querySelectorAll(".member").forEach(m => m.classList.add("down"));
    return;
  }
  if (wasDown) event("reconnected via " + host);
  wasDown = false;
  if (self.leader_http && !endpoints.includes(self.leader_http)) endpoints.push(self.leader_http);
  let lead = self.role === "leader" ? self : null;
  if (!lead && self.leader_http) {
    try { const s = await getJson(self.leader_http, "/status"); if (s.role === "leader") lead = s; }
    catch (e) {}
  }
  render(self, lead);
  $("via").textContent = host + (host === origin ? "" : " (this page's node is down)");
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  try { await metrics(host); } catch (e) {}
}

async function loop() {
  const started = performance.now();
  try { await poll(); } catch (e) { $("updated").textContent = "error: " + e.message; }
  setTimeout(loop, Math.max(100, 1000 - (performance.now() - started)));
}
loop();
</script>
</body>
</html>
)PAGE";

} // namespace

std::string_view ui_page() {
  return page;
}

} // namespace infinity::http
