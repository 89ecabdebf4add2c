/** N:M sparse tensors: formats, pruning and the sparse matrix products. */
export * from "./format.ts";
export * from "./host.ts";
export * from "./prune.ts";
export * from "./matmul.ts";
export * from "./gemv.ts";
export * from "./tiled.ts";
export { withGatheredDot, withNmReader } from "./gathered_dot.ts";
