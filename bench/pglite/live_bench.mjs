// PGlite live-query baseline for `python -m bench` (embedded: Postgres in WASM, in this process).
// Usage: node live_bench.mjs '{"observe":true,"writes":100,"warmup":10,"scale":[100,1000],
//                               "channels":1000,"scaleWrites":30,"budgetMs":20000,
//                               "fanOut":[1,100,1000],"fanOutWrites":3,"others":200,
//                               "throughput":{"inserts":1000,"accounts":100,
//                                             "warmup":{"rounds":500,"maxMs":5000},
//                                             "transfers":[{"alpha":0,"pairs":[3,7,...]}]}}'
// "warmup" is the number of unmeasured writes of observe and of fan-out (one run does either).
// In memory (no fsync): the embedded case at its fastest.
// Prints one JSON object on stdout:
//   {"version", "observe": {...}, "scale": [{...}, ...], "fanOut": [{...}, ...], "throughput": {...}}.
// commit->seen = the INSERT's promise resolved -> the live callback whose rows list the new id.
import { PGlite } from "@electric-sql/pglite";
import { live } from "@electric-sql/pglite/live";
import { performance } from "node:perf_hooks";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Options as the first argument, or else on stdin (as bench/baselines/pglite.py sends them).
const options = JSON.parse(process.argv[2] ?? (readFileSync(0, "utf8") || "{}"));
const version = JSON.parse(readFileSync(new URL("./node_modules/@electric-sql/pglite/package.json", import.meta.url))).version;
// A freshly initialised, empty data directory, kept between runs: initdb takes seconds on one
// core, loading its dump well under one. Same files either way, so the measurements are alike.
const PRISTINE = join(tmpdir(), `reactive-bench-pglite-${version}.tar.gz`);
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

async function pristineDb() {
  try {
    const dump = new Blob([readFileSync(PRISTINE)], { type: "application/x-gzip" });
    return await PGlite.create({ extensions: { live }, loadDataDir: dump });
  } catch {
    // No dump yet (or a bad one): initdb, then keep its dump for next time.
    const db = await PGlite.create({ extensions: { live } });
    const partial = `${PRISTINE}.${process.pid}`;
    writeFileSync(partial, Buffer.from(await (await db.dumpDataDir("gzip")).arrayBuffer()));
    renameSync(partial, PRISTINE);
    return db;
  }
}

