import assert from "node:assert/strict";
import { DataError, interactionCount } from "../../src/data/dataset.ts";
import type { Dataset } from "../../src/data/dataset.ts";
import { forEachLine } from "../../src/data/lines.ts";
import { readInteractions, readSequences } from "../../src/data/readers.ts";
import type { InteractionOptions } from "../../src/data/readers.ts";
import { detectFormat, loadDataset } from "../../src/data/load.ts";

// MovieLens is read from the shared data folder when this machine has it; Beauty ships in data/.
const ML = new URL("../../../shared/data/ml-latest-small/ratings.csv", import.meta.url).pathname;
const BEAUTY = new URL("../../data/Beauty.txt", import.meta.url).pathname;
const haveML = exists(ML);

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function temp(text: string, suffix = ".csv"): Promise<string> {
  const path = await Deno.makeTempFile({ suffix });
  await Deno.writeTextFile(path, text);
  return path;
}

function seqs(ds: Dataset): number[][] {
  return ds.sequences.map((s) => Array.from(s));
}

/**
 * The reader must stop with exactly `file:line: ` (`file: ` when `line` is null) followed by a
 * message containing `what`; returns the message.
 */
async function rejects(
  text: string,
  line: number | null,
  what: string,
  read: (p: string) => Promise<unknown> = (p) => readInteractions(p),
  suffix = ".csv",
): Promise<string> {
  const path = await temp(text, suffix);
  const message = await rejectsAt(path, line, what, read);
  await Deno.remove(path);
  return message;
}

