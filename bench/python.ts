/** Finding a Python for the PyTorch peers, and talking to a serving one. */
import { streamLines } from "../src/data/lines.ts";

/**
 * The first Python that imports torch: the one on PATH, else Debian's (python3-torch installs
 * into /usr/bin/python3, which a pyenv or venv on PATH hides).
 */
export async function pythonWithTorch(): Promise<string | null> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    const probe = await new Deno.Command(python, { args: ["-c", "import torch"], stderr: "null" })
      .output().catch(() => null);
    if (probe?.success) return python;
  }
  return null;
}

/**
 * glibc's allocator settings for the peers: with its defaults, PyTorch's per-step tensors of a
 * few MiB go back to the kernel when freed and fault in again, page by page, at the next step. On
 * this project's 2-core VM that made the CoLES peer 11× slower (435k page faults in 13 steps
 * against 46k; 0.36 against 0.031 s a step), so a peer run with the defaults understates PyTorch.
 * Keeping freed memory in the process is what jemalloc or tcmalloc would do for it.
 */
export const PEER_MALLOC: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(2 ** 30),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 30),
  MALLOC_TOP_PAD_: String(2 ** 28),
};

/**
 * The environment for a peer: OpenBLAS tuning variables that other tools set are dropped (they
 * make PyTorch's CPU matmul far slower on these machines). With `threads`, OpenBLAS's and
 * OpenMP's own pools get that many threads too: torch.set_num_threads does not reach Debian's
 * OpenBLAS, whose pool would otherwise run on both cores beside a "one-thread" peer.
 */
export function peerEnv(threads?: number): Record<string, string> {
  const env = { ...Deno.env.toObject(), ...PEER_MALLOC };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (threads !== undefined) {
    env.OPENBLAS_NUM_THREADS = String(threads);
    env.OMP_NUM_THREADS = String(threads);
  }
  return env;
}

/**
 * How long a serving peer is left alone after its block before ours starts: OpenBLAS's worker
 * threads spin for 2^28 cycles (its THREAD_TIMEOUT, about 0.1 s here) after a call before they
 * sleep, and spinning threads would take cores from our timed block.
 */
const SETTLE_MS = 250;

/**
 * A peer process that answers one JSON line per request line on stdin (the peers' --serve mode):
 * bench:lm and bench:ssl hand it blocks of training steps between their own, so that both sides
 * are timed through the same phases of the machine's speed.
 */
export class ServingPeer {
  private readonly child: Deno.ChildProcess;
  private readonly lines: AsyncIterator<string>;
  private readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  private started: Promise<void> | null = null;

  constructor(python: string, script: string, args: string[], env: Record<string, string>) {
    this.child = new Deno.Command(python, {
      args: [script, ...args, "--serve"],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.stdin = this.child.stdin.getWriter();
    this.lines = streamLines(this.child.stdout)[Symbol.asyncIterator]();
  }

  /** Resolves once the peer has started and warmed up (its first line, {"ready": true}). */
  ready(): Promise<void> {
    this.started ??= this.next().then((line) => {
      if (line.ready !== true) {
        throw new Error(`peer: expected {"ready": true}, got ${JSON.stringify(line)}`);
      }
    });
    return this.started;
  }

  /** The next line the peer prints, parsed; an error if it exited first. */
  async next(): Promise<Record<string, unknown>> {
    for (;;) {
      const line = await this.lines.next();
      if (line.done) {
        const status = await this.child.status;
        throw new Error(`peer exited (code ${status.code}) before answering`);
      }
      if (line.value.trim()) return JSON.parse(line.value);
    }
  }

  /** Sends one request line and returns the answer once the peer has settled (SETTLE_MS). */
  async ask(request: string): Promise<Record<string, unknown>> {
    await this.send(request);
    const answer = await this.next();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    return answer;
  }

  async send(request: string): Promise<void> {
    await this.stdin.write(new TextEncoder().encode(request + "\n"));
  }

  /** Ends the peer's input and waits for it to exit (its last line is left to `next`). */
  async close(): Promise<void> {
    await this.stdin.close().catch(() => {});
  }

  /** Stops the peer at once (after a failure on our side). */
  kill(): void {
    try {
      this.child.kill();
    } catch {
      // It has exited already.
    }
  }
}
