import assert from "node:assert/strict";
import { formatDuration, Logger } from "../../src/train/log.ts";

Deno.test("events are one line each, JSON with --json", () => {
  const lines: string[] = [];
  const json = new Logger({ json: true, write: (l) => lines.push(l), progress: false });
  json.event("epoch", { epoch: 2, loss: 1.234567, name: "a b" });
  const parsed = JSON.parse(lines[0]);
  assert.equal(parsed.event, "epoch");
  assert.equal(parsed.epoch, 2);
  const text = new Logger({ json: false, write: (l) => lines.push(l), progress: false });
  text.event("epoch", { epoch: 2, loss: 1.234567, name: "a b" });
  assert.equal(lines[1], 'epoch epoch=2 loss=1.2346 name="a b"');
  assert.ok(lines.every((l) => !l.includes("\n")));
});

Deno.test("durations print as m:ss or h:mm:ss", () => {
  assert.equal(formatDuration(65), "1:05");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(NaN), "--:--");
});
