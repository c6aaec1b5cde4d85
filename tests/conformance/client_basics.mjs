// ConvexClient over the WebSocket: a subscription sees its initial value and then a mutation's
// write, the mutation resolves with the new id, a one-shot query and an action work.

import { makeFunctionReference } from "convex/server";
import { main, Recorder, scriptArgs, tracedClient } from "./lib.mjs";

const list = makeFunctionReference("messages:list");
const count = makeFunctionReference("messages:count");
const send = makeFunctionReference("messages:send");
const sendViaAction = makeFunctionReference("messages:send_via_action");

main(async () => {
  const { url, params } = scriptArgs();
  const channel = params.channel;
  const { client, logger } = tracedClient(url);
  const listed = new Recorder("messages:list");
  client.onUpdate(list, { channel }, listed.push, listed.pushError);

  const initial = await listed.waitFor(() => true);
  const id = await client.mutation(send, { channel, body: "hello" });
  // The client resolves a mutation only after the Transition that contains its write.
  const visibleWhenResolved = listed.latest.some((doc) => doc._id === id);
  const afterSend = await listed.waitFor((docs) => docs.some((doc) => doc._id === id));
  const queried = await client.query(list, { channel });
  const countViaAction = await client.action(sendViaAction, { channel, body: "via action" });
  const afterAction = await listed.waitFor((docs) => docs.length === 2);
  const countQueried = await client.query(count, { channel });
  await client.close();
  return {
    initial,
    id,
    visibleWhenResolved,
    afterSend,
    queried,
    countViaAction,
    afterAction,
    countQueried,
    updates: listed.values.length,
    subscriptionErrors: listed.errors,
    log: logger.lines,
  };
});
