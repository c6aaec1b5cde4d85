// Exact types generated for tests/codegen/kinds (in ./kinds/): one check per validator kind.
// tests/test_codegen.py requires `tsc --noEmit` to report no error in this file.
import type {
  FunctionArgs,
  FunctionReference,
  FunctionReturnType,
  GenericDataModel,
  PaginationOptions,
} from "convex/server";
import type { GenericId } from "convex/values";
import { api, internal } from "./kinds/api.js";
import type { DataModel, Doc, Id, TableNames } from "./kinds/dataModel.js";

type Equal<X, Y> =
  (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

type Everything = {
  s: string;
  f: number;
  i: bigint;
  b: boolean;
  n: null;
  by: ArrayBuffer;
  note: GenericId<"notes">;
  file: GenericId<"_storage">;
  litS: 'say "hi"';
  litT: true;
  litI: -3n;
  litF: 2.5;
  u: string | number;
  opt?: string;
  arr: (string | null)[];
  obj: { a: string; "b-c"?: number };
  rec: Record<GenericId<"users">, boolean>;
  recLit: Record<"x" | "y", bigint>;
  anything: any;
  empty: Record<string, never>;
};

export type Checks = [
  Expect<Equal<FunctionArgs<typeof api.kinds.everything>, Everything>>,
  Expect<Equal<FunctionReturnType<typeof api.kinds.everything>, Everything | null>>,
  Expect<
    Equal<typeof api.kinds.untyped, FunctionReference<"query", "public", Record<string, any>, any>>
  >,
  Expect<
    Equal<
      FunctionArgs<typeof api.kinds.page>,
      { paginationOpts: PaginationOptions; tag: string }
    >
  >,
  Expect<
    Equal<
      typeof internal.kinds.secret,
      FunctionReference<"action", "internal", { noteId: Id<"notes"> }, bigint[]>
    >
  >,
  Expect<
    Equal<
      typeof api.nested.deep.run,
      FunctionReference<"mutation", "public", Record<string, never>, 1>
    >
  >,
  Expect<Equal<TableNames, "blobs" | "events" | "notes" | "users">>,
  Expect<DataModel extends GenericDataModel ? true : false>,
  Expect<Equal<Doc<"blobs">, any>>,
  Expect<
    Equal<
      Doc<"events">,
      | { _id: Id<"events">; _creationTime: number; kind: "click"; x: number }
      | { _id: Id<"events">; _creationTime: number; kind: "key"; key: string }
    >
  >,
  Expect<Equal<Doc<"notes">["layout"], { x: number; pinned?: boolean }>>,
  Expect<Equal<Doc<"notes">["owner"], Id<"users"> | undefined>>,
  Expect<Equal<DataModel["notes"]["indexes"]["by_title"], ["title", "_creationTime"]>>,
  Expect<"layout.pinned" extends DataModel["notes"]["fieldPaths"] ? true : false>,
  Expect<"attrs.anyKey" extends DataModel["notes"]["fieldPaths"] ? true : false>,
  Expect<Equal<Id<"_storage">, GenericId<"_storage">>>,
];
