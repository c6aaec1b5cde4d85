// Every Convex value type round-trips through the server unchanged: int64 (bigint), float64
// including NaN, -0 and the infinities, bytes (ArrayBuffer), strings, arrays, nested objects,
// null and booleans, as query and mutation arguments and results, over the WebSocket and HTTP.
// Also: a second client's mutation reaches the first client's subscription.

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { main, recordingLogger, Recorder, scriptArgs, TracingWebSocket } from "./lib.mjs";

const echo = makeFunctionReference("conformance:echo");
const echoMutation = makeFunctionReference("conformance:echo_mutation");
const count = makeFunctionReference("messages:count");
const send = makeFunctionReference("messages:send");

const sample = {
  int: 5n,
  negativeInt: -1n,
  bigInt: 2n ** 62n,
  float: 1.5,
  integralFloat: 3,
  nan: NaN,
  negativeZero: -0,
  infinity: Infinity,
  negativeInfinity: -Infinity,
  bytes: new Uint8Array([0, 1, 2, 255]).buffer,
  text: "héllo ✓ \u0000 end",
  nested: { list: [1n, null, true, "x", [2.5]], empty: {} },
  nothing: null,
  no: false,
};

/** A JSON description that keeps what JSON would lose (bigint, bytes, special floats). */
function describe(value) {
  if (typeof value === "bigint") return { bigint: value.toString() };
  if (value instanceof ArrayBuffer) return { bytes: [...new Uint8Array(value)] };
  if (typeof value === "number") {
    if (Object.is(value, -0)) return { float: "-0" };
    if (!Number.isFinite(value)) return { float: String(value) };
    return { float: value };
  }
  if (Array.isArray(value)) return value.map(describe);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  }
  return value;
}

main(async () => {
  const { url, params } = scriptArgs();
  const logger = recordingLogger();
  const options = { logger, webSocketConstructor: TracingWebSocket };
  const client = new ConvexClient(url, options);
  const other = new ConvexClient(url, options);
  const http = new ConvexHttpClient(url, { logger });

  const counted = new Recorder("messages:count");
  client.onUpdate(count, { channel: params.channel }, counted.push, counted.pushError);
  await counted.waitFor((n) => n === 0);
  await other.mutation(send, { channel: params.channel, body: "from the other client" });
  const seenFromOther = await counted.waitFor((n) => n === 1);

  const result = {
    sent: describe(sample),
    viaQuery: describe(await client.query(echo, { value: sample })),
    viaMutation: describe(await client.mutation(echoMutation, { value: sample })),
    viaHttpQuery: describe(await http.query(echo, { value: sample })),
    viaHttpMutation: describe(await http.mutation(echoMutation, { value: sample })),
    seenFromOther,
    log: logger.lines,
  };
  await Promise.all([client.close(), other.close()]);
  return result;
});
