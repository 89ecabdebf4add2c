/**
 * Train/validation/test splits.
 *
 * Both splits return per-user training sequences (index = user; possibly empty) and evaluation
 * examples `{ user, history, target }`: the model reads `history` (time order) and must rank
 * `target` over the whole catalogue. Arrays are views into the dataset's sequences (no copies), so
 * they must not be modified.
 */
import type { Dataset } from "./dataset.ts";

export interface EvalExample {
  user: number;
  history: Int32Array;
  target: number;
}

export interface Split {
  train: Int32Array[];
  valid: EvalExample[];
  test: EvalExample[];
}

/**
 * Leave-one-out: last item = test (history: everything before it), second to last = validation
 * (history: the training part), the rest = training. Users with fewer than 3 items are train-only:
 * their whole sequence is training data and they have no validation or test example (the same
 * users the SASRec reference code keeps out of evaluation).
 */
export function leaveOneOut(ds: Dataset): Split {
  const split: Split = { train: [], valid: [], test: [] };
  ds.sequences.forEach((s, user) => {
    const n = s.length;
    if (n < 3) {
      split.train.push(s);
      return;
    }
    split.train.push(s.subarray(0, n - 2));
    split.valid.push({ user, history: s.subarray(0, n - 2), target: s[n - 2] });
    split.test.push({ user, history: s.subarray(0, n - 1), target: s[n - 1] });
  });
  return split;
}

/** Global temporal split with the two boundaries it used (timestamps, same unit as the data). */
export interface TemporalSplit extends Split {
  /** Interactions at or after this time are the test period. */
  testTime: number;
  /** Interactions in [validTime, testTime) are the validation period. */
  validTime: number;
}

/**
 * Global temporal split of the CCE- paper (methods.md §2). One time boundary for everybody: the
 * test period starts at the (1 − testFraction) quantile of all interaction times, so it holds the
 * last `testFraction` of interactions. Choices (ours):
 * - validation is the same construction inside the pre-test period: its last `validFraction` of
 *   interactions (default: testFraction of them);
 * - training = all interactions before the validation period, so the model never trains on a
 *   validation or test target;
 * - a test user is one whose last interaction is in the test period: target = that last item,
 *   history = everything before it (the full history, test-period items included, leave-one-out
 *   style); likewise for validation, with the user's pre-test interactions;
 * - ground truth is restricted to items seen in training: an example whose target never occurs in
 *   `train` is dropped, as is one with an empty history.
 */
export function globalTemporalSplit(
  ds: Dataset,
  testFraction = 0.1,
  validFraction = testFraction,
): TemporalSplit {
  const times = ds.timestamps;
  if (!times) throw new Error(`dataset ${ds.name} has no timestamps: no global temporal split`);
  checkFraction("testFraction", testFraction);
  checkFraction("validFraction", validFraction);
  const sorted = sortedTimes(times);
  const testTime = quantileBoundary(sorted, sorted.length, testFraction);
  const validTime = quantileBoundary(sorted, lowerBound(sorted, testTime), validFraction);
  const train = times.map((t, u) => ds.sequences[u].subarray(0, lowerBound(t, validTime)));
  const seen = seenItems(train, ds.items);
  const valid: EvalExample[] = [];
  const test: EvalExample[] = [];
  ds.sequences.forEach((s, user) => {
    const preTest = lowerBound(times[user], testTime);
    const v = lastInPeriod(user, s.subarray(0, preTest), times[user], validTime, seen);
    if (v) valid.push(v);
    const t = lastInPeriod(user, s, times[user], testTime, seen);
    if (t) test.push(t);
  });
  return { train, valid, test, testTime, validTime };
}

/** The example "predict the last item of `s` from the rest" if that item is at or after `from`. */
function lastInPeriod(
  user: number,
  s: Int32Array,
  t: Float64Array,
  from: number,
  seen: Uint8Array,
): EvalExample | null {
  const n = s.length;
  if (n < 2 || t[n - 1] < from || !seen[s[n - 1]]) return null;
  return { user, history: s.subarray(0, n - 1), target: s[n - 1] };
}

function checkFraction(name: string, f: number): void {
  if (!(f > 0 && f < 1)) throw new RangeError(`${name} must be in (0, 1), got ${f}`);
}

function sortedTimes(times: Float64Array[]): Float64Array {
  let n = 0;
  for (const t of times) n += t.length;
  const all = new Float64Array(n);
  let at = 0;
  for (const t of times) {
    all.set(t, at);
    at += t.length;
  }
  return all.sort();
}

/** The time from which the last `fraction` of the first `n` sorted times begins. */
function quantileBoundary(sorted: Float64Array, n: number, fraction: number): number {
  if (n === 0) return sorted.length > 0 ? sorted[0] : 0;
  return sorted[Math.min(n - 1, Math.floor((1 - fraction) * n))];
}

/** First index whose time is ≥ `value` (times ascending). */
function lowerBound(times: Float64Array, value: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (times[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function seenItems(train: Int32Array[], items: number): Uint8Array {
  const seen = new Uint8Array(items + 1);
  for (const s of train) for (let i = 0; i < s.length; i++) seen[s[i]] = 1;
  return seen;
}
