import assert from "node:assert/strict";
import { newRunId } from "../../src/store/runs.ts";

Deno.test("run ids sort by time", () => {
  const a = newRunId(new Date("2026-01-01T00:00:00Z"));
  const b = newRunId(new Date("2026-01-02T00:00:00Z"));
  assert.ok(a < b);
  assert.match(a, /^20260101-000000-[0-9a-f]{6}$/);
});
