/**
 * A Hugging Face tokenizer.json through @huggingface/tokenizers (a pure-JS port of the Rust
 * tokenizers, run as is under Deno): encode adds the special tokens its post-processor names
 * (Llama's <s>), decode drops them.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import type { TextCodec } from "./text.ts";

export class HfTokenizer implements TextCodec {
  private constructor(private readonly inner: Tokenizer, readonly vocabSize: number) {}

  /** tokenizer.json, with tokenizer_config.json beside it when there is one. */
  static async load(path: string): Promise<HfTokenizer> {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      throw new Error(`${path}: not a tokenizer.json (${(e as Error).message})`);
    }
    const configPath = path.replace(/[^/]*$/, "tokenizer_config.json");
    let config: Record<string, unknown> = {};
    try {
      config = JSON.parse(await Deno.readTextFile(configPath));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new Error(`${configPath}: ${(e as Error).message}`);
      }
    }
    const inner = new Tokenizer(json, config);
    const ids = [...inner.get_vocab(true).values()];
    return new HfTokenizer(inner, Math.max(-1, ...ids) + 1);
  }

  encode(text: string): number[] {
    return this.inner.encode(text).ids;
  }

  decode(ids: readonly number[]): string {
    return this.inner.decode([...ids], { skip_special_tokens: true });
  }
}
