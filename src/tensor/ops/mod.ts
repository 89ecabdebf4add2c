/** Every op of the engine; importing this module also wires autograd to the ops it needs. */
import { registerEngineHooks } from "../engine.ts";
import { accumulate, clone, fill } from "./elementwise.ts";

registerEngineHooks({ accumulate: (into, g) => accumulate(into, g), clone, fill });

export * from "./elementwise.ts";
export * from "./shape.ts";
export * from "./gather.ts";
export * from "./embedding.ts";
export * from "./layernorm.ts";
export * from "./bias.ts";
export * from "./dropout.ts";
export * from "./reduce.ts";
export * from "./slice.ts";
export * from "./transpose.ts";
export * from "./random.ts";
export * from "./matmul.ts";
export * from "./gemv.ts";
export * from "./attention.ts";
export * from "./gru.ts";
export * from "./normalize.ts";
