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
