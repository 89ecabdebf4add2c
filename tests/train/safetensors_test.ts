import assert from "node:assert/strict";
import {
  atomicWrite,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "../../src/train/safetensors.ts";

Deno.test("safetensors round-trips tensors and metadata", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/model.safetensors`;
  const a = new Float32Array([1.5, -2, 3.25, 0, 7, 8]);
  const b = new Int32Array([7]);
  await writeSafetensors(path, {
    "blocks.0.w": { dtype: "F32", shape: [2, 3], data: a },
    step: { dtype: "I32", shape: [1], data: b },
  }, { epoch: "3" });
  const back = await readSafetensors(path);
  assert.deepEqual([...back.tensors["blocks.0.w"].data], [...a]);
  assert.deepEqual(back.tensors["blocks.0.w"].shape, [2, 3]);
  assert.deepEqual([...back.tensors.step.data], [7]);
  assert.equal(back.metadata.epoch, "3");
  const bytes = await Deno.readFile(path);
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0, "data starts 8-byte aligned");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failed atomic write leaves the old file and no temp file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ckpt`;
  await Deno.writeTextFile(path, "old");
  await assert.rejects(() =>
    atomicWrite(path, async (f) => {
      await f.write(new Uint8Array([1, 2, 3]));
      throw new Error("disk full");
    }), /disk full/);
  assert.equal(await Deno.readTextFile(path), "old");
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ckpt"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a truncated safetensors file is refused with its path", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bad.safetensors`;
  await writeSafetensors(path, { w: { dtype: "F32", shape: [4], data: new Float32Array(4) } });
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 4));
  await assert.rejects(() => readSafetensors(path), (e: Error) => {
    assert.ok(e instanceof SafetensorsError);
    assert.match(e.message, /bad\.safetensors: w: data offsets/);
    return true;
  });
  await Deno.remove(dir, { recursive: true });
});
