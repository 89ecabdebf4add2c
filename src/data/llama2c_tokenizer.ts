/**
 * llama2.c's tokenizer.bin (karpathy/llama2.c, run.c): int32 max_token_length, then per token a
 * float32 merge score, an int32 length and the piece's bytes (SentencePiece's "▁" already turned
 * into a space; raw bytes as pieces "<0x0A>"). Encoding follows run.c: a leading space, each
 * UTF-8 character as its piece or its bytes (id = byte + 3), then repeated merges of the adjacent
 * pair whose merged piece scores highest. Ids 1 and 2 are BOS and EOS.
 */
import type { TextCodec } from "./text.ts";

export const BOS = 1;
export const EOS = 2;
/** run.c maps raw byte b to token b + 3 (after <unk>, <s>, </s>). */
const BYTE_OFFSET = 3;

/** Bytes as a string of code units 0–255: a map key for byte sequences that may split UTF-8. */
const key = (bytes: Uint8Array) => String.fromCharCode(...bytes);

export class Llama2cTokenizer implements TextCodec {
  private readonly ids: Map<string, number>;

  constructor(readonly pieces: Uint8Array[], readonly scores: Float32Array) {
    this.ids = new Map();
    // The first occurrence wins, as run.c's sorted-vocabulary binary search over a stable order
    // would find any of equal pieces; tokenizers do not repeat pieces in practice.
    pieces.forEach((p, i) => {
      if (!this.ids.has(key(p))) this.ids.set(key(p), i);
    });
  }

  static parse(bytes: Uint8Array, path: string): Llama2cTokenizer {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < bytes.length) {
      if (at + 8 > bytes.length) throw new Error(`${path}: truncated at token ${pieces.length}`);
      scores.push(view.getFloat32(at, true));
      const len = view.getInt32(at + 4, true);
      if (len < 0 || at + 8 + len > bytes.length) {
        throw new Error(`${path}: token ${pieces.length} has a bad length ${len}`);
      }
      pieces.push(bytes.slice(at + 8, at + 8 + len));
      at += 8 + len;
    }
    if (pieces.length < BYTE_OFFSET + 256) {
      throw new Error(
        `${path}: ${pieces.length} tokens; a llama2.c tokenizer has at least ${BYTE_OFFSET + 256}`,
      );
    }
    return new Llama2cTokenizer(pieces, Float32Array.from(scores));
  }

  static async load(path: string): Promise<Llama2cTokenizer> {
    return Llama2cTokenizer.parse(await Deno.readFile(path), path);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** BOS, then the text's tokens (run.c's encode with bos = 1, eos = 0). */
  encode(text: string): number[] {
    const tokens: number[] = [];
    const enc = new TextEncoder();
    if (text.length) {
      const space = this.ids.get(" ");
      if (space !== undefined) tokens.push(space);
    }
    for (const ch of text) {
      const bytes = enc.encode(ch);
      const id = this.ids.get(key(bytes));
      if (id !== undefined) tokens.push(id);
      else for (const b of bytes) tokens.push(b + BYTE_OFFSET);
    }
    for (;;) {
      let best = -1;
      let bestId = -1;
      let bestScore = -Infinity;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = this.ids.get(
          key(this.pieces[tokens[i]]) + key(this.pieces[tokens[i + 1]]),
        );
        if (id !== undefined && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          best = i;
          bestId = id;
        }
      }
      if (best < 0) break;
      tokens.splice(best, 2, bestId);
    }
    return [BOS, ...tokens];
  }

  /** The text of ids: BOS and EOS print nothing, a space right after BOS is dropped (run.c). */
  decode(ids: readonly number[]): string {
    const out: number[] = [];
    ids.forEach((id, i) => {
      if (id === BOS || id === EOS) return;
      let piece = this.pieces[id] ?? new Uint8Array();
      const text = key(piece);
      const raw = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
      if (raw) piece = Uint8Array.of(parseInt(raw[1], 16));
      else if (ids[i - 1] === BOS && piece[0] === 0x20) piece = piece.subarray(1);
      out.push(...piece);
    });
    return new TextDecoder().decode(Uint8Array.from(out));
  }
}
