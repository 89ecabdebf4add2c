/**
 * Composing WGSL from the sparse pieces (WGSL has no include): the gathered-dot core that CCE-
 * and the sparse matmuls share, and the N:M metadata reader. The composed text is what a kernel
 * declares as its source, so the pipeline cache keys on it.
 */
import gatheredDotShader from "../../shaders/sparse_gathered_dot.wgsl" with { type: "text" };
import nmShader from "../../shaders/sparse_nm.wgsl" with { type: "text" };

/**
 * `shader` with the gathered dot appended; the shader defines `struct Gather`, `gather_a` and
 * `gather_next` (see sparse_gathered_dot.wgsl).
 */
export function withGatheredDot(shader: string): string {
  return `${shader}\n${gatheredDotShader}`;
}

/**
 * `shader` with the N:M metadata reader appended; the shader defines `meta`, `binomials` and the
 * Params fields n, m, width, words (see sparse_nm.wgsl).
 */
export function withNmReader(shader: string): string {
  return `${shader}\n${nmShader}`;
}
