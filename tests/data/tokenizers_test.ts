/** llama2.c's tokenizer.bin and Hugging Face's tokenizer.json on tiny vocabularies. */
import assert from "node:assert/strict";
import { BOS, Llama2cTokenizer } from "../../src/data/llama2c_tokenizer.ts";
import { HfTokenizer } from "../../src/data/hf_tokenizer.ts";

/** tokenizer.bin bytes: max length, then (score, length, bytes) per piece. */
function tokenizerBin(pieces: [string, number][]): Uint8Array {
  const enc = new TextEncoder();
  const parts = pieces.map(([p, score]) => {
    const bytes = enc.encode(p);
    const out = new Uint8Array(8 + bytes.length);
    const view = new DataView(out.buffer);
    view.setFloat32(0, score, true);
    view.setInt32(4, bytes.length, true);
    out.set(bytes, 8);
    return out;
  });
  const total = 4 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setInt32(0, 8, true);
  let at = 4;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const BYTES = Array.from(
  { length: 256 },
  (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0] as [string, number],
);
const PIECES: [string, number][] = [
  ["<unk>", 0],
  ["\n<s>\n", 0],
  ["\n</s>\n", 0],
  ...BYTES,
  [" ", -1],
  ["a", -2],
  ["b", -3],
  ["ab", -4],
  [" a", -5],
  [" ab", -6],
];
const id = (p: string) => PIECES.findIndex(([q]) => q === p);

Deno.test("llama2.c tokenizer: merges by score, byte fallback, BOS and its space", () => {
  const t = Llama2cTokenizer.parse(tokenizerBin(PIECES), "tok.bin");
  assert.equal(t.vocabSize, 265);
  // " ab ab" merges "ab" (score −4) before " a" (−5), then " " + "ab" into " ab" (−6).
  assert.deepEqual(t.encode("ab ab"), [BOS, id(" ab"), id(" ab")]);
  // é is not a piece: its two UTF-8 bytes become byte tokens (byte + 3).
  assert.deepEqual(t.encode("é"), [BOS, id(" "), 0xc3 + 3, 0xa9 + 3]);
  assert.equal(t.decode(t.encode("ab ab")), "ab ab");
  assert.equal(t.decode(t.encode("é")), "é");
  assert.equal(t.decode([id("a"), id(" ab")]), "a ab");
  assert.throws(
    () => Llama2cTokenizer.parse(tokenizerBin(PIECES.slice(0, 10)), "x.bin"),
    /10 tokens/,
  );
});

Deno.test("Hugging Face tokenizer.json through @huggingface/tokenizers", async () => {
  const dir = await Deno.makeTempDir();
  const json = {
    version: "1.0",
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({
      id,
      content,
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: false,
      vocab: { "<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, h: 4, i: 5, o: 6, "▁h": 7, "▁hi": 8 },
      merges: ["▁ h", "▁h i"],
    },
  };
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
  const t = await HfTokenizer.load(`${dir}/tokenizer.json`);
  assert.equal(t.vocabSize, 9);
  const ids = t.encode("hi hoi");
  assert.deepEqual(ids, [1, 8, 7, 6, 5]);
  assert.equal(t.decode(ids), "hi hoi");
  await Deno.writeTextFile(`${dir}/bad.json`, "{");
  await assert.rejects(() => HfTokenizer.load(`${dir}/bad.json`), /bad.json: not a tokenizer.json/);
  await Deno.remove(dir, { recursive: true });
});
