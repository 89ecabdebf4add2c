/** The GPU list of token ids a decoder samples into; only these are read back while decoding. */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";

export class DecodedIds {
  readonly tensor: Tensor;

  constructor(engine: Engine, readonly capacity: number, readonly who: string) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      throw new RangeError(`${who}: capacity ${capacity} is not a positive integer`);
    }
    this.tensor = engine.zeros([capacity], "u32", "decoded ids");
    engine.keep(this.tensor);
  }

  /** Throws unless tokens [from, from + count) are within the list. */
  check(from: number, count: number): void {
    if (!(Number.isInteger(from) && from >= 0 && count >= 1 && from + count <= this.capacity)) {
      throw new RangeError(
        `${this.who}: tokens [${from}, ${from + count}) are past the ${this.capacity} ids`,
      );
    }
  }

  /** Ids [from, from + count) sampled so far; submits the recorded work. */
  async read(from: number, count: number): Promise<number[]> {
    this.check(from, count);
    const bytes = await this.tensor.engine.gpu.read(this.tensor.storage, from * 4, count * 4);
    return [...new Uint32Array(bytes)];
  }

  dispose(): void {
    this.tensor.dispose();
  }
}
