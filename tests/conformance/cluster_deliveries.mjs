// A node dies under load (tests/test_cluster.py): `total` `deliveries:deliver` mutations, each
// with a unique tag, `inFlight` at a time, through the load balancer. Once `killAfter` are
// acknowledged the script cues "kill"; the Python side kill -9s the node this client's socket
// landed on and answers "killed <epoch ms>". Every mutation must still be acknowledged (the
// client reconnects through the balancer to another node and resends what was unanswered).
//
// params: {prefix, total, inFlight, killAfter}

import { ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import {
  cue,
  describeError,
  main,
  NodeWebSocket,
  recordingLogger,
  scriptArgs,
  stdinLines,
  withTimeout,
} from "./lib.mjs";

const deliver = makeFunctionReference("deliveries:deliver");

main(async () => {
  const { url, params } = scriptArgs();
  const { prefix, total, inFlight, killAfter } = params;
  const nextLine = stdinLines();
  const logger = recordingLogger();
  const client = new ConvexClient(url, { logger, webSocketConstructor: NodeWebSocket });

  const acked = [];
  const ackedAt = [];
  const failed = [];
  let next = 0;
  let cued = false;
  const killed = (async () => {
    const line = await nextLine();
    const [word, at] = line.split(" ");
    if (word !== "killed") throw new Error(`expected 'killed <ms>' on stdin, got '${line}'`);
    return Number(at);
  })();

  const sendOne = async () => {
    const tag = `${prefix}${String(next++).padStart(6, "0")}`;
    try {
      await client.mutation(deliver, { tag });
      acked.push(tag);
      ackedAt.push(Date.now());
    } catch (error) {
      failed.push({ tag, error: describeError(error) });
    }
    if (!cued && acked.length >= killAfter) {
      cued = true;
      cue("kill");
    }
  };
  const worker = async () => {
    while (next < total) await sendOne();
  };
  const workers = Array.from({ length: inFlight }, worker);
  await withTimeout(Promise.all(workers), 60_000, "the deliveries");
  const killedAt = await withTimeout(killed, 10_000, "the kill");
  await client.close();

  // Resumed: the first acknowledgement after the kill. Longest gap: between two consecutive
  // acknowledgements anywhere in the run (the client's view of the outage).
  const firstAfter = ackedAt.find((t) => t >= killedAt);
  let longestGap = 0;
  for (let i = 1; i < ackedAt.length; i++) {
    longestGap = Math.max(longestGap, ackedAt[i] - ackedAt[i - 1]);
  }
  return {
    acked,
    failed,
    ackedAfterKill: ackedAt.filter((t) => t >= killedAt).length,
    resumedMs: firstAfter === undefined ? null : firstAfter - killedAt,
    longestGapMs: longestGap,
    log: logger.lines.filter((l) => l.level !== "info"),
  };
});
