// Correct uses of the code generated for tests/projects/chat (in ./chat/) with the official
// npm client. tests/test_codegen.py requires `tsc --noEmit` to report no error in this file.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import type {
  FunctionArgs,
  FunctionReference,
  FunctionReturnType,
  PaginationOptions,
  PaginationResult,
} from "convex/server";
import { api, internal } from "./chat/api.js";
import type { Doc, Id, TableNames } from "./chat/dataModel.js";

type Equal<X, Y> =
  (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

// What usePaginatedQuery (convex/react) demands of its query.
type PaginatedQueryReference = FunctionReference<
  "query",
  "public",
  { paginationOpts: PaginationOptions },
  PaginationResult<any>
>;

export type Checks = [
  Expect<Equal<FunctionArgs<typeof api.messages.send>, { channel: string; body: string }>>,
  Expect<Equal<FunctionReturnType<typeof api.messages.send>, Id<"messages">>>,
  Expect<Equal<FunctionArgs<typeof api.messages.whoami>, Record<string, never>>>,
  Expect<Equal<FunctionReturnType<typeof api.messages.list>, any>>,
  Expect<Equal<TableNames, "counters" | "messages">>,
  Expect<Equal<Doc<"messages">["author"], string | undefined>>,
  Expect<Equal<Id<"messages">, string & { __tableName: "messages" }>>,
];

export async function withHttpClient(url: string): Promise<string> {
  const client = new ConvexHttpClient(url);
  const listed = await client.query(api.messages.list, { channel: "x" });
  const id: Id<"messages"> = await client.mutation(api.messages.send, { channel: "x", body: "hi" });
  const plain: string = id; // an Id is a string
  const who = await client.query(api.messages.whoami);
  await client.query(api.messages.whoami, {});
  await client.action(api.messages.send_via_action, { channel: "x", body: "hi" });
  return `${listed.length} ${plain} ${who}`;
}

export function withClient(url: string): () => void {
  const client = new ConvexClient(url);
  const first: Id<"messages"> | null = null;
  void client.mutation(api.messages.send, { channel: "general", body: "hello" });
  const pageRef: PaginatedQueryReference = api.messages.page;
  void client.query(pageRef, { paginationOpts: { numItems: 10, cursor: null } });
  void client.query(api.messages.page, {
    channel: "general",
    paginationOpts: { numItems: 10, cursor: null },
  });
  return client.onUpdate(api.messages.list, { channel: "general" }, (docs: Doc<"messages">[]) => {
    const newest: Doc<"messages"> | undefined = docs[0];
    const sameTable: Id<"messages"> | null = newest?._id ?? first;
    console.log(newest?.body, newest?._creationTime.toFixed(), sameTable);
  });
}

export const internalRef: FunctionReference<"query", "internal", { channel: string }> =
  internal.messages.count_internal;
