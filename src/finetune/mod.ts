/** Fine-tuning of pruned or quantised backbones: GIFT-SW, LoRA, full (methods.md §4). */
export * from "./compose.ts";
export * from "./salient.ts";
export * from "./gift.ts";
export * from "./lora.ts";
export * from "./activation.ts";
export * from "./adapt.ts";
