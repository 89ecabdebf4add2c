/**
 * A kernel's variants (tile shapes, layouts) and the one each engine runs: chosen by a measurement
 * or a flag (`use`), else the default for the adapter's kind, since one shape rarely suits both a
 * GPU and a CPU implementation of WebGPU.
 */
import type { Engine } from "./engine.ts";

export class VariantChoice<V extends { readonly name: string }> {
  readonly #chosen = new WeakMap<Engine, V>();

  constructor(
    /** What the variants are of, for messages ("GEMV", "GRU"). */
    readonly what: string,
    readonly variants: readonly V[],
    /** The default's name on a software adapter and on a GPU. */
    readonly defaults: { software: string; gpu: string },
  ) {
    this.named(defaults.software);
    this.named(defaults.gpu);
  }

  named(name: string): V {
    const found = this.variants.find((v) => v.name === name);
    if (!found) {
      throw new RangeError(
        `unknown ${this.what} variant "${name}": one of ${
          this.variants.map((v) => v.name).join(", ")
        }`,
      );
    }
    return found;
  }

  /** The engine's variant: the one chosen, else the adapter kind's default. */
  of(e: Engine): V {
    return this.#chosen.get(e) ?? this.defaultFor(e);
  }

  defaultFor(e: Engine): V {
    return this.named(e.gpu.isSoftware ? this.defaults.software : this.defaults.gpu);
  }

  /** Makes `name` the engine's variant from now on. */
  use(e: Engine, name: string): V {
    const v = this.named(name);
    this.#chosen.set(e, v);
    return v;
  }
}
