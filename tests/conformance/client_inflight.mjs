// A mutation in flight when the server restarts: `conformance:send_slowly` inserts and then
// holds the mutation open for `delayS`; the Python side restarts the server meanwhile (cue
// "inflight", answer "restarted"). Whether the old server committed it (and its answer was
// lost) or not, the client re-sends it with the same session and request id on reconnect, and
// it must be applied exactly once and resolve with the id of the one document.
//
// params: {channel, delayS}

import { makeFunctionReference } from "convex/server";
import {
  cue,
  main,
  Recorder,
  scriptArgs,
  settle,
  stdinLines,
  tracedClient,
  withTimeout,
} from "./lib.mjs";

const count = makeFunctionReference("messages:count");
const list = makeFunctionReference("messages:list");
const sendSlowly = makeFunctionReference("conformance:send_slowly");

main(async () => {
  const { url, params } = scriptArgs();
  const { channel, delayS } = params;
  const nextLine = stdinLines();
  const { client, logger } = tracedClient(url);
  const counted = new Recorder("messages:count");
  client.onUpdate(count, { channel }, counted.push, counted.pushError);
  await counted.waitFor((n) => n === 0);

  const pending = settle(client.mutation(sendSlowly, { channel, body: "slow", delay_s: delayS }));
  cue("inflight");
  const answer = await withTimeout(nextLine(), 25_000, "cue answer 'restarted'");
  if (answer !== "restarted") throw new Error(`expected 'restarted' on stdin, got '${answer}'`);
  const result = await withTimeout(pending, 25_000, "the in-flight mutation");
  const finalCount = await counted.waitFor((n) => n >= 1);
  const docs = await client.query(list, { channel });
  await client.close();
  return {
    result,
    finalCount,
    counts: counted.values,
    ids: docs.map((doc) => doc._id),
    subscriptionErrors: counted.errors,
    log: logger.lines,
  };
});
