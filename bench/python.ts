/** Finding a Python for the PyTorch peers. */

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
 * The environment for a peer: OpenBLAS tuning variables that other tools set are dropped (they
 * make PyTorch's CPU matmul far slower on these machines). With `threads`, OpenBLAS's and
 * OpenMP's own pools get that many threads too: torch.set_num_threads does not reach Debian's
 * OpenBLAS, whose pool otherwise spins on every core (a one-thread CoLES peer ran at half speed).
 */
export function peerEnv(threads?: number): Record<string, string> {
  const env = { ...Deno.env.toObject() };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (threads !== undefined) {
    env.OPENBLAS_NUM_THREADS = String(threads);
    env.OMP_NUM_THREADS = String(threads);
  }
  return env;
}
