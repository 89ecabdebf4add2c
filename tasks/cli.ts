/** Runs a task's main and turns an uncaught error into one `error:` line and exit code 1. */
export async function runMain(main: (args: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

/** A flag's value as a positive integer, or an error naming the flag. */
export function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${flag}: expected a positive integer, got "${text}"`);
  }
  return n;
}

/** A flag's value as a positive number, or an error naming the flag. */
export function positiveNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new Error(`${flag}: expected a positive number, got "${text}"`);
  return n;
}
