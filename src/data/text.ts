/**
 * Plain text for language modelling: character- and byte-level tokenizers, the 90/10 split and
 * batches of random windows. Which windows an epoch draws is a function of (seed, epoch) only,
 * so a resumed run sees the batches an uninterrupted one would.
 */
import { seededRandom } from "../tensor/random.ts";
import { deriveSeed } from "./dataset.ts";

/** Text ↔ token ids. */
export interface TextCodec {
  readonly vocabSize: number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/** A tokenizer a training run builds from its text and records with the run. */
export interface Tokenizer extends TextCodec {
  /** How a run records it (config.json), enough to rebuild it with tokenizerFromSpec. */
  spec(): TokenizerSpec;
}

export type TokenizerSpec =
  | { kind: "char"; chars: string[] }
  | { kind: "byte" };

export type TextTokenizerKind = TokenizerSpec["kind"];
export const TEXT_TOKENIZERS: readonly TextTokenizerKind[] = ["char", "byte"];

/** One token per distinct character (code point) of the training text, sorted. */
export class CharTokenizer implements Tokenizer {
  private readonly ids: Map<string, number>;

  constructor(readonly chars: readonly string[]) {
    this.ids = new Map(chars.map((c, i) => [c, i]));
    if (this.ids.size !== chars.length) throw new Error("char tokenizer: duplicate characters");
  }

  static fromText(text: string): CharTokenizer {
    return new CharTokenizer([...new Set(text)].sort());
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const c of text) {
      const id = this.ids.get(c);
      if (id === undefined) {
        throw new RangeError(
          `char tokenizer: ${JSON.stringify(c)} is not in the vocabulary of ${this.vocabSize}`,
        );
      }
      out.push(id);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return ids.map((id) => this.chars[id] ?? "\uFFFD").join("");
  }

  spec(): TokenizerSpec {
    return { kind: "char", chars: [...this.chars] };
  }
}

/** UTF-8 bytes: 256 tokens, any text. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 256;

  encode(text: string): number[] {
    return [...new TextEncoder().encode(text)];
  }

  decode(ids: readonly number[]): string {
    return new TextDecoder().decode(Uint8Array.from(ids));
  }

  spec(): TokenizerSpec {
    return { kind: "byte" };
  }
}

/** A run's tokenizer from its recorded spec. */
export function tokenizerFromSpec(spec: TokenizerSpec): Tokenizer {
  return spec.kind === "char" ? new CharTokenizer(spec.chars) : new ByteTokenizer();
}

/** A tokenizer of `kind` for training on `text` (char: its characters). */
export function textTokenizer(kind: TextTokenizerKind, text: string): Tokenizer {
  return kind === "char" ? CharTokenizer.fromText(text) : new ByteTokenizer();
}

export interface TextSplit {
  train: Int32Array;
  valid: Int32Array;
  /** Characters of the validation text: bits per char = nats per token / ln 2 · tokens / chars. */
  validChars: number;
}

/**
 * The first `trainFraction` of the text's characters for training, the rest for validation (as
 * nanoGPT's shakespeare_char: contiguous, so no passage is in both), each encoded.
 */
export function splitText(text: string, tokenizer: Tokenizer, trainFraction = 0.9): TextSplit {
  const chars = [...text];
  const cut = Math.floor(chars.length * trainFraction);
  const validText = chars.slice(cut).join("");
  return {
    train: Int32Array.from(tokenizer.encode(chars.slice(0, cut).join(""))),
    valid: Int32Array.from(tokenizer.encode(validText)),
    validChars: chars.length - cut,
  };
}

/** B windows of T + 1 tokens: inputs are the first T, targets the last T, row by row. */
export interface TokenBatch {
  batch: number;
  seqLen: number;
  /** [batch · seqLen] */
  inputs: Int32Array;
  /** [batch · seqLen] */
  targets: Int32Array;
}

/** Cuts windows starting at `starts` from `tokens`. */
export function windowsAt(
  tokens: Int32Array,
  starts: readonly number[],
  seqLen: number,
): TokenBatch {
  const inputs = new Int32Array(starts.length * seqLen);
  const targets = new Int32Array(starts.length * seqLen);
  starts.forEach((s, r) => {
    inputs.set(tokens.subarray(s, s + seqLen), r * seqLen);
    targets.set(tokens.subarray(s + 1, s + 1 + seqLen), r * seqLen);
  });
  return { batch: starts.length, seqLen, inputs, targets };
}

/** Training batches: `stepsPerEpoch` batches of windows at uniform random offsets per epoch. */
export class RandomWindows {
  constructor(
    private readonly tokens: Int32Array,
    private readonly opts: {
      batchSize: number;
      seqLen: number;
      stepsPerEpoch: number;
      seed: number;
    },
  ) {
    if (tokens.length < opts.seqLen + 1) {
      throw new RangeError(
        `the training text has ${tokens.length} tokens, fewer than one window of ${
          opts.seqLen + 1
        }`,
      );
    }
  }

  get batchesPerEpoch(): number {
    return this.opts.stepsPerEpoch;
  }

  *epoch(index: number): Iterable<TokenBatch> {
    const { batchSize, seqLen, stepsPerEpoch, seed } = this.opts;
    const random = seededRandom(deriveSeed(seed, 0x7e47 + index));
    const span = this.tokens.length - seqLen;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const starts = Array.from({ length: batchSize }, () => Math.floor(random() * span));
      yield windowsAt(this.tokens, starts, seqLen);
    }
  }
}

/**
 * Every window of `seqLen` targets that tiles `tokens` without overlap (the first `limit` tokens
 * when limit > 0), `batchSize` windows per batch: the validation set, the same on every call.
 */
export function* tilingWindows(
  tokens: Int32Array,
  seqLen: number,
  batchSize: number,
  limit = 0,
): Generator<TokenBatch> {
  const usable = limit > 0 ? Math.min(limit + 1, tokens.length) : tokens.length;
  const count = Math.floor((usable - 1) / seqLen);
  for (let w = 0; w < count; w += batchSize) {
    const starts = Array.from(
      { length: Math.min(batchSize, count - w) },
      (_, i) => (w + i) * seqLen,
    );
    yield windowsAt(tokens, starts, seqLen);
  }
}