async function rejectsAt(
  path: string,
  line: number | null,
  what: string,
  read: (p: string) => Promise<unknown>,
): Promise<string> {
  let message = "";
  await assert.rejects(read(path), (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e}`);
    assert.ok(e.message.startsWith(line === null ? `${path}: ` : `${path}:${line}: `), e.message);
    assert.ok(e.message.includes(what), `"${e.message}" should mention "${what}"`);
    message = e.message;
    return true;
  });
  return message;
}

const ML_TEXT = [
  "userId,movieId,rating,timestamp",
  "10,30,4.0,300",
  "10,20,3.5,100",
  "9,30,5.0,50",
  "10,5,1.0,100",
  "10,7,2.0,200",
  "",
].join("\n");

Deno.test("CSV: time order, stable ties, dense ids by sorted original id", async () => {
  const path = await temp(ML_TEXT);
  const ds = await readInteractions(path);
  assert.equal(ds.users, 2);
  assert.equal(ds.items, 4);
  // Users sorted numerically (9 before 10), items 5,7,20,30 → 1,2,3,4.
  assert.deepEqual(ds.originalUserIds, ["9", "10"]);
  assert.deepEqual(ds.originalItemIds, ["", "5", "7", "20", "30"]);
  // User 10: times 300,100,100,200 → 20 (t100, first in file), 5 (t100), 7 (t200), 30 (t300).
  assert.deepEqual(seqs(ds), [[4], [3, 1, 2, 4]]);
  assert.deepEqual(Array.from(ds.timestamps![1]), [100, 100, 200, 300]);
  assert.equal(ds.name, path.split("/").pop()!.replace(/\.csv$/, ""));
  await Deno.remove(path);
});

Deno.test("CSV: CRLF, BOM, trailing spaces, blank lines and no final newline are accepted", async () => {
  const clean = await temp(ML_TEXT);
  const messy = await temp(
    "\uFEFF" + ML_TEXT.trimEnd().split("\n").map((l, i) => (i % 2 ? ` ${l}  ` : `${l} \t`)).join(
      "\r\n\r\n",
    ).replaceAll(",", " , "),
  );
  const a = await readInteractions(clean);
  const b = await readInteractions(messy);
  assert.deepEqual(seqs(b), seqs(a));
  assert.deepEqual(b.originalItemIds, a.originalItemIds);
  assert.deepEqual(b.timestamps, a.timestamps);
  await Deno.remove(clean);
  await Deno.remove(messy);
});

Deno.test("TSV with configurable column names, auto and explicit delimiter", async () => {
  const text = "sku\twhen\tstars\tcustomer\na\t2\t5\t1\nb\t1\t4\t1\nb\t3\t2\t2\nc\t4\t1\t2\n";
  const path = await temp(text, ".tsv");
  const opts: InteractionOptions = {
    userCol: "customer",
    itemCol: "sku",
    timeCol: "when",
    ratingCol: "stars",
    integerIds: false,
  };
  const auto = await readInteractions(path, opts);
  const explicit = await readInteractions(path, { ...opts, delimiter: "\t" });
  assert.deepEqual(seqs(auto), [[2, 1], [2, 3]]);
  assert.deepEqual(seqs(explicit), seqs(auto));
  assert.deepEqual(auto.originalItemIds, ["", "a", "b", "c"]);
  const filtered = await readInteractions(path, { ...opts, minRating: 4 });
  assert.deepEqual(seqs(filtered), [[2, 1]]);
  assert.deepEqual(filtered.originalItemIds, ["", "a", "b"]);
  assert.equal(filtered.users, 1);
  await Deno.remove(path);
});

Deno.test("column names match case- and underscore-insensitively; defaults detect common names", async () => {
  const path = await temp("USER_ID,Item_Id,Time\n1,2,5\n1,3,4\n");
  const ds = await readInteractions(path);
  assert.deepEqual(seqs(ds), [[2, 1]]);
  const named = await readInteractions(path, { userCol: "userid", itemCol: "ITEMID" });
  assert.deepEqual(seqs(named), [[2, 1]]);
  await Deno.remove(path);
});

Deno.test("rating threshold is inclusive and drops users and items with nothing left", async () => {
  const path = await temp(ML_TEXT);
  const ds = await readInteractions(path, { minRating: 3.5 });
  assert.deepEqual(ds.originalUserIds, ["9", "10"]);
  assert.deepEqual(ds.originalItemIds, ["", "20", "30"]);
  assert.deepEqual(seqs(ds), [[2], [1, 2]]);
  await Deno.remove(path);
});

Deno.test("no time column keeps file order; ISO dates; quoted fields; 007 and 7 are one id", async () => {
  const noTime = await temp("user,item\n1,5\n1,3\n1,007\n1,7\n");
  const ds = await readInteractions(noTime, { timeCol: null });
  assert.deepEqual(seqs(ds), [[2, 1, 3, 3]]);
  assert.deepEqual(ds.originalItemIds, ["", "3", "5", "7"]);
  assert.equal(ds.timestamps, undefined);
  const iso = await temp(
    'user,item,time\n1,"5",2024-01-02T00:00:00Z\n1,"6",2024-01-01T00:00:00Z\n',
  );
  const isoDs = await readInteractions(iso);
  assert.deepEqual(seqs(isoDs), [[2, 1]]);
  assert.equal(isoDs.timestamps![0][0], Date.parse("2024-01-01T00:00:00Z") / 1000);
  await Deno.remove(noTime);
  await Deno.remove(iso);
});

Deno.test("CSV errors stop with file:line: and name the column", async () => {
  const head = "userId,movieId,rating,timestamp\n";
  await rejects(head + "1,2,4,10\n1,x2,4,11\n", 3, 'movieId "x2" is not a non-negative integer');
  await rejects(head + "1,2.5,4,10\n", 2, "movieId");
  await rejects(head + "-1,2,4,10\n", 2, "userId");
  await rejects(head + "1,2,4,10\n\n1,2,4\n", 4, 'missing column "timestamp"');
  await rejects(head + "1,2,4,10,9\n", 2, "5 fields, header has 4");
  await rejects(head + "1,,4,10\n", 2, "empty movieId");
  await rejects(head + "2147483648,2,4,10\n", 2, 'userId "2147483648" is beyond 2^31 - 1');
  await rejects(head + "1,99999999999999999999,4,10\n", 2, "movieId");
  await rejects(head + "1,2,4,soon\n", 2, 'timestamp "soon" is not a number');
  await rejects(head + "1,2,good,10\n", 2, 'rating "good" is not a number');
  await rejects(head + '1,"2,4,10\n', 2, "unterminated quoted field (field 2)");
  await rejects("", 1, "empty file");
  await rejects("\r\n  \n", 1, "empty file");
  await rejects(head, 1, "header only");
  await rejects(head + "\r\n\r\n", 1, "header only");
  await rejects("1,2,4.0,10\n", 1, "a header line is required");
  await rejects("user,thing,timestamp\n1,2,3\n", 1, "header has no item column");
  await rejects(
    head + "1,2,4,10\n",
    1,
    'column "stars"',
    (p) => readInteractions(p, { ratingCol: "stars" }),
  );
  await rejects(
    "user,item,time\n1,2,3\n",
    1,
    "rating",
    (p) => readInteractions(p, { minRating: 4 }),
  );
  await rejects(
    head + "1,2,1,10\n",
    2,
    "no rows have rating >= 4",
    (p) => readInteractions(p, { minRating: 4 }),
  );
});

Deno.test("the largest accepted id is 2^31 - 1", async () => {
  const path = await temp("user,item,time\n2147483647,0,1\n2147483647,2147483647,2\n");
  const ds = await readInteractions(path);
  assert.deepEqual(ds.originalUserIds, ["2147483647"]);
  assert.deepEqual(ds.originalItemIds, ["", "0", "2147483647"]);
  await Deno.remove(path);
});

Deno.test("sequence files: whitespace, CRLF, merged repeated users, sorted dense ids", async () => {
  const path = await temp("2 30 10\t10  \r\n\r\n1 20 30\r\n2 20", ".txt");
  const ds = await readSequences(path);
  assert.deepEqual(ds.originalUserIds, ["1", "2"]);
  assert.deepEqual(ds.originalItemIds, ["", "10", "20", "30"]);
  // User 2's two lines are concatenated in file order (also reads one-interaction-per-line files).
  assert.deepEqual(seqs(ds), [[2, 3], [3, 1, 1, 2]]);
  assert.equal(ds.timestamps, undefined);
  await Deno.remove(path);
});

Deno.test("sequence file errors stop with file:line:", async () => {
  const read = (p: string) => readSequences(p);
  await rejects(
    "1 2 3\n2 4 five\n",
    2,
    'item id (field 3) "five" is not a non-negative integer',
    read,
  );
  await rejects("1 2 3\nu2 4 5\n", 2, 'user id "u2"', read);
  await rejects("1 2 3\n\n7\n", 3, "user 7 has no items", read);
  await rejects("1 2 3\n2 2147483648\n", 2, "beyond 2^31 - 1", read);
  await rejects("1 2 3.0\n", 1, "field 3", read);
  await rejects("", 1, "empty file", read);
  await rejects(" \r\n", 1, "empty file", read);
});

Deno.test("line reader: chunk boundaries inside CRLF and multi-byte characters", async () => {
  const lines = ["héllo wörld", "", "€€€ 12", "last"];
  const path = await temp(lines.join("\r\n"));
  for (const chunk of [1, 2, 3, 5, 7, 64]) {
    const got: string[] = [];
    const n = await forEachLine(path, (text, lineNo) => got[lineNo - 1] = text, chunk);
    assert.equal(n, 4);
    assert.deepEqual(got, lines, `chunk ${chunk}`);
  }
  await Deno.remove(path);
});

Deno.test("streaming: a 300k-line log spanning several chunks matches the expected counts", async () => {
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  const rows = ["user,item,timestamp"];
  for (let r = 0; r < 300_000; r++) rows.push(`${r % 1000},${(r * 7) % 5000},${300_000 - r}`);
  await Deno.writeTextFile(path, rows.join("\n"));
  const ds = await readInteractions(path);
  assert.equal(ds.users, 1000);
  assert.equal(ds.items, 5000);
  assert.equal(interactionCount(ds), 300_000);
  // Timestamps fall with the row number, so each user's sequence is its rows in reverse.
  const user0 = Array.from(ds.sequences[0].subarray(0, 2), (i) => ds.originalItemIds![i]);
  assert.deepEqual(user0, [String((299_000 * 7) % 5000), String((298_000 * 7) % 5000)]);
  await Deno.remove(path);
});

Deno.test("format detection and loadDataset without cache", async () => {
  const seqPath = await temp("1 2 3 5\n2 3 4 5\n", ".txt");
  const csvInTxt = await temp("user,item,time\n1,2,3\n", ".txt");
  assert.equal(await detectFormat(seqPath), "sequences");
  assert.equal(await detectFormat(csvInTxt), "interactions");
  const ds = await loadDataset(seqPath, { cache: false, kCore: { items: 2 } });
  assert.deepEqual(seqs(ds), [[1, 2], [1, 2]]);
  await Deno.remove(seqPath);
  await Deno.remove(csvInTxt);
});

Deno.test({
  name: "MovieLens latest-small loads: 610 users, 9,724 items, 100,836 rows, time-ordered",
  ignore: !haveML,
  fn: async () => {
    const ds = await readInteractions(ML);
    assert.equal(ds.users, 610);
    assert.equal(ds.items, 9724);
    assert.equal(interactionCount(ds), 100_836);
    for (const t of ds.timestamps!) for (let i = 1; i < t.length; i++) assert.ok(t[i - 1] <= t[i]);
    assert.equal(ds.originalUserIds![0], "1");
  },
});

Deno.test("Amazon Beauty (data/) loads: 22,363 users, 12,101 items, 198,502 interactions, ids kept", async () => {
  assert.equal(await detectFormat(BEAUTY), "sequences");
  const ds = await readSequences(BEAUTY);
  assert.equal(ds.users, 22_363);
  assert.equal(ds.items, 12_101);
  assert.equal(interactionCount(ds), 198_502);
  // Already dense ids 1..12101 map to themselves; first line is "1 1 2 3 4 5".
  assert.deepEqual(seqs(ds)[0], [1, 2, 3, 4, 5]);
  assert.equal(ds.originalItemIds![12_101], "12101");
});

Deno.test("a catalogue of fewer than 2 items is refused, naming the file and the step", async () => {
  const why = "ranking needs at least 2";
  const seq = (p: string) => readSequences(p);
  await rejects("1 5 5\n2 5\n", null, `as read, the catalogue has 1 item (item "5"); ${why}`, seq);
  await rejects("user,item,time\n1,7,1\n2,7,2\n", null, "as read, the catalogue has 1 item");
  await rejects(
    ML_TEXT,
    null,
    'after the rating threshold (rating ≥ 5), the catalogue has 1 item (item "30")',
    (p) => readInteractions(p, { minRating: 5 }),
  );
  const loadK = (k: number | { items: number }) => (p: string) =>
    loadDataset(p, { cache: false, kCore: k });
  await rejects(
    "1 2 3\n2 3 4\n",
    null,
    'after k-core filtering (users ≥ 1 and items ≥ 2 interactions), the catalogue has 1 item (item "3")',
    loadK({ items: 2 }),
    ".txt",
  );
  await rejects(
    "1 2 3\n2 3 4\n",
    null,
    "(users ≥ 5 and items ≥ 5 interactions), the catalogue has 0 items",
    loadK(5),
    ".txt",
  );
});

Deno.test("a header that repeats a column name is refused with its line and the name", async () => {
  await rejects(
    "user,item,user,time\n1,2,1,3\n",
    1,
    'duplicate column name "user" (columns 1 and 3)',
  );
  // The header is the first non-blank line, and the error gives that line.
  await rejects(
    "\n\nuser,item,time,time\n1,2,3,4\n",
    3,
    'duplicate column name "time" (columns 3 and 4)',
  );
  await rejects(
    "user\t\titem\t\ttime\n1\t\t2\t\t3\n",
    1,
    'duplicate column name "" (columns 2 and 4)',
    undefined,
    ".tsv",
  );
  // Names equal only after normalising make detection depend on column order: refused too.
  const both = 'columns "userId" (column 1) and "user_id" (column 2) both match "userid"';
  await rejects("userId,user_id,item,time\n1,1,2,3\n", 1, both);
  await rejects(
    "userId,user_id,item,time\n1,1,2,3\n",
    1,
    both,
    (p) => readInteractions(p, { userCol: "USERID" }),
  );
  await rejects(
    "user,item,time\n1,2,3\n",
    1,
    'column "item" is both the user and the item column',
    (p) => readInteractions(p, { userCol: "item" }),
  );
  // An exact name is not ambiguous.
  const path = await temp("userId,user_id,item,time\n1,2,5,1\n1,3,6,2\n");
  const ds = await readInteractions(path, { userCol: "user_id" });
  assert.deepEqual(ds.originalUserIds, ["2", "3"]);
  await Deno.remove(path);
});

Deno.test("errors quote at most a short excerpt of a huge field", async () => {
  const head = "userId,movieId,rating,timestamp\n";
  const long = "x".repeat(5_000_000);
  const short = (m: string) =>
    assert.ok(m.length < 300, `${m.length} characters: ${m.slice(0, 300)}`);
  const x40 = `"${"x".repeat(40)}…" (5000000 characters)`;
  short(
    await rejects(`${head}1,${long},4,10\n`, 2, `movieId ${x40} is not a non-negative integer`),
  );
  short(await rejects(`${head}1,2,4,${long}\n`, 2, `timestamp ${x40} is not a number`));
  short(await rejects(`${head}1,2,${long},10\n`, 2, `rating ${x40} is not a number`));
  short(
    await rejects(
      `${head}${"9".repeat(1_000_000)},2,4,10\n`,
      2,
      "(1000000 characters) is beyond 2^31 - 1",
    ),
  );
  short(
    await rejects(`1 2 ${long}\n`, 1, `item id (field 3) ${x40}`, (p) => readSequences(p), ".txt"),
  );
  // A file without newlines read as a header: one enormous name, or thousands of names.
  short(await rejects(long, 1, `header has no user column (columns: ${x40})`));
  const wide = Array.from({ length: 5000 }, (_, i) => `c${i}`).join(",");
  short(await rejects(wide, 1, '"c10", "c11", … (5000 in all)'));
  // A long column name stands in an error as an excerpt too; so does a long option value.
  const t = "t".repeat(100);
  short(
    await rejects(
      `user,item,${t}\n1,2,soon\n`,
      2,
      `"${"t".repeat(40)}…" (100 characters) "soon"`,
      (p) => readInteractions(p, { timeCol: t }),
    ),
  );
  short(
    await rejects(
      `user,item,${t},x\n1,2,3\n`,
      2,
      `missing column "x" (3 fields, header has 4)`,
      (p) => readInteractions(p, { timeCol: t }),
    ),
  );
  short(
    await rejects(
      head + "1,2,4,10\n",
      1,
      "(1000 characters) (user)",
      (p) => readInteractions(p, { userCol: "q".repeat(1000) }),
    ),
  );
});

Deno.test("errors about a file name its path: missing file, directory, one path for every reader", async () => {
  const dir = await Deno.makeTempDir();
  const missing = `${dir}/nope.txt`;
  const gone = "cannot read: no such file or directory";
  await rejectsAt(missing, null, gone, (p) => readSequences(p));
  await rejectsAt(missing, null, gone, (p) => readInteractions(p));
  await rejectsAt(missing, null, gone, (p) => detectFormat(p));
  await rejectsAt(missing, null, gone, (p) => loadDataset(p, { cache: false }));
  // With the format given, the cache key (the source's real path and mtime) is looked up first.
  await rejectsAt(
    missing,
    null,
    gone,
    (p) => loadDataset(p, { format: "sequences", cache: `${dir}/cache` }),
  );
  const isDir = "cannot read: it is a directory, not a file";
  await rejectsAt(dir, null, isDir, (p) => readSequences(p));
  await rejectsAt(dir, null, isDir, (p) => readInteractions(p));
  await rejectsAt(dir, null, isDir, (p) => detectFormat(p));
  await rejectsAt(
    dir,
    null,
    isDir,
    (p) => loadDataset(p, { format: "sequences", cache: `${dir}/cache` }),
  );
  await Deno.remove(dir, { recursive: true });
});
