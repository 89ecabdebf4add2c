// Reading N:M metadata (src/sparse/format.ts): a lane's fields are packed from bit 0 of its first
// word, p.width bits each, free to straddle two words. A composed piece: the shader defines
// `nm_meta` (u32 words), `binomials` (C(c, i) at c·33 + i; with MASK_TABLE followed by the kept
// mask of every code of the pattern, src/sparse/tables.ts) and the Params fields n, m, width, words.
override COMBINATORIAL: bool = false;
// Combinatorial codes decoded by one table lookup instead of an M-step walk (patterns with few
// codes: 2:4, 4:8, 8:16).
override MASK_TABLE: bool = false;
const MASKS_AT = 1089u;

// Field `field` of lane `lane`.
fn nm_field(lane: u32, field: u32) -> u32 {
  let bit = field * p.width;
  let at = lane * p.words + (bit >> 5u);
  let off = bit & 31u;
  var v = nm_meta[at] >> off;
  if (off + p.width > 32u) { v |= nm_meta[at + 1u] << (32u - off); }
  return select(v & ((1u << p.width) - 1u), v, p.width == 32u);
}

// The kept positions of group g of a lane as a bit mask (structured patterns: M ≤ 32). A
// combinatorial code is decoded greedily: the largest c with C(c, i) ≤ the rank left is the
// i-th kept position, for i = N down to 1.
fn nm_group_mask(lane: u32, g: u32) -> u32 {
  var mask = 0u;
  if (COMBINATORIAL && MASK_TABLE) {
    mask = binomials[MASKS_AT + nm_field(lane, g)];
  } else if (COMBINATORIAL) {
    var r = nm_field(lane, g);
    var i = p.n;
    for (var c = p.m; c > 0u && i > 0u; c--) {
      let b = binomials[(c - 1u) * 33u + i];
      if (b <= r) {
        mask |= 1u << (c - 1u);
        r -= b;
        i--;
      }
    }
  } else {
    for (var j = 0u; j < p.n; j++) { mask |= 1u << nm_field(lane, g * p.n + j); }
  }
  return mask;
}

// A walk over a lane's kept positions in ascending order: kept value q sits at position
// q / N · M + its field with indices; with combinatorial codes a group's mask is decoded when
// the walk enters it and its lowest bit is taken each step. With indices `mask` counts the values
// already taken from the group, so that no step divides by N (a division by a runtime value has
// no vector instruction on a CPU adapter: it runs once per lane).
struct Kept { lane: u32, q: u32, group: u32, mask: u32 }

// The walk from the start of group g.
fn kept_from(lane: u32, g: u32) -> Kept {
  return Kept(lane, g * p.n, g, 0u);
}

// The walk from kept value q; with codes q must start a group.
fn kept_from_value(lane: u32, q: u32) -> Kept {
  return Kept(lane, q, q / p.n, q % p.n);
}

fn kept_next(k: ptr<function, Kept>) -> u32 {
  if (COMBINATORIAL) {
    if ((*k).mask == 0u) {
      (*k).mask = nm_group_mask((*k).lane, (*k).group);
      (*k).group += 1u;
    }
    let c = firstTrailingBit((*k).mask);
    (*k).mask &= (*k).mask - 1u;
    return ((*k).group - 1u) * p.m + c;
  }
  let q = (*k).q;
  let at = (*k).group * p.m + nm_field((*k).lane, q);
  (*k).q = q + 1u;
  (*k).mask += 1u;
  if ((*k).mask == p.n) {
    (*k).mask = 0u;
    (*k).group += 1u;
  }
  return at;
}