async function freshDb() {
  const db = await pristineDb();
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

// fan-out: per step, n live queries on the same SQL (one channel) while `others` live queries
// on other channels stay open, as in the server's fan-out step; per write, the INSERT resolved
// -> the last of the n callbacks that lists the new id. PGlite shares nothing between identical
// live queries. One database for all steps (creating one takes seconds); each step's queries are
// dropped before the next.
async function fanOut(sizes, writes, others, warmup) {
  const db = await freshDb();
  const stats = { callbacks: 0 };
  for (let i = 0; i < others; i++) await db.live.query(LATEST, [`other${i}`], watch(new Map(), stats));
  // Unmeasured writes that re-run every live query: warms up the WASM code of the re-runs.
  for (let i = 0; i < warmup; i++) {
    const before = stats.callbacks;
    await insert(db, "warm", `w${i}`);
    await waitFor(() => stats.callbacks >= before + others, 30000);
  }
  const steps = [];
  for (const n of sizes) steps.push(await fanOutStep(db, stats, n, writes, others));
  await db.close();
  return steps;
}

async function fanOutStep(db, stats, n, writes, others) {
  const channel = `fan${n}`;
  const watchers = [];
  for (let i = 0; i < n; i++) {
    const seen = new Map();
    watchers.push({ seen, query: await db.live.query(LATEST, [channel], watch(seen, stats)) });
  }
  const lastSeen = [];
  const perQuery = [];
  let missed = 0;
  const callbacksBefore = stats.callbacks;
  for (let i = 0; i < writes; i++) {
    const { id, committed } = await insert(db, channel, `f${i}`);
    if (await waitFor(() => watchers.every((w) => w.seen.has(id)), 30000)) {
      const delays = watchers.map((w) => Math.max(0, w.seen.get(id) - committed));
      perQuery.push(...delays);
      lastSeen.push(Math.max(...delays));
    } else missed += 1;
    await new Promise((r) => setTimeout(r, 100)); // one write at a time, as the server step
  }
  const callbacksPerCommit = (stats.callbacks - callbacksBefore) / writes;
  for (const w of watchers) await w.query.unsubscribe();
  return {
    sockets: n,
    others,
    callbacksPerCommit,
    lastSeen: summary(lastSeen),
    perQuery: summary(perQuery),
    missed,
  };
}

// throughput: back-to-back inserts, then transfers between accounts along pre-drawn (source,
// target) index pairs. PGlite has one connection, so transactions run one after another:
// nothing conflicts and nothing is retried.
async function throughput({ inserts, warmup, accounts, transfers }) {
  const db = await freshDb();
  await db.exec("CREATE TABLE accounts (id serial PRIMARY KEY, balance double precision NOT NULL)");
  await db.query("INSERT INTO accounts (balance) SELECT 1000 FROM generate_series(1, $1)", [accounts]);
  const ids = (await db.query("SELECT id FROM accounts ORDER BY id")).rows.map((r) => r.id);
  await warmUp(db, ids, warmup);
  const started = performance.now();
  for (let i = 0; i < inserts; i++) await insert(db, `t${i % 100}`, "hello");
  const insertsPerS = inserts / ((performance.now() - started) / 1000);
  const runs = [];
  for (const { alpha, pairs } of transfers) {
    const count = pairs.length / 2;
    let failed = 0;
    const begun = performance.now();
    for (let i = 0; i < count; i++) {
      try {
        await transfer(db, ids[pairs[2 * i]], ids[pairs[2 * i + 1]]);
      } catch {
        failed += 1;
      }
    }
    const seconds = (performance.now() - begun) / 1000;
    runs.push({ alpha, committedPerS: (count - failed) / seconds, retries: 0, failed });
  }
  await db.close();
  return { insertsPerS, transfers: runs };
}

// `rounds` inserts and transfers before measuring (at most maxMs): Node compiles PGlite's WASM
// to fast code function by function once it is hot; until then PGlite runs several times slower.
async function warmUp(db, ids, { rounds, maxMs }) {
  const until = performance.now() + maxMs;
  for (let i = 0; i < rounds && performance.now() < until; i++) {
    await insert(db, "warm", `w${i}`);
    await transfer(db, ids[i % ids.length], ids[(i + 1) % ids.length]);
  }
}

// Move 1 unit, reading both balances first, as accounts:transfer on the server does.
async function transfer(db, source, target) {
  await db.transaction(async (tx) => {
    const read = "SELECT balance FROM accounts WHERE id = $1";
    const from = (await tx.query(read, [source])).rows[0].balance;
    const to = (await tx.query(read, [target])).rows[0].balance;
    await tx.query("UPDATE accounts SET balance = $1 WHERE id = $2", [from - 1, source]);
    await tx.query("UPDATE accounts SET balance = $1 WHERE id = $2", [to + 1, target]);
  });
}

// query latency: the query-latency scenario's reads, in process, against a channel of
// `messages` rows: point get by id, the first 10/100/1,000 of the channel, a first page of 10.
// Each shape runs `warmup` times unmeasured, then `runs` times.
async function queries({ messages, warmup, runs }) {
  const db = await freshDb();
  await db.query(
    "INSERT INTO messages (channel, body) SELECT 'q', 'm' || i FROM generate_series(1, $1) AS i",
    [messages],
  );
  const ids = (await db.query("SELECT id FROM messages WHERE channel = 'q'")).rows.map((r) => r.id);
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const take = "SELECT id, channel, body FROM messages WHERE channel = 'q' ORDER BY id LIMIT $1";
  const shapes = {
    "point get": () => db.query("SELECT id, channel, body FROM messages WHERE id = $1", [ids[Math.floor(random() * ids.length)]]),
    "range of 10": () => db.query(take, [10]),
    "range of 100": () => db.query(take, [100]),
    "range of 1,000": () => db.query(take, [1000]),
    "paginate (first page of 10)": () => db.query(take, [11]), // one extra row: is there more?
  };
  const result = {};
  for (const [name, run] of Object.entries(shapes)) {
    for (let i = 0; i < warmup; i++) await run();
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await run();
      samples.push(performance.now() - started);
    }
    result[name] = summary(samples);
  }
  await db.close();
  return result;
}

const out = { version, observe: null, scale: [], fanOut: [], throughput: null, queries: null };
if (options.observe !== false) out.observe = await observe(options.writes ?? 100, options.warmup ?? 10);
for (const n of options.scale ?? []) {
  out.scale.push(await scale(n, options.channels ?? 1000, options.scaleWrites ?? 30, options.budgetMs ?? 20000));
}
if (options.fanOut?.length) {
  const { fanOutWrites = 3, others = 0, warmup = 0 } = options;
  out.fanOut = await fanOut(options.fanOut, fanOutWrites, others, warmup);
}
if (options.throughput) out.throughput = await throughput(options.throughput);
if (options.queries) out.queries = await queries(options.queries);
process.stdout.write(JSON.stringify(out) + "\n");
