/**
 * Synthetic transaction logs with a known class structure, for training and testing the
 * event-sequence encoders where the right answer is known. Each client belongs to one of K
 * classes; a class has its own mix of categories (half a shared mix, half its own), its own
 * shift of the log-normal amounts and its own burstiness of timing (a share of short gaps inside
 * sessions, and a mean gap between sessions). Categories repeat with a shared probability, so
 * order carries a little information too. Everything is a function of the seed.
 */
import { seededRandom } from "../tensor/random.ts";
import type { ClientLabels, EventSequences } from "./transactions.ts";

export interface EventSyntheticOptions {
  clients: number;
  classes?: number;
  categories?: number;
  minEvents?: number;
  maxEvents?: number;
  seed?: number;
}

/** The generator's largest client count (the scale). */
export const MAX_SYNTHETIC_CLIENTS = 100_000;

interface ClassProfile {
  /** Cumulative category probabilities. */
  cdf: Float64Array;
  amountShift: number;
  burstShare: number;
  sessionGap: number;
}

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

function cumulative(w: Float64Array): Float64Array {
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  return w.map((v) => (acc += v / total));
}

function profiles(r: () => number, classes: number, categories: number): ClassProfile[] {
  const shared = Float64Array.from({ length: categories }, () => r() ** 2);
  const sharedTotal = shared.reduce((a, b) => a + b, 0);
  return Array.from({ length: classes }, () => {
    const own = Float64Array.from({ length: categories }, () => r() ** 6);
    const ownTotal = own.reduce((a, b) => a + b, 0);
    const mix = shared.map((v, i) => 0.5 * v / sharedTotal + 0.5 * own[i] / ownTotal);
    return {
      cdf: cumulative(mix),
      amountShift: 0.6 * (r() - 0.5),
      burstShare: 0.2 + 0.6 * r(),
      sessionGap: 0.5 + 2.5 * r(),
    };
  });
}

function draw(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Clients with their events and class labels (classes named "0".."K-1"). */
export function syntheticEvents(
  o: EventSyntheticOptions,
): { sequences: EventSequences; labels: ClientLabels } {
  const classes = o.classes ?? 4;
  const categories = o.categories ?? 24;
  const minEvents = o.minEvents ?? 20;
  const maxEvents = o.maxEvents ?? 120;
  if (!(Number.isInteger(o.clients) && o.clients >= 1 && o.clients <= MAX_SYNTHETIC_CLIENTS)) {
    throw new RangeError(
      `synthetic events: clients ${o.clients} is outside [1, ${MAX_SYNTHETIC_CLIENTS}]`,
    );
  }
  if (!(minEvents >= 1 && maxEvents >= minEvents)) {
    throw new RangeError(
      `synthetic events: events per client [${minEvents}, ${maxEvents}] is empty`,
    );
  }
  const r = seededRandom(o.seed ?? 1);
  const classProfiles = profiles(r, classes, categories);
  const categoryAmount = Float64Array.from({ length: categories }, () => 1 + 4 * r());
  const labels = new Int32Array(o.clients);
  const lengths = Int32Array.from({ length: o.clients }, (_, c) => {
    labels[c] = Math.floor(r() * classes);
    return minEvents + Math.floor(r() * (maxEvents - minEvents + 1));
  });
  const offsets = new Int32Array(o.clients + 1);
  lengths.forEach((n, c) => (offsets[c + 1] = offsets[c] + n));
  const total = offsets[o.clients];
  const category = new Int32Array(total);
  const amount = new Float32Array(total);
  const time = new Float64Array(total);
  for (let c = 0; c < o.clients; c++) {
    const p = classProfiles[labels[c]];
    let t = 0;
    let previous = -1;
    for (let i = offsets[c]; i < offsets[c + 1]; i++) {
      const k = previous >= 0 && r() < 0.3 ? previous : draw(p.cdf, r());
      category[i] = previous = k;
      amount[i] = Math.exp(categoryAmount[k] + p.amountShift + 0.8 * normal(r));
      t += -Math.log(1 - r()) * (r() < p.burstShare ? 0.05 : p.sessionGap);
      time[i] = t;
    }
  }
  const sequences: EventSequences = {
    name: `synthetic-${o.clients}`,
    clientIds: Array.from({ length: o.clients }, (_, c) => String(c)),
    offsets,
    time,
    categorical: [{
      name: "category",
      values: category,
      vocab: Array.from({ length: categories }, (_, k) => String(k)),
    }],
    numeric: [{ name: "amount", values: amount }],
  };
  return {
    sequences,
    labels: { classes: Array.from({ length: classes }, (_, k) => String(k)), labels },
  };
}

/** Client-level split: a seeded shuffle of the clients cut into train, validation and test. */
export interface ClientSplit {
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

export function splitClients(
  clients: number,
  seed: number,
  fractions = { valid: 0.1, test: 0.1 },
): ClientSplit {
  const r = seededRandom(seed);
  const order = Int32Array.from({ length: clients }, (_, i) => i);
  for (let i = clients - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nValid = Math.round(clients * fractions.valid);
  const nTest = Math.round(clients * fractions.test);
  if (clients - nValid - nTest < 1) {
    throw new RangeError(`split: ${clients} clients leave none for training`);
  }
  return {
    valid: order.slice(0, nValid).sort(),
    test: order.slice(nValid, nValid + nTest).sort(),
    train: order.slice(nValid + nTest).sort(),
  };
}
