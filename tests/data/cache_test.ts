import assert from "node:assert/strict";
import { DataError, type Dataset } from "../../src/data/dataset.ts";
import { cacheFile, cacheKey, loadOrBuild, readCache, writeCache } from "../../src/data/cache.ts";
import { readInteractions } from "../../src/data/readers.ts";
import { loadDataset } from "../../src/data/load.ts";

const LOG = "userId,movieId,rating,timestamp\n1,10,4,5\n1,20,3,1\n2,10,5,2\n2,abc,5,3\n";

/** A source file and a cache directory in one fresh temp dir. */
async function setup(text = LOG) {
  const root = await Deno.makeTempDir();
  const source = `${root}/log.csv`;
  await Deno.writeTextFile(source, text);
  return { root, source, dir: `${root}/cache` };
}

function counting(build: () => Promise<Dataset>) {
  const calls = { n: 0 };
  return {
    calls,
    build: () => {
      calls.n++;
      return build();
    },
  };
}

Deno.test("cache round-trips sequences, timestamps and original ids", async () => {
  const { root, source, dir } = await setup();
  const ds = await readInteractions(source, { integerIds: false });
  const key = await cacheKey(source, { integerIds: false });
  const file = await cacheFile(key, dir);
  await writeCache(file, key, ds);
  const back = await readCache(file, key);
  assert.ok(back);
  assert.equal(back.name, ds.name);
  assert.equal(back.items, ds.items);
  assert.equal(back.users, ds.users);
  assert.deepEqual(
    back.sequences.map((s) => Array.from(s)),
    ds.sequences.map((s) => Array.from(s)),
  );
  assert.deepEqual(
    back.timestamps!.map((t) => Array.from(t)),
    ds.timestamps!.map((t) => Array.from(t)),
  );
  assert.deepEqual(back.originalItemIds, ds.originalItemIds);
  assert.deepEqual(back.originalUserIds, ds.originalUserIds);
  // Nothing but the cache itself is left in the directory (the temporary file was renamed).
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [file.split("/").pop()]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("cache without timestamps or ids, and with empty users", async () => {
  const { root, source, dir } = await setup();
  const ds: Dataset = {
    name: "bare",
    items: 3,
    users: 3,
    sequences: [Int32Array.of(1, 2), new Int32Array(0), Int32Array.of(3)],
  };
  const key = await cacheKey(source, {});
  const file = await cacheFile(key, dir);
  await writeCache(file, key, ds);
  const back = (await readCache(file, key))!;
  assert.deepEqual(back.sequences.map((s) => Array.from(s)), [[1, 2], [], [3]]);
  assert.equal(back.timestamps, undefined);
  assert.equal(back.originalItemIds, undefined);
  await Deno.remove(root, { recursive: true });
});

Deno.test("loadOrBuild builds once, then reads the cache", async () => {
  const { root, source, dir } = await setup();
  const opts = { integerIds: false };
  const c = counting(() => readInteractions(source, opts));
  const first = await loadOrBuild(source, opts, c.build, { dir });
  const second = await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 1);
  assert.deepEqual(
    second.sequences.map((s) => Array.from(s)),
    first.sequences.map((s) => Array.from(s)),
  );
  // Option order does not matter; a different option value is a different cache entry.
  await loadOrBuild(source, { integerIds: false, other: undefined }, c.build, { dir });
  assert.equal(c.calls.n, 1);
  await loadOrBuild(source, { integerIds: false, minRating: 4 }, c.build, { dir });
  assert.equal(c.calls.n, 2);
  await Deno.remove(root, { recursive: true });
});

Deno.test("cache is invalidated when the source changes (content or mtime)", async () => {
  const { root, source, dir } = await setup();
  const opts = { integerIds: false };
  const c = counting(() => readInteractions(source, opts));
  await loadOrBuild(source, opts, c.build, { dir });
  await Deno.writeTextFile(source, LOG + "3,30,1,9\n");
  const grown = await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 2);
  assert.equal(grown.users, 3);
  // Same size, new mtime: still rebuilt.
  await Deno.utime(source, new Date(2001, 1, 1), new Date(2001, 1, 1));
  await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 3);
  await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 3);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a truncated or foreign cache file is rebuilt, not trusted", async () => {
  const { root, source, dir } = await setup();
  const opts = { integerIds: false };
  const c = counting(() => readInteractions(source, opts));
  await loadOrBuild(source, opts, c.build, { dir });
  const file = await cacheFile(await cacheKey(source, opts), dir);
  const bytes = await Deno.readFile(file);
  await Deno.writeFile(file, bytes.subarray(0, bytes.length - 3));
  const rebuilt = await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 2);
  assert.equal(rebuilt.users, 2);
  await Deno.writeTextFile(file, "not a cache");
  await loadOrBuild(source, opts, c.build, { dir });
  assert.equal(c.calls.n, 3);
  await Deno.remove(root, { recursive: true });
});

Deno.test("loadDataset caches the filtered result", async () => {
  const { root, source, dir } = await setup(
    "user,item,time\n1,1,1\n1,2,2\n1,3,3\n2,1,1\n2,3,2\n",
  );
  const a = await loadDataset(source, { cache: dir, kCore: { items: 2 } });
  const b = await loadDataset(source, { cache: dir, kCore: { items: 2 } });
  assert.deepEqual(a.sequences.map((s) => Array.from(s)), [[1, 2], [1, 2]]);
  assert.deepEqual(b.sequences.map((s) => Array.from(s)), [[1, 2], [1, 2]]);
  assert.equal([...Deno.readDirSync(dir)].length, 1);
  await Deno.remove(root, { recursive: true });
});

/** `call` must fail with a DataError whose message starts with `path: ` and contains `what`. */
async function rejectsNaming(call: () => Promise<unknown>, path: string, what: string) {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e}`);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    assert.ok(e.message.includes(what), e.message);
    return true;
  });
}

Deno.test("a cache file that cannot be read, or a cache folder that cannot be made, is named", async () => {
  const { root, source, dir } = await setup();
  const opts = { integerIds: false };
  const key = await cacheKey(source, opts);
  const file = await cacheFile(key, dir);
  // A directory where the cache file should be cannot be read, nor replaced by a rebuild.
  await Deno.mkdir(file, { recursive: true });
  await rejectsNaming(
    () => readCache(file, key),
    file,
    "cannot read the cache file: it is a directory",
  );
  // A cache folder under the source file, which is not a folder, can be neither read nor written.
  const under = await cacheFile(key, `${source}/cache`);
  await rejectsNaming(() => readCache(under, key), under, "a folder on its path is a file");
  const ds = await readInteractions(source, opts);
  await rejectsNaming(
    () => writeCache(under, key, ds),
    under,
    "cannot write the cache file: a folder on its path is a file",
  );
  await rejectsNaming(() => cacheKey(`${root}/nope.csv`, opts), `${root}/nope.csv`, "no such file");
  await Deno.remove(root, { recursive: true });
});

Deno.test("a one-item dataset in the cache (written before the check existed) is refused", async () => {
  const { root, source, dir } = await setup("user,item,time\n1,1,1\n1,2,2\n");
  const oneItem: Dataset = { name: "log", items: 1, users: 1, sequences: [Int32Array.of(1)] };
  // loadDataset keys the cache by its options without `cache`, plus the detected format.
  const key = await cacheKey(source, { format: "interactions" });
  await writeCache(await cacheFile(key, dir), key, oneItem);
  await rejectsNaming(
    () => loadDataset(source, { cache: dir }),
    source,
    "as read, the catalogue has 1 item; ranking needs at least 2",
  );
  await Deno.remove(root, { recursive: true });
});
