/** Every op of the engine; importing this module also wires autograd to the ops it needs. */
import { registerEngineHooks } from "../engine.ts";
import { accumulate, clone, fill } from "./elementwise.ts";

registerEngineHooks({ accumulate: (into, g) => accumulate(into, g), clone, fill });

export * from "./elementwise.ts";
export * from "./shape.ts";
export * from "./gather.ts";
export * from "./embedding.ts";
