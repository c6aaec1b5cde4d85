// ConvexHttpClient: query, mutation, action and consistentQuery over POST /api/*; failures with
// ConvexError data reject with ConvexError, others with a plain Error; setAuth with a real JWT
// reaches the functions' identity, clearAuth drops it, and a rejected token fails the call.
//
// params: {channel, subject, token, expiredToken}

import { ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { main, recordingLogger, scriptArgs, settle } from "./lib.mjs";

const list = makeFunctionReference("messages:list");
const send = makeFunctionReference("messages:send");
const crash = makeFunctionReference("messages:crash");
const whoami = makeFunctionReference("messages:whoami");
const firstOrFail = makeFunctionReference("messages:first_or_fail");
const sendViaAction = makeFunctionReference("messages:send_via_action");
const failAction = makeFunctionReference("messages:fail_action");
const missing = makeFunctionReference("messages:no_such_function");

main(async () => {
  const { url, params } = scriptArgs();
  const { channel } = params;
  const logger = recordingLogger();
  const client = new ConvexHttpClient(url, { logger });

  const id = await client.mutation(send, { channel, body: "over http" });
  const listed = await client.query(list, { channel });
  const countViaAction = await client.action(sendViaAction, { channel, body: "http action" });
  const consistent = await client.consistentQuery(list, { channel });
  const failures = {
    emptyBody: await settle(client.mutation(send, { channel, body: " " })),
    crashed: await settle(client.mutation(crash, {})),
    queryFailed: await settle(client.query(firstOrFail, { channel: `${channel}-empty` })),
    actionFailed: await settle(client.action(failAction, {})),
    missing: await settle(client.query(missing, {})),
  };

  const anonymous = await client.query(whoami, {});
  client.setAuth(params.token);
  const signedIn = await client.query(whoami, {});
  const authoredId = await client.mutation(send, { channel, body: "signed over http" });
  const authored = (await client.query(list, { channel })).find((doc) => doc._id === authoredId);
  client.clearAuth();
  const signedOut = await client.query(whoami, {});
  client.setAuth(params.expiredToken);
  const expired = await settle(client.query(whoami, {}));

  return {
    id,
    listed,
    countViaAction,
    consistent,
    failures,
    anonymous,
    signedIn,
    author: authored?.author ?? null,
    signedOut,
    expired,
    log: logger.lines,
  };
});
