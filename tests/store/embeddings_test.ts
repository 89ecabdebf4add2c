import assert from "node:assert/strict";
import {
  embeddingKindsIn,
  embeddingsHeaderPath,
  embeddingsVectorsPath,
  readEmbeddings,
  writeEmbeddings,
} from "../../src/store/embeddings.ts";

function sample() {
  return {
    kind: "clients" as const,
    ids: ["c7", "c1", "c42"],
    dim: 2,
    vectors: new Float32Array([1.5, -2, 0, 3.25, 1e-3, -7]),
    colour: { name: "age_bin", values: [0, 2, 1] },
  };
}

Deno.test("embeddings round-trip with their ids and colour, little-endian row-major", () => {
  const dir = Deno.makeTempDirSync();
  writeEmbeddings(`${dir}/run`, sample());
  const e = readEmbeddings(`${dir}/run`, "clients")!;
  assert.equal(e.count, 3);
  assert.equal(e.dim, 2);
  assert.deepEqual(e.ids, ["c7", "c1", "c42"]);
  assert.deepEqual(Array.from(e.vectors), Array.from(sample().vectors));
  assert.deepEqual(e.colour, { name: "age_bin", values: [0, 2, 1] });
  const bytes = Deno.readFileSync(embeddingsVectorsPath(`${dir}/run`, "clients"));
  assert.equal(bytes.byteLength, 24);
  assert.equal(new DataView(bytes.buffer).getFloat32(4, true), -2);
  assert.deepEqual(embeddingKindsIn(`${dir}/run`), ["clients"]);
  // Nothing is left under a temporary name.
  assert.deepEqual(Array.from(Deno.readDirSync(`${dir}/run`)).map((f) => f.name).sort(), [
    "embeddings-clients.f32",
    "embeddings-clients.json",
  ]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a missing kind reads as null; without a colour there is none", () => {
  const dir = Deno.makeTempDirSync();
  assert.equal(readEmbeddings(dir, "items"), null);
  writeEmbeddings(dir, { kind: "items", ids: ["1"], dim: 3, vectors: new Float32Array(3) });
  const e = readEmbeddings(dir, "items")!;
  assert.equal(e.colour, undefined);
  assert.equal(readEmbeddings(dir, "clients"), null);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("bad input to writeEmbeddings says what is wrong and writes nothing", () => {
  const dir = Deno.makeTempDirSync();
  assert.throws(
    () => writeEmbeddings(dir, { ...sample(), vectors: new Float32Array(5) }),
    /vectors has 5 values, expected 3 ids × dim 2/,
  );
  assert.throws(
    () => writeEmbeddings(dir, { ...sample(), colour: { name: "age", values: [1, 2] } }),
    /colour "age" has 2 values for 3 ids/,
  );
  assert.throws(
    () => writeEmbeddings(dir, { ...sample(), colour: { name: "age", values: [1, NaN, 2] } }),
    /value 1 is NaN/,
  );
  assert.throws(() => writeEmbeddings(dir, { ...sample(), dim: 0 }), /dim must be a positive/);
  assert.deepEqual(Array.from(Deno.readDirSync(dir)), []);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("readEmbeddings names the file whose size or field is wrong", () => {
  const dir = Deno.makeTempDirSync();
  writeEmbeddings(dir, sample());
  const vectors = embeddingsVectorsPath(dir, "clients");
  const header = embeddingsHeaderPath(dir, "clients");
  Deno.writeFileSync(vectors, new Uint8Array(20));
  assert.throws(
    () => readEmbeddings(dir, "clients"),
    (e: Error) => e.message.startsWith(vectors) && /20 bytes.*= 24 bytes/.test(e.message),
  );
  Deno.removeSync(vectors);
  assert.throws(() => readEmbeddings(dir, "clients"), new RegExp(`${vectors}: missing`));
  Deno.writeTextFileSync(header, JSON.stringify({ kind: "clients", count: 2, dim: 2, ids: ["a"] }));
  assert.throws(() => readEmbeddings(dir, "clients"), new RegExp(`${header}: field "ids"`));
  Deno.writeTextFileSync(header, "{ not json");
  assert.throws(() => readEmbeddings(dir, "clients"), new RegExp(`${header}: not JSON`));
  Deno.removeSync(dir, { recursive: true });
});
