import { LM_DEFAULTS, type LmConfig } from "../../src/train/lm_config.ts";

/**
 * A sequence file of 80 users over 30 items with a strong next-item pattern (item i is usually
 * followed by i+1): a model learns it in a few epochs, and a run trains in about a second.
 */
export async function tinyData(dir: string): Promise<string> {
  const lines: string[] = [];
  for (let u = 1; u <= 80; u++) {
    const start = (u * 7) % 30;
    const items = Array.from({ length: 6 + (u % 5) }, (_, j) => ((start + j) % 30) + 1);
    lines.push(`${u} ${items.join(" ")}`);
  }
  const path = `${dir}/tiny.txt`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/**
 * A one-layer language model of width 16 on a repeated sentence, written to `<dir>/text.txt`,
 * runs under `<dir>/runs`: a run trains in about a second. Hidden 24 by default: 8:16 groups the
 * width-16 projections but not down_proj's input.
 */
export async function tinyLmConfig(dir: string, over: Partial<LmConfig> = {}): Promise<LmConfig> {
  const data = `${dir}/text.txt`;
  await Deno.writeTextFile(data, "the cat sat on the mat. ".repeat(60));
  return {
    ...LM_DEFAULTS,
    data,
    out: `${dir}/runs`,
    dim: 16,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    hidden: 24,
    seqLen: 16,
    batchSize: 4,
    stepsPerEpoch: 10,
    epochs: 1,
    evalTokens: 0,
    ...over,
  };
}
