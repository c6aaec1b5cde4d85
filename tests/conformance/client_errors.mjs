// ConvexClient failures: ConvexError data reaches the caller as `ConvexError.data`, any other
// failure rejects with a plain Error, a failing subscription recovers once data exists, and the
// client keeps working after all of it.

import { makeFunctionReference } from "convex/server";
import { main, Recorder, scriptArgs, settle, tracedClient } from "./lib.mjs";

const send = makeFunctionReference("messages:send");
const crash = makeFunctionReference("messages:crash");
const failAction = makeFunctionReference("messages:fail_action");
const firstOrFail = makeFunctionReference("messages:first_or_fail");
const missing = makeFunctionReference("messages:no_such_function");

main(async () => {
  const { url, params } = scriptArgs();
  const channel = params.channel;
  const { client, logger } = tracedClient(url);

  const first = new Recorder("messages:first_or_fail");
  client.onUpdate(firstOrFail, { channel }, first.push, first.pushError);
  const emptyBody = await settle(client.mutation(send, { channel, body: "   " }));
  const crashed = await settle(client.mutation(crash, {}));
  const actionFailed = await settle(client.action(failAction, {}));
  const queryFailed = await settle(client.query(firstOrFail, { channel }));
  const missingMutation = await settle(client.mutation(missing, {}));
  const missingQuery = await settle(client.query(missing, {}));
  const subscriptionErrorsBeforeData = [...first.errors];
  const sent = await settle(client.mutation(send, { channel, body: "finally" }));
  const recovered = await first.waitFor((body) => body === "finally");
  await client.close();
  return {
    emptyBody,
    crashed,
    actionFailed,
    queryFailed,
    missingMutation,
    missingQuery,
    subscriptionErrorsBeforeData,
    sent,
    recovered,
    log: logger.lines,
  };
});
