/**
 * The safetensors format (8-byte little-endian header length, JSON header, raw little-endian
 * data), written atomically: a temp file in the same folder, fsynced, then renamed over the target.
 * Reading also takes F16 and BF16 tensors (most Hugging Face checkpoints), widened to F32.
 */

export type SafeDType = "F32" | "I32";

export interface NamedArray {
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsFile {
  tensors: Record<string, NamedArray>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(path: string, what: string) {
    super(`${path}: ${what}`);
    this.name = "SafetensorsError";
  }
}

export async function writeSafetensors(
  path: string,
  tensors: Record<string, NamedArray>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = Object.keys(tensors).sort();
  for (const name of names) {
    const t = tensors[name];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(
        path,
        `${name}: shape [${t.shape}] does not hold ${t.data.length} values`,
      );
    }
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((json.length + 8) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  await atomicWrite(path, async (file) => {
    await writeAll(file, prefix);
    await writeAll(file, headerBytes);
    for (const name of names) {
      const d = tensors[name].data;
      await writeAll(file, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  });
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const bytes = await Deno.readFile(path);
  if (bytes.length < 8) throw new SafetensorsError(path, "shorter than a safetensors header");
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (8 + headerLen > bytes.length) {
    throw new SafetensorsError(path, "header runs past the end of the file");
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new SafetensorsError(path, `header is not JSON (${(e as Error).message})`);
  }
  const base = 8 + headerLen;
  const tensors: Record<string, NamedArray> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    const [begin, end] = entry.data_offsets;
    if (!["F32", "I32", "F16", "BF16"].includes(entry.dtype)) {
      throw new SafetensorsError(
        path,
        `${name}: dtype ${entry.dtype} is not supported (F32, I32, F16, BF16)`,
      );
    }
    if (base + end > bytes.length || begin > end) {
      throw new SafetensorsError(path, `${name}: data offsets [${begin}, ${end}] are out of range`);
    }
    // Copy: the view into the file buffer may be misaligned for a typed array.
    const raw = bytes.slice(base + begin, base + end).buffer;
    if (entry.dtype === "F16" || entry.dtype === "BF16") {
      const data = widen(new Uint16Array(raw), entry.dtype);
      tensors[name] = { dtype: "F32", shape: entry.shape, data };
      continue;
    }
    const data = entry.dtype === "F32" ? new Float32Array(raw) : new Int32Array(raw);
    tensors[name] = { dtype: entry.dtype as SafeDType, shape: entry.shape, data };
  }
  return { tensors, metadata };
}

/** Half-precision bits to float32: BF16 is float32's upper half; F16 is IEEE binary16. */
function widen(half: Uint16Array, dtype: "F16" | "BF16"): Float32Array {
  const out = new Float32Array(half.length);
  if (dtype === "BF16") {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
    return out;
  }
  for (let i = 0; i < half.length; i++) {
    const h = half[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0
      ? sign * frac * 2 ** -24
      : exp === 31
      ? (frac ? NaN : sign * Infinity)
      : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** Runs `write` on a temp file next to `path`, then renames it over `path`. */
export async function atomicWrite(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${Date.now()}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await write(file);
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
}

export async function atomicWriteText(path: string, text: string): Promise<void> {
  await atomicWrite(path, (f) => writeAll(f, new TextEncoder().encode(text)));
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await file.write(data.subarray(done, done + (1 << 24)));
}
