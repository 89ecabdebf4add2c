import assert from "node:assert/strict";
import { acquireDevice, BACKEND_VARIABLE, FASTEST_SOFTWARE_BACKEND } from "../../src/gpu/device.ts";

Deno.test("a software adapter runs on the faster software backend and says so", async () => {
  const set = Deno.env.get(BACKEND_VARIABLE);
  if (set !== undefined) return; // the user's choice wins; covered below
  const a = await acquireDevice({ timestamps: false });
  try {
    if (!a.isSoftware) return; // a hardware adapter keeps the runtime's choice
    assert.equal(a.backend, FASTEST_SOFTWARE_BACKEND);
    assert.match(a.adapterName, new RegExp(`\\[software, ${FASTEST_SOFTWARE_BACKEND}\\]$`));
    assert.equal(Deno.env.get(BACKEND_VARIABLE), undefined, "the variable is left as it was");
  } finally {
    a.device.destroy();
  }
});

Deno.test("an explicit backend is used, and one with no adapter is a clear error", async () => {
  const a = await acquireDevice({ timestamps: false, backend: "gl" });
  assert.equal(a.backend, "gl");
  a.device.destroy();
  await assert.rejects(
    () => acquireDevice({ timestamps: false, backend: "dx12" }),
    /no adapter on the dx12 backend/,
  );
});
