/** `deno task lm:generate`: continues a prompt with a trained run or a model file. */
import { parseArgs } from "node:util";
import { loadLmRun, loadModelPath } from "../src/train/lm.ts";
import type { Llama } from "../src/models/llama.ts";
import { generate } from "../src/models/generate.ts";
import type { TextCodec } from "../src/data/text.ts";
import { HfTokenizer } from "../src/data/hf_tokenizer.ts";
import { EOS, Llama2cTokenizer } from "../src/data/llama2c_tokenizer.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

const HELP =
  `Usage: deno task lm:generate (--run ID | --model PATH) [--prompt TEXT | --prompt-ids IDS] [flags]

Continues a prompt with a KV cache (one forward over the prompt, then one cached step per token).

Flags:
  --run ID           a lm:train run (its best checkpoint and its own tokenizer)
  --out DIR          runs folder for --run [default: runs]
  --model PATH       a llama2.c checkpoint (.bin) or a Hugging Face folder / config.json
  --tokenizer PATH   tokenizer.json (Hugging Face) or tokenizer.bin (llama2.c)
                     [default: the run's own; a Hugging Face folder's tokenizer.json; none]
  --prompt TEXT      text to continue (needs a tokenizer)
  --prompt-ids IDS   comma-separated token ids to continue (without a tokenizer: the only way)
  --max-tokens N     tokens to generate [default: 200]
  --temperature T    0 is greedy [default: 0.8]
  --top-k K          draw among the K most likely tokens (0: all) [default: 0]
  --seed S           sampling seed [default: 0]
  --json             one JSON object: prompt and generated ids (and text with a tokenizer)
  --help             print this help`;

function count(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`--${flag}: expected a whole number ≥ ${min}, got "${text}"`);
  }
  return n;
}

async function tokenizerAt(path: string): Promise<TextCodec> {
  return path.endsWith(".json") ? await HfTokenizer.load(path) : await Llama2cTokenizer.load(path);
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string", default: "runs" },
      model: { type: "string" },
      tokenizer: { type: "string" },
      prompt: { type: "string" },
      "prompt-ids": { type: "string" },
      "max-tokens": { type: "string", default: "200" },
      temperature: { type: "string", default: "0.8" },
      "top-k": { type: "string", default: "0" },
      seed: { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.run === !values.model) {
    console.error("error: give one of --run ID or --model PATH (see deno task lm:generate --help)");
    return 2;
  }
  if ((values.prompt === undefined) === (values["prompt-ids"] === undefined)) {
    console.error("error: give one of --prompt TEXT or --prompt-ids IDS");
    return 2;
  }
  const maxTokens = count("max-tokens", values["max-tokens"], 1);
  const topK = count("top-k", values["top-k"], 0);
  const seed = count("seed", values.seed, 0);
  const temperature = Number(values.temperature);
  if (!(temperature >= 0)) {
    throw new Error(`--temperature: expected ≥ 0, got "${values.temperature}"`);
  }
  const engine = await Engine.create();
  try {
    let model: Llama;
    let tokenizer: TextCodec | null = null;
    if (values.run) {
      const run = await loadLmRun(engine, values.out, values.run);
      model = run.model;
      tokenizer = run.tokenizer;
    } else {
      const path = values.model!;
      model = await loadModelPath(engine, path);
      const beside = `${path.replace(/\/config\.json$/, "")}/tokenizer.json`;
      if (!path.endsWith(".bin") && await exists(beside)) {
        tokenizer = await HfTokenizer.load(beside);
      }
    }
    if (values.tokenizer) tokenizer = await tokenizerAt(values.tokenizer);
    let prompt: number[];
    if (values["prompt-ids"] !== undefined) {
      prompt = values["prompt-ids"].split(",").map((s) => count("prompt-ids", s.trim(), 0));
    } else {
      if (!tokenizer) {
        throw new Error(
          "--prompt needs a tokenizer: this model has none (give --tokenizer PATH or --prompt-ids)",
        );
      }
      prompt = tokenizer.encode(values.prompt!);
    }
    const stream = !values.json && tokenizer !== null;
    if (stream && values.prompt !== undefined) await write(values.prompt);
    let shown = "";
    const generated: number[] = [];
    const g = await generate(model, prompt, {
      maxTokens,
      temperature,
      topK,
      seed,
      stopAt: tokenizer instanceof Llama2cTokenizer ? EOS : undefined,
      onToken: (id) => {
        generated.push(id);
        if (!stream) return;
        // Decoding the whole continuation each time keeps multi-byte characters whole.
        const text = tokenizer!.decode(generated);
        if (text.startsWith(shown) && !text.endsWith("\uFFFD")) {
          Deno.stdout.writeSync(new TextEncoder().encode(text.slice(shown.length)));
          shown = text;
        }
      },
    });
    const decodeRate = g.ids.length > 1 ? (g.ids.length - 1) / g.decodeSeconds : 0;
    if (values.json) {
      console.log(JSON.stringify({
        prompt_ids: prompt,
        ids: g.ids,
        ...(tokenizer ? { text: tokenizer.decode(g.ids) } : {}),
        stop: g.stop,
        decode_path: g.path,
        ...(g.fallback ? { fallback: g.fallback } : {}),
        prefill_seconds: g.prefillSeconds,
        decode_tokens_per_second: decodeRate,
      }));
    } else if (!tokenizer) {
      console.log(g.ids.join(" "));
    } else {
      console.log();
    }
    if (!values.json) {
      console.error(
        `${g.ids.length} tokens (${g.stop}), ${decodeRate.toFixed(1)} tokens/s decoding ` +
          `(${g.path}${g.fallback ? `: ${g.fallback}` : ""}), ` +
          `prefill of ${prompt.length} tokens ${g.prefillSeconds.toFixed(2)} s`,
      );
    }
    model.dispose();
    return 0;
  } finally {
    engine.destroy();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function write(text: string): Promise<void> {
  await Deno.stdout.write(new TextEncoder().encode(text));
}

if (import.meta.main) await runMain(main);
