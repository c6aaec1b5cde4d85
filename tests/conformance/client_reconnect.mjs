// Reconnect across a server restart: `total` sequential `messages:send`; after `stopAfter` of
// them the Python side stops the server (cue "stop", answer "stopped"), the next mutation is
// issued while it is down (cue "start" once it is pending, answer "started"), and the rest
// follow once the client has reconnected. Every promise must resolve, and the channel must
// hold each body exactly once: nothing lost, nothing applied twice. The client is signed in
// with `token`, so every message, before and after the restart, must carry its author.
//
// params: {channel, total, stopAfter, token}

import { makeFunctionReference } from "convex/server";
import {
  cue,
  main,
  Recorder,
  scriptArgs,
  sleep,
  stdinLines,
  tracedClient,
  withTimeout,
} from "./lib.mjs";

const count = makeFunctionReference("messages:count");
const page = makeFunctionReference("messages:page");
const send = makeFunctionReference("messages:send");

async function expectLine(nextLine, expected) {
  const line = await withTimeout(nextLine(), 20_000, `cue answer '${expected}'`);
  if (line !== expected) throw new Error(`expected '${expected}' on stdin, got '${line}'`);
}

main(async () => {
  const { url, params } = scriptArgs();
  const { channel, total, stopAfter } = params;
  const nextLine = stdinLines();
  const { client, logger } = tracedClient(url);
  client.setAuth(async () => params.token);
  const counted = new Recorder("messages:count");
  client.onUpdate(count, { channel }, counted.push, counted.pushError);
  await counted.waitFor((n) => n === 0);

  const ids = [];
  const sendOne = async (i) => ids.push(await client.mutation(send, { channel, body: `m${i}` }));
  for (let i = 0; i < stopAfter; i++) await sendOne(i);
  cue("stop");
  await expectLine(nextLine, "stopped");
  const rest = (async () => {
    for (let i = stopAfter; i < total; i++) await sendOne(i);
  })();
  await sleep(200); // the first of the rest is now queued in (or sent into) a dead connection
  cue("start");
  await expectLine(nextLine, "started");
  await withTimeout(rest, 25_000, "the mutations after the restart");

  const finalCount = await counted.waitFor((n) => n === total);
  const listed = await client.query(page, {
    channel,
    paginationOpts: { numItems: 10 * total, cursor: null },
  });
  await client.close();
  return {
    ids,
    finalCount,
    counts: counted.values,
    bodies: listed.page.map((doc) => doc.body),
    authors: [...new Set(listed.page.map((doc) => doc.author ?? null))],
    isDone: listed.isDone,
    subscriptionErrors: counted.errors,
    log: logger.lines,
  };
});
