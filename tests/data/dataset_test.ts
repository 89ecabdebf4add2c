import assert from "node:assert/strict";
import {
  DataError,
  type Dataset,
  excerpt,
  fileError,
  requireCatalog,
} from "../../src/data/dataset.ts";

Deno.test("excerpt: short text whole, long text cut at 40 characters with its length", () => {
  assert.equal(excerpt("x2"), '"x2"');
  assert.equal(excerpt(""), '""');
  assert.equal(excerpt("a".repeat(40)), `"${"a".repeat(40)}"`);
  assert.equal(excerpt("a".repeat(41)), `"${"a".repeat(40)}…" (41 characters)`);
  assert.equal(excerpt("a".repeat(3_000_000)), `"${"a".repeat(40)}…" (3000000 characters)`);
  // Tabs, line ends and quotes are escaped, so the excerpt stays on one line and is unambiguous.
  assert.equal(excerpt('a\tb\r"c"'), '"a\\tb\\r\\"c\\""');
  // The cut never splits a surrogate pair: the emoji at positions 39–40 is left out whole.
  const emoji = "a".repeat(39) + "😀" + "b";
  assert.equal(excerpt(emoji), `"${"a".repeat(39)}…" (42 characters)`);
});

Deno.test("DataError: file:line: for a line, file: for the whole file", () => {
  const onLine = new DataError("log.csv", 7, "empty userId");
  assert.equal(onLine.message, "log.csv:7: empty userId");
  assert.equal(onLine.line, 7);
  const whole = new DataError("log.csv", null, "too small");
  assert.equal(whole.message, "log.csv: too small");
  assert.equal(whole.line, null);
});

Deno.test("fileError names the path, gives a plain reason and keeps the original as cause", async () => {
  const dir = await Deno.makeTempDir();
  const causes: [() => Promise<unknown>, string][] = [
    [() => Deno.open(`${dir}/nope`), "no such file or directory"],
    [() => Deno.readFile(dir), "it is a directory, not a file"],
  ];
  for (const [call, reason] of causes) {
    const original = await call().then(() => null, (e) => e);
    const e = fileError("the/path", "read", original);
    assert.ok(e instanceof DataError);
    assert.equal(e.message, `the/path: cannot read: ${reason}`);
    assert.equal(e.cause, original);
  }
  assert.equal(
    fileError("p", "write", new Error("disk full")).message,
    "p: cannot write: disk full",
  );
  await Deno.remove(dir);
});

Deno.test("requireCatalog passes 2 items and refuses 1 or 0, naming the file and the step", () => {
  const ds = (items: number): Dataset => ({
    name: "d",
    items,
    users: 1,
    sequences: [Int32Array.from({ length: items }, (_, i) => i + 1)],
    originalItemIds: ["", ...Array.from({ length: items }, (_, i) => `sku${i}`)],
  });
  requireCatalog(ds(2), "f.csv", "as read,");
  assert.throws(
    () => requireCatalog(ds(1), "f.csv", "as read,"),
    (e: unknown) =>
      e instanceof DataError &&
      e.message ===
        'f.csv: as read, the catalogue has 1 item (item "sku0"); ranking needs at least 2',
  );
  assert.throws(
    () => requireCatalog({ ...ds(0), originalItemIds: undefined }, "f.csv", "after x,"),
    /: f\.csv: after x, the catalogue has 0 items; ranking needs at least 2$/,
  );
});
