// ConvexClient.setAuth with real JWTs: a valid token makes `messages:whoami` report its subject
// and mutations record it; clearing auth logs out; a rejected token (expired, wrong audience,
// ...) leaves the client unauthenticated (onChange(false)) and still usable.
//
// params: {channel, subject, token} for a valid token, {channel, token, rejected: true} else.

import { makeFunctionReference } from "convex/server";
import { main, Recorder, scriptArgs, settle, tracedClient, withTimeout } from "./lib.mjs";

const whoami = makeFunctionReference("messages:whoami");
const list = makeFunctionReference("messages:list");
const send = makeFunctionReference("messages:send");

/** A client authenticated with `token`, with records of its fetches and auth changes. */
function authenticatedClient(url, token) {
  const { client, logger } = tracedClient(url);
  const fetches = [];
  const changes = new Recorder("onChange");
  client.setAuth(async ({ forceRefreshToken }) => {
    fetches.push(forceRefreshToken);
    return token;
  }, changes.push);
  const identity = new Recorder("messages:whoami");
  client.onUpdate(whoami, {}, identity.push, identity.pushError);
  return { client, logger, fetches, changes, identity };
}

async function validToken(url, { channel, subject, token }) {
  const session = authenticatedClient(url, token);
  const { client, changes, identity } = session;
  await changes.waitFor((ok) => ok === true);
  await identity.waitFor((who) => who === subject);
  const id = await client.mutation(send, { channel, body: "signed" });
  const docs = await client.query(list, { channel });
  const author = docs.find((doc) => doc._id === id)?.author ?? null;
  client.client.clearAuth();
  const afterLogout = await identity.waitFor((who) => who === null);
  await client.close();
  return {
    changes: changes.values,
    identities: identity.values,
    author,
    afterLogout,
    fetchCount: session.fetches.length,
    subscriptionErrors: identity.errors,
    log: session.logger.lines,
  };
}

async function rejectedToken(url, channel, token) {
  const session = authenticatedClient(url, token);
  const { client, changes, identity } = session;
  await changes.waitFor((ok) => ok === false);
  const whoAfterRejection = await identity.waitFor(() => true);
  // The client gave up on the token and goes on unauthenticated.
  const mutation = client.mutation(send, { channel, body: "anon" });
  const sent = await settle(withTimeout(mutation, 10_000, "the anonymous mutation"));
  const docs = await client.query(list, { channel });
  const author = sent.ok ? (docs.find((doc) => doc._id === sent.value)?.author ?? null) : null;
  await client.close();
  return {
    changes: changes.values,
    whoAfterRejection,
    sent,
    author,
    fetchCount: session.fetches.length,
    log: session.logger.lines,
  };
}

main(async () => {
  const { url, params } = scriptArgs();
  if (params.rejected) return rejectedToken(url, params.channel, params.token);
  return validToken(url, params);
});
