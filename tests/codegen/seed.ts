// Correct uses of the code generated for the seed app (/work/main; in ./seed/).
// tests/test_codegen.py requires `tsc --noEmit` to report no error in this file.
import { ConvexHttpClient } from "convex/browser";
import type { FunctionArgs } from "convex/server";
import { api } from "./seed/api.js";
import type { Doc, Id } from "./seed/dataModel.js";

type Equal<X, Y> =
  (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

export type Checks = [
  Expect<Equal<Doc<"tasks">["status"], "todo" | "in_progress" | "done">>,
  Expect<Equal<Doc<"projects">["userId"], Id<"users">>>,
  Expect<Equal<FunctionArgs<typeof api.tasks.updateStatus>["taskId"], Id<"tasks">>>,
];

export async function createAndFinish(client: ConvexHttpClient, taskId: Id<"tasks">) {
  const projectId: Id<"projects"> = await client.mutation(api.projects.create, { name: "Launch" });
  await client.mutation(api.tasks.updateStatus, { taskId, status: "done" });
  return projectId;
}
