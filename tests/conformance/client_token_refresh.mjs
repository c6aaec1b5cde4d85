// Short-lived JWTs over a long session. The script signs RS256 tokens itself with the test
// issuer's key (so each fetch gets a fresh iat/exp).
// - refresh: every fetch returns a new token; the client re-authenticates before each expires
//   and the server must accept each one and forget the old token's expiry: the identity never
//   drops and no AuthError arrives.
// - no refresh: every fetch returns the same token; when it expires mid-session the server
//   says so, the client gives up on it and goes on unauthenticated.
//
// params: {privateKeyPem, kid, issuer, subject, lifetimeS, leewayS, refresh, watchS, channel}

import { createSign } from "node:crypto";
import { ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import {
  frames,
  main,
  recordingLogger,
  Recorder,
  scriptArgs,
  settle,
  sleep,
  TracingWebSocket,
} from "./lib.mjs";

const whoami = makeFunctionReference("messages:whoami");
const list = makeFunctionReference("messages:list");
const send = makeFunctionReference("messages:send");

const base64url = (data) => Buffer.from(data).toString("base64url");

let signed = 0;

function signToken({ privateKeyPem, kid, issuer, subject, lifetimeS }) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
  // A unique jti: two tokens signed within one second would otherwise be identical, and the
  // client does not re-send a token equal to the one the server already has.
  signed += 1;
  const jti = `t${signed}`;
  const claims = { iss: issuer, sub: subject, aud: "convex", iat: now, nbf: now, jti };
  const payload = base64url(JSON.stringify({ ...claims, exp: now + lifetimeS }));
  const signer = createSign("RSA-SHA256");
  signer.update(`${header}.${payload}`);
  return `${header}.${payload}.${signer.sign(privateKeyPem).toString("base64url")}`;
}

async function authorOfNewMessage(client, channel) {
  const sent = await settle(client.mutation(send, { channel, body: "hi" }));
  if (!sent.ok) return { sent };
  const docs = await client.query(list, { channel });
  return { sent, author: docs.find((doc) => doc._id === sent.value)?.author ?? null };
}

main(async () => {
  const { url, params } = scriptArgs();
  const logger = recordingLogger();
  const client = new ConvexClient(url, {
    logger,
    webSocketConstructor: TracingWebSocket,
    authRefreshTokenLeewaySeconds: params.leewayS,
  });
  const tokens = [];
  let fetches = 0;
  const changes = new Recorder("onChange");
  client.setAuth(async () => {
    fetches += 1;
    if (params.refresh || tokens.length === 0) tokens.push(signToken(params));
    return tokens.at(-1);
  }, changes.push);
  const identity = new Recorder("messages:whoami");
  client.onUpdate(whoami, {}, identity.push, identity.pushError);
  await identity.waitFor((who) => who === params.subject);

  if (params.refresh) {
    await sleep(params.watchS * 1000);
  } else {
    const patience = (params.lifetimeS + 10) * 1000;
    await changes.waitFor((ok) => ok === false, patience);
    await identity.waitFor((who) => who === null);
  }
  const afterwards = await authorOfNewMessage(client, params.channel);
  await client.close();
  return {
    changes: changes.values,
    identities: identity.values,
    fetches,
    tokensSigned: tokens.length,
    authenticateSent: frames.filter((f) => f.direction === ">" && f.type === "Authenticate")
      .length,
    authErrors: frames.filter((f) => f.type === "AuthError").length,
    afterwards,
    subscriptionErrors: identity.errors,
    log: logger.lines,
  };
});
