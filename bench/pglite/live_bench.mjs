// PGlite live-query baseline for `python -m bench` (embedded: Postgres in WASM, in this process).
// Usage: node live_bench.mjs '{"observe":true,"writes":100,"warmup":10,"scale":[100,1000],
//                               "channels":1000,"scaleWrites":30,"budgetMs":20000}'
// In memory (no fsync): the embedded case at its fastest.
// Prints one JSON object on stdout: {"version", "observe": {...}, "scale": [{...}, ...]}.
// commit->seen = the INSERT's promise resolved -> the live callback whose rows list the new id.
import { PGlite } from "@electric-sql/pglite";
import { live } from "@electric-sql/pglite/live";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";

const options = JSON.parse(process.argv[2] ?? "{}");
const LATEST = "SELECT id, channel, body FROM messages WHERE channel = $1 ORDER BY id DESC LIMIT 10";

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  if (!sorted.length) return { p50: null, p99: null, max: null, n: 0 };
  const mid = sorted.length >> 1;
  const p50 = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { p50, p99: percentile(sorted, 99), max: sorted[sorted.length - 1], n: sorted.length };
}

async function freshDb() {
  const db = await PGlite.create({ extensions: { live } });
  await db.exec(`
    CREATE TABLE messages (id serial PRIMARY KEY, channel text NOT NULL, body text NOT NULL);
    CREATE INDEX by_channel ON messages (channel, id);
  `);
  return db;
}

// A watcher: per live query, the first time each id appears, and how many callbacks ran.
function watch(seen, stats) {
  return (results) => {
    const now = performance.now();
    stats.callbacks += 1;
    for (const row of results.rows) if (!seen.has(row.id)) seen.set(row.id, now);
  };
}

async function waitFor(predicate, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  return predicate();
}

async function insert(db, channel, body) {
  const { rows } = await db.query("INSERT INTO messages (channel, body) VALUES ($1, $2) RETURNING id", [channel, body]);
  return { id: rows[0].id, committed: performance.now() };
}

async function observe(writes, warmup) {
  const db = await freshDb();
  const seen = new Map();
  const stats = { callbacks: 0 };
  const query = await db.live.query(LATEST, ["general"], watch(seen, stats));
  for (let i = 0; i < warmup; i++) {
    const { id } = await insert(db, "general", `warm${i}`);
    await waitFor(() => seen.has(id), 5000);
  }
  const latencies = [];
  const roundTrips = [];
  let missed = 0;
  const started = performance.now();
  for (let i = 0; i < writes; i++) {
    const sent = performance.now();
    const { id, committed } = await insert(db, "general", `m${i}`);
    roundTrips.push(committed - sent);
    if (await waitFor(() => seen.has(id), 5000)) latencies.push(Math.max(0, seen.get(id) - committed));
    else missed += 1;
  }
  const elapsed = (performance.now() - started) / 1000;
  // Throughput without anyone waiting for the live query: inserts back to back.
  const burst = Math.max(writes, 200);
  const burstStart = performance.now();
  for (let i = 0; i < burst; i++) await insert(db, "general", `b${i}`);
  const insertsPerS = burst / ((performance.now() - burstStart) / 1000);
  await query.unsubscribe();
  await db.close();
  return {
    commitToSeen: summary(latencies),
    insert: summary(roundTrips),
    observedWritesPerS: writes / elapsed,
    insertsPerS,
    missed,
  };
}

async function scale(n, channels, writes, budgetMs) {
  const db = await freshDb();
  const names = Array.from({ length: Math.min(n, channels) }, (_, i) => `c${i}`);
  const watchers = [];
  const stats = { callbacks: 0 };
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < n && performance.now() < deadline; i++) {
    const seen = new Map();
    const query = await db.live.query(LATEST, [names[i % names.length]], watch(seen, stats));
    watchers.push({ channel: names[i % names.length], seen, query });
  }
  const byChannel = new Map();
  for (const w of watchers) (byChannel.get(w.channel) ?? byChannel.set(w.channel, []).get(w.channel)).push(w);
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const latencies = [];
  let missed = 0;
  const callbacksBefore = stats.callbacks;
  const started = performance.now();
  for (let i = 0; i < writes; i++) {
    const channel = names[Math.floor(random() * names.length)];
    const { id, committed } = await insert(db, channel, `s${i}`);
    const mine = byChannel.get(channel) ?? [];
    if (await waitFor(() => mine.every((w) => w.seen.has(id)), 30000)) {
      for (const w of mine) latencies.push(Math.max(0, w.seen.get(id) - committed));
    } else missed += 1;
  }
  const elapsed = (performance.now() - started) / 1000;
  // Let trailing callbacks of the last write land before counting.
  await new Promise((r) => setTimeout(r, 50));
  const result = {
    requested: n,
    reached: watchers.length,
    channels: names.length,
    commits: writes,
    callbacksPerCommit: (stats.callbacks - callbacksBefore) / writes,
    commitToSeen: summary(latencies),
    writesPerS: writes / elapsed,
    missed,
  };
  await db.close();
  return result;
}

const version = JSON.parse(readFileSync(new URL("./node_modules/@electric-sql/pglite/package.json", import.meta.url))).version;
const out = { version, observe: null, scale: [] };
if (options.observe !== false) out.observe = await observe(options.writes ?? 100, options.warmup ?? 10);
for (const n of options.scale ?? []) {
  out.scale.push(await scale(n, options.channels ?? 1000, options.scaleWrites ?? 30, options.budgetMs ?? 20000));
}
process.stdout.write(JSON.stringify(out) + "\n");
