/**
 * Imports point one way, from src/gpu up to src/dashboard: a lower layer never imports a higher
 * one (the README's layout section lists the same order).
 */
import assert from "node:assert/strict";

const LAYERS = [
  "gpu",
  "tensor",
  "nn",
  "sparse",
  "loss",
  "data",
  "models",
  "prune",
  "finetune",
  "store",
  "train",
  "sweep",
  "dashboard",
];

const SRC = new URL("../src/", import.meta.url);

function* sources(dir: URL): Generator<URL> {
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sources(url);
    else if (/\.tsx?$/.test(entry.name)) yield url;
  }
}

function layerOf(url: URL): string | null {
  if (!url.href.startsWith(SRC.href)) return null;
  return url.href.slice(SRC.href.length).split("/")[0];
}

Deno.test("every folder of src/ has a place in the layer order", () => {
  for (const entry of Deno.readDirSync(SRC)) {
    if (entry.isDirectory) assert.ok(LAYERS.includes(entry.name), `src/${entry.name}`);
  }
});

Deno.test("no module imports from a layer above its own", () => {
  const violations: string[] = [];
  for (const file of sources(SRC)) {
    const from = layerOf(file)!;
    const text = Deno.readTextFileSync(file);
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const to = layerOf(new URL(spec, file));
      if (to && LAYERS.indexOf(to) > LAYERS.indexOf(from)) {
        violations.push(`${file.href.slice(SRC.href.length)} imports ${spec} (${from} → ${to})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
