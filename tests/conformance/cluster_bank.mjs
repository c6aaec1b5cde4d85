// Bank transfers from several clients spread over the nodes of a cluster (tests/test_cluster.py):
// `clients` ConvexClients connect through the load balancer; each makes `transfers` random
// transfers between `accounts` accounts, `inFlight` at a time, while subscribed to
// `accounts:total`. Every total any subscription sees must be the opening total: each
// snapshot, on every node, is consistent.
//
// params: {clients, transfers, inFlight, accounts, seed}

import { ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { describeError, main, NodeWebSocket, recordingLogger, Recorder, scriptArgs, withTimeout } from "./lib.mjs";

const transfer = makeFunctionReference("accounts:transfer");
const totalQuery = makeFunctionReference("accounts:total");

// A small deterministic generator (mulberry32), so a failing run can be replayed.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function runClient(url, index, params, logger) {
  const client = new ConvexClient(url, { logger, webSocketConstructor: NodeWebSocket });
  const totals = new Recorder(`total ${index}`);
  client.onUpdate(totalQuery, {}, totals.push, totals.pushError);
  await totals.waitFor(() => true, 20_000);
  const next = random(params.seed + index);
  const failed = [];
  let left = params.transfers;
  const worker = async () => {
    while (left > 0) {
      left--;
      const source = Math.floor(next() * params.accounts);
      const target = (source + 1 + Math.floor(next() * (params.accounts - 1))) % params.accounts;
      const amount = 1 + Math.floor(next() * 20);
      try {
        await client.mutation(transfer, { source, target, amount });
      } catch (error) {
        failed.push(describeError(error));
      }
    }
  };
  await Promise.all(Array.from({ length: params.inFlight }, worker));
  const last = await client.query(totalQuery, {});
  await client.close();
  return { failed, seen: totals.values, errors: totals.errors, last };
}

main(async () => {
  const { url, params } = scriptArgs();
  const logger = recordingLogger();
  const started = Date.now();
  const results = await withTimeout(
    Promise.all(Array.from({ length: params.clients }, (_, i) => runClient(url, i, params, logger))),
    120_000,
    "the transfers",
  );
  const elapsedMs = Date.now() - started;
  const seenTotals = [...new Set(results.flatMap((r) => r.seen.map((v) => v.total)))];
  return {
    elapsedMs,
    transfers: params.clients * params.transfers,
    failed: results.flatMap((r) => r.failed),
    seenTotals,
    updatesSeen: results.reduce((n, r) => n + r.seen.length, 0),
    subscriptionErrors: results.flatMap((r) => r.errors),
    lastTotals: results.map((r) => r.last.total),
  };
});
