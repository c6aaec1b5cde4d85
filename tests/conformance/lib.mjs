// Shared helpers for the conformance scripts run by tests/test_conformance_npm.py.
//
// Contract with the Python side: argv[2] is the server URL, argv[3] (optional) a JSON object of
// parameters. A script prints one JSON line on stdout (its observations) and exits 0; before
// it, an interactive script may print cue lines (`CUE <word>`) and read answers from stdin.
// Everything else (the WebSocket frames, the client's own log lines) goes to stderr. A script
// that fails prints the error on stderr and exits 1.

import { createRequire } from "node:module";
import { ConvexClient } from "convex/browser";
import { ConvexError } from "convex/values";

// The `ws` package the convex client itself uses in Node, resolved from convex's own directory
// so that this does not depend on how npm hoists it.
const convexPackage = createRequire(import.meta.url).resolve("convex/package.json");
const requireFromConvex = createRequire(convexPackage);
export const NodeWebSocket = requireFromConvex("ws");

/**
 * A WebSocket class for `webSocketConstructor` that echoes every frame to stderr, so a failing
 * test shows the exact conversation with the server.
 */
export class TracingWebSocket extends NodeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => trace("<", event.data));
    this.addEventListener("close", (event) => trace("close", `${event.code} ${event.reason}`));
  }

  send(data, ...rest) {
    trace(">", data);
    return super.send(data, ...rest);
  }
}

/** The type of every frame traced so far, e.g. {direction: "<", type: "AuthError"}. */
export const frames = [];

function trace(direction, data) {
  const text = String(data);
  if (direction !== "close") {
    try {
      frames.push({ direction, type: JSON.parse(text).type });
    } catch {
      frames.push({ direction, type: null });
    }
  }
  const shown = text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
  process.stderr.write(`[ws ${direction}] ${shown}\n`);
}

/** The server URL and the parameters object passed by the Python test. */
export function scriptArgs() {
  const [url, params] = process.argv.slice(2);
  if (!url) throw new Error("usage: node <script>.mjs <server url> [params json]");
  return { url, params: params ? JSON.parse(params) : {} };
}

/**
 * A logger for the convex clients that keeps every non-debug line (so tests can assert that
 * the client complained about nothing) and echoes all to stderr (stdout stays one JSON line).
 */
export function recordingLogger() {
  const lines = [];
  const record = (level) => (...args) => {
    const text = args.filter((a) => !(typeof a === "string" && a.startsWith("color:")))
      .map((a) => (typeof a === "string" ? a.replace(/%c/g, "") : String(a)))
      .join(" ");
    if (level !== "debug") lines.push({ level, text });
    process.stderr.write(`[client ${level}] ${text}\n`);
  };
  return {
    lines,
    logVerbose: record("debug"),
    log: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
}

/** A client of `url` whose frames are traced (TracingWebSocket) and whose log `logger` keeps. */
export function tracedClient(url) {
  const logger = recordingLogger();
  const client = new ConvexClient(url, { logger, webSocketConstructor: TracingWebSocket });
  return { client, logger };
}

/** A JSON-friendly description of a rejected promise's reason. */
export function describeError(error) {
  return {
    isConvexError: error instanceof ConvexError,
    isError: error instanceof Error,
    name: error?.name ?? null,
    message: String(error?.message ?? error),
    data: error instanceof ConvexError ? error.data : null,
  };
}

/** Settle `promise` into `{ok: true, value}` or `{ok: false, error}` without throwing. */
export async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

/**
 * Every value a subscription callback received, with a way to wait for one that matches.
 * `waitFor` resolves with the first value (already seen or future) satisfying `predicate`.
 */
export class Recorder {
  constructor(name) {
    this.name = name;
    this.values = [];
    this.errors = [];
    this.waiters = [];
  }

  push = (value) => {
    this.values.push(value);
    this.waiters = this.waiters.filter((waiter) => !waiter(value));
  };

  pushError = (error) => {
    this.errors.push(describeError(error));
  };

  get latest() {
    return this.values.at(-1);
  }

  waitFor(predicate, timeoutMs = 10_000) {
    const seen = this.values.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const last = JSON.stringify(this.latest)?.slice(0, 500);
        reject(new Error(`${this.name}: no matching value within ${timeoutMs} ms; last: ${last}`));
      }, timeoutMs);
      this.waiters.push((value) => {
        if (!predicate(value)) return false;
        clearTimeout(timer);
        resolve(value);
        return true;
      });
    });
  }
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reject with a clear message if `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lines from stdin, one per call (the Python side's cues). */
export function stdinLines() {
  const queue = [];
  const waiting = [];
  let buffer = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      const next = waiting.shift();
      if (next) next(line);
      else queue.push(line);
    }
  });
  return () =>
    queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r));
}

/** Tell the Python side something (a cue line on stdout, before the final JSON line). */
export function cue(text) {
  process.stdout.write(`CUE ${text}\n`);
}

/**
 * Run `body` (an async function returning the observations), print them as the one JSON line
 * and exit 0; on any failure print it to stderr and exit 1. Exiting explicitly matters: open
 * WebSockets and timers would otherwise keep Node alive.
 */
export function main(body) {
  body().then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
    },
    (error) => {
      process.stderr.write(`conformance script failed: ${error?.stack ?? error}\n`);
      process.exit(1);
    },
  );
}
