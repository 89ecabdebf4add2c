/**
 * Every route, sent random and hostile query strings, path ids, form bodies and headers: nothing
 * may answer 500 (or log an internal error). The generator is seeded, so a failure repeats.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/dashboard/app.tsx";
import { makeFixture } from "./fixtures.ts";

/** mulberry32: small, seeded, good enough to pick test inputs. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Names and values that have broken parsers before: prototype keys, encodings, sizes. */
const HOSTILE = [
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "prototype",
  "__defineGetter__",
  "",
  " ",
  "-1",
  "1e309",
  "NaN",
  "Infinity",
  "0x10",
  "9".repeat(40),
  "../../etc/passwd",
  "..%2F..%2F",
  "%00",
  "%",
  "%E0%A4%A",
  "%ZZ",
  "<script>alert(1)</script>",
  "\"'`",
  "a=b=c",
  "lr=",
  "=1",
  "negatives>abc",
  "x<1e400",
  "null",
  "[]",
  "{}",
  "𝄞🙂",
  "\u202e",
  "x".repeat(5000),
  "asc",
  "desc",
  "running",
  "lost",
  "archived",
  "all",
];

const PARAMS = [
  "sort",
  "dir",
  "status",
  "dataset",
  "loss",
  "tag",
  "show",
  "q",
  "ids",
  "after",
  "keys",
  "deleted",
  "__proto__",
  "constructor",
];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

function junk(rand: () => number): string {
  if (rand() < 0.6) return pick(rand, HOSTILE);
  const n = Math.floor(rand() * 40);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rand() * 0x3000));
  return s;
}

/** A query string of a few random parameters, some repeated, some raw (not URL-encoded). */
function query(rand: () => number): string {
  const parts: string[] = [];
  const n = 1 + Math.floor(rand() * 5);
  for (let i = 0; i < n; i++) {
    const name = rand() < 0.8 ? pick(rand, PARAMS) : junk(rand);
    const value = junk(rand);
    parts.push(
      rand() < 0.7
        ? `${encodeURIComponent(name)}=${encodeURIComponent(value)}`
        : `${name.replace(/[#\s]/g, "")}=${value.replace(/[#\s]/g, "")}`,
    );
  }
  return parts.join("&");
}

Deno.test("fuzz: random and hostile queries, ids, forms and headers never answer 500", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  const logged: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => logged.push(args.map(String).join(" "));
  try {
    const app = createApp({ runsDir: fx.dir, signal: abort.signal, pollMs: 20 });
    const rand = random(12);
    const ids = [...Object.values(fx.ids), "nope", "a..b", "%2e%2e", "__proto__", "constructor"];
    const routes = [
      "/",
      "/runs/:id",
      "/runs/:id/delete",
      "/sweeps/:id",
      "/sweeps/:id/trials.csv",
      "/compare",
      "/api/runs",
      "/api/runs/:id",
      "/api/runs/:id/metrics",
      "/api/runs/:id/events",
      "/api/sweeps",
      "/api/sweeps/:id",
      "/static/:id",
    ];
    const posts = ["/runs/:id/notes", "/runs/:id/archive", "/runs/:id/delete"];
    const statuses = new Map<number, number>();
    const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
    for (let round = 0; round < 25; round++) {
      for (const route of routes) {
        const id = rand() < 0.7 ? pick(rand, ids) : encodeURIComponent(junk(rand)) || "x";
        const path = `${route.replace(":id", id)}?${query(rand)}`;
        const headers: Record<string, string> = {};
        if (rand() < 0.3) headers["last-event-id"] = junk(rand).replace(/[^\x20-\x7e]/g, "");
        const res = await app.request(path, { headers });
        count(res.status);
        assert.ok(res.status < 500, `${res.status} for GET ${path}`);
        // Event streams of live runs stay open: read what is there and hang up.
        await res.body?.cancel();
      }
      for (const route of posts) {
        // Runs that may be deleted are left alone: the fuzz is about answers, not deletions.
        const id = pick(rand, [fx.ids.running, fx.ids.bestTrialRun, "nope", "a..b"]);
        const body = new URLSearchParams();
        for (const name of ["csrf", "tags", "note", "archived", "confirm", pick(rand, PARAMS)]) {
          if (rand() < 0.8) body.append(name, junk(rand));
        }
        const res = await app.request(route.replace(":id", id), {
          method: "POST",
          body: rand() < 0.8 ? body : junk(rand),
          headers: {
            "content-type": rand() < 0.8
              ? "application/x-www-form-urlencoded"
              : pick(rand, ["multipart/form-data; boundary=x", "text/plain", "application/json"]),
          },
        });
        count(res.status);
        assert.ok(res.status < 500, `${res.status} for POST ${route} ${id}`);
        await res.body?.cancel();
      }
    }
    assert.deepEqual(logged, []);
    // The fuzz reached the pages, not only the refusals.
    assert.ok((statuses.get(200) ?? 0) > 50, JSON.stringify([...statuses]));
    assert.ok((statuses.get(400) ?? 0) > 10, JSON.stringify([...statuses]));
  } finally {
    console.error = error;
    abort.abort();
    await fx.cleanup();
  }
});

Deno.test("sort and show names inherited from Object.prototype fall back to the defaults", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  try {
    const app = createApp({ runsDir: fx.dir, signal: abort.signal });
    const ids = async (query: string) =>
      (await (await app.request(`/api/runs${query}`)).json()).runs.map((r: { id: string }) => r.id);
    const plain = await ids("");
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
      for (const param of ["sort", "show", "dir"]) {
        assert.deepEqual(await ids(`?${param}=${name}`), plain, `${param}=${name}`);
        assert.equal((await app.request(`/?${param}=${name}`)).status, 200);
      }
    }
  } finally {
    abort.abort();
    await fx.cleanup();
  }
});
