// ConvexClient.onPaginatedUpdate_experimental over `conformance:counters_page` (counters by
// name): load two pages, then insert before, inside and after the pages and delete the
// document at a page boundary. After every mutation resolves, the concatenated pages must be
// exactly the sorted names (no gap, no overlap), which needs the server's pagination journals.
//
// Then load the remaining pages and insert past the end: the last page grows. With `restart`,
// the Python side restarts the server (cue "restart", answer "restarted") before the steps.
//
// params: {initial: [names], pageSize, steps: [{add: name} | {remove: name}], last: name,
//          restart: boolean}

import { makeFunctionReference } from "convex/server";
import { cue, main, Recorder, scriptArgs, stdinLines, tracedClient, withTimeout } from "./lib.mjs";

const countersPage = makeFunctionReference("conformance:counters_page");
const addCounter = makeFunctionReference("conformance:add_counter");
const removeCounter = makeFunctionReference("conformance:remove_counter");

const names = (result) => result.results.map((doc) => doc.name);

main(async () => {
  const { url, params } = scriptArgs();
  const { client, logger } = tracedClient(url);
  const ids = {};
  for (const name of params.initial) {
    ids[name] = await client.mutation(addCounter, { name });
  }

  const paged = new Recorder("conformance:counters_page");
  client.onPaginatedUpdate_experimental(
    countersPage,
    {},
    { initialNumItems: params.pageSize },
    paged.push,
    paged.pushError,
  );
  const firstPage = await paged.waitFor((r) => r.status === "CanLoadMore");
  const loadMoreStarted = firstPage.loadMore(params.pageSize);
  const twoPages = await paged.waitFor(
    (r) => r.status !== "LoadingMore" && r.results.length > firstPage.results.length,
  );

  if (params.restart) {
    // The pages' end positions must survive a new server process: the client re-sends them
    // as the journals of its re-added queries.
    const nextLine = stdinLines();
    cue("restart");
    const answer = await withTimeout(nextLine(), 25_000, "cue answer 'restarted'");
    if (answer !== "restarted") throw new Error(`expected 'restarted' on stdin, got '${answer}'`);
  }
  const steps = [];
  for (const step of params.steps) {
    if (step.add !== undefined) {
      ids[step.add] = await client.mutation(addCounter, { name: step.add });
    } else {
      await client.mutation(removeCounter, { id: ids[step.remove] });
    }
    // A resolved mutation's write is already in the subscription's value.
    steps.push({ step, names: names(paged.latest), status: paged.latest.status });
  }
  // Load the rest: the last page reads to the end of the index, so later inserts join it.
  const beforeEnd = paged.latest;
  beforeEnd.loadMore(params.pageSize);
  const exhausted = await paged.waitFor((r) => r.status === "Exhausted");
  ids[params.last] = await client.mutation(addCounter, { name: params.last });
  const afterLast = paged.latest;
  await client.close();
  return {
    exhausted: { names: names(exhausted), status: exhausted.status },
    afterLast: { names: names(afterLast), status: afterLast.status },
    firstPage: { names: names(firstPage), status: firstPage.status },
    loadMoreStarted,
    twoPages: { names: names(twoPages), status: twoPages.status },
    steps,
    everySeen: paged.values.map(names),
    subscriptionErrors: paged.errors,
    log: logger.lines,
  };
});
