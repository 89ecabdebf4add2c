import assert from "node:assert/strict";
import { readSafetensors } from "../../src/train/safetensors.ts";

/** A safetensors file holding one 16-bit tensor, written by hand. */
async function halfFile(path: string, dtype: "F16" | "BF16", bits: number[]): Promise<void> {
  const header = JSON.stringify({
    x: { dtype, shape: [bits.length], data_offsets: [0, 2 * bits.length] },
  });
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + head.length + 2 * bits.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  bits.forEach((b, i) => view.setUint16(8 + head.length + 2 * i, b, true));
  await Deno.writeFile(path, out);
}

Deno.test("F16 and BF16 tensors are read widened to F32", async () => {
  const dir = await Deno.makeTempDir();
  // BF16: 1.0, −2.5, 3.140625; F16: 1.0, −2.5, 65504, 2^-24 (subnormal), +inf.
  await halfFile(`${dir}/b.safetensors`, "BF16", [0x3f80, 0xc020, 0x4049]);
  await halfFile(`${dir}/h.safetensors`, "F16", [0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00]);
  const b = (await readSafetensors(`${dir}/b.safetensors`)).tensors.x;
  assert.equal(b.dtype, "F32");
  assert.deepEqual([...b.data], [1, -2.5, 3.140625]);
  const h = (await readSafetensors(`${dir}/h.safetensors`)).tensors.x;
  assert.deepEqual([...h.data], [1, -2.5, 65504, Math.fround(2 ** -24), Infinity]);
  await Deno.remove(dir, { recursive: true });
});
