/** Activation and weight pruning of transformer backbones (methods.md §3). */
export * from "./criteria.ts";
export * from "./activation.ts";
export * from "./weights.ts";
export * from "./learnable.ts";
