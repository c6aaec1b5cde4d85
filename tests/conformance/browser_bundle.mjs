// The browser bundle `convex/dist/browser.bundle.js` (a script defining the global `convex`, as a
// <script> tag would load it) evaluated in Node with `globalThis.WebSocket` shimmed: its
// ConvexClient subscribes, mutates and gets ConvexError data; its ConvexHttpClient queries.
//
// params: {channel}

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import vm from "node:vm";
import { main, recordingLogger, Recorder, scriptArgs, TracingWebSocket } from "./lib.mjs";

function loadBundle() {
  const convexDir = dirname(createRequire(import.meta.url).resolve("convex/package.json"));
  const path = join(convexDir, "dist", "browser.bundle.js");
  // Node 20 has no global WebSocket; a browser does.
  globalThis.WebSocket = TracingWebSocket;
  vm.runInThisContext(readFileSync(path, "utf8"), { filename: path });
  return globalThis.convex;
}

main(async () => {
  const { url, params } = scriptArgs();
  const { channel } = params;
  const convex = loadBundle();
  const logger = recordingLogger();
  const client = new convex.ConvexClient(url, { logger });
  const listed = new Recorder("messages:list");
  client.onUpdate(convex.anyApi.messages.list, { channel }, listed.push, listed.pushError);
  await listed.waitFor(() => true);
  const id = await client.mutation(convex.anyApi.messages.send, { channel, body: "bundled" });
  const afterSend = await listed.waitFor((docs) => docs.some((doc) => doc._id === id));
  let failure = null;
  try {
    await client.mutation(convex.anyApi.messages.send, { channel, body: "" });
  } catch (error) {
    // The bundle does not export ConvexError; its errors still carry the name and data.
    failure = { name: error.name, data: error.data ?? null };
  }
  const http = new convex.ConvexHttpClient(url, { logger });
  const overHttp = await http.query(convex.anyApi.messages.list, { channel });
  await client.close();
  return {
    exports: ["BaseConvexClient", "ConvexClient", "ConvexHttpClient", "anyApi"].filter(
      (name) => name in convex,
    ),
    id,
    afterSend,
    failure,
    overHttp,
    subscriptionErrors: listed.errors,
    log: logger.lines,
  };
});
