import assert from "node:assert/strict";
import { ServingPeer } from "../../bench/python.ts";

const FAKE_PEER = `
import json, sys
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if line.strip() == "done":
        break
    if line.strip() == "fail":
        sys.exit(3)
    print(json.dumps({"echo": line.strip(), "args": sys.argv[1:]}), flush=True)
print(json.dumps({"final": True}), flush=True)
`;

async function hasPython(): Promise<boolean> {
  const probe = await new Deno.Command("python3", { args: ["-c", ""] }).output().catch(() => null);
  return probe?.success ?? false;
}

Deno.test({
  name: "ServingPeer: one JSON answer per request line, --serve appended, exit reported",
  ignore: !(await hasPython()),
  async fn() {
    const dir = await Deno.makeTempDir();
    const script = `${dir}/peer.py`;
    await Deno.writeTextFile(script, FAKE_PEER);
    try {
      const peer = new ServingPeer("python3", script, ["--x", "1"], Deno.env.toObject());
      await peer.ready();
      assert.deepEqual(await peer.ask("train 3"), {
        echo: "train 3",
        args: ["--x", "1", "--serve"],
      });
      await peer.send("done");
      assert.deepEqual(await peer.next(), { final: true });
      await peer.close();
      const failing = new ServingPeer("python3", script, [], Deno.env.toObject());
      await failing.ready();
      await assert.rejects(failing.ask("fail"), /peer exited \(code 3\) before answering/);
      await failing.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
