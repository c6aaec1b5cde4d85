// Wrong uses of the code generated for tests/projects/chat (in ./chat/). tests/test_codegen.py
// requires `tsc --noEmit` to report exactly the error marked at the end of each line below,
// and nothing else: the generated types must catch each mistake.
import { ConvexHttpClient } from "convex/browser";
import { api, internal } from "./chat/api.js";
import type { Doc, Id } from "./chat/dataModel.js";

export async function mistakes(client: ConvexHttpClient, counter: Id<"counters">) {
  await client.query(api.messages.list, { channel: 5 }); // expect-error TS2322 (wrong arg type)
  await client.mutation(api.messages.send, { channel: "x" }); // expect-error TS2345 (missing arg)
  await client.query(api.messages.list, { channel: "x", limit: 3 }); // expect-error TS2353 (extra arg)
  await client.query(api.messages.nope, {}); // expect-error TS2339 (unknown function)
  await client.query(api.nope.list, {}); // expect-error TS2339 (unknown module)
  const n: number = await client.mutation(api.messages.send, { channel: "x", body: "y" }); // expect-error TS2322 (wrong return use)
  await client.query(api.messages.send, { channel: "x", body: "y" }); // expect-error TS2345 (a mutation is no query)
  await client.query(internal.messages.count_internal, { channel: "x" }); // expect-error TS2345 (internal from a client)
  await client.query(api.messages.list); // expect-error TS2554 (args required)
  const message: Id<"messages"> = counter; // expect-error TS2322 (an id of another table)
  const doc: Doc<"messages"> = { _id: message, _creationTime: 1, channel: "x" }; // expect-error TS2741 (document lacks a field)
  const missing: Doc<"nosuchtable"> = doc; // expect-error TS2344 (unknown table)
  return [n, missing];
}
