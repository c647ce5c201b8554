// eighty-twenty's top-k selection on the GPU: a radix select over 32-bit order-preserving keys of the entropies of
// the valid tokens (three levels of 12, 12 and 8 bits; the host walks each level's histogram from the top and keeps
// the bin that holds the k-th largest), then the indices of the tokens whose key equals the cut, so the host can
// take the lowest-index ties first, as the CPU reference does. Same token layout as tokenpass.wgsl.
//   COLLECT = false: OUT[b] += tokens whose key matches S.prefix under S.mask, binned by (key >> S.shift) & 4095;
//                    OUT[4096] += valid tokens whose entropy is not finite (the host then reports them)
//   COLLECT = true:  OUT[0] counts and OUT[1 + i] receives the global index of each valid token whose key matches
//                    S.prefix under S.mask (the cut's ties; order unspecified, the host sorts them)
//   BY_INDEX = true: the histogram's keys are ~(global index) of the valid tokens whose entropy key is S.cut, so a
//                    radix select over them finds the r-th lowest index among the ties (when too many ties to
//                    collect into one binding)
//   BAND = true:     the one pass of a sample-guided selection (the host picked keys lo = S.prefix ≤ hi = S.cut from
//                    a sample of the entropies): OUT[0] += valid tokens, OUT[1] += valid tokens with key > hi,
//                    OUT[2] += valid tokens whose entropy is not finite, OUT[3] counts the valid tokens with key in
//                    [lo, hi], OUT[4] += mask entries that are not 0/1 (so the token pass need not check), and, for
//                    the i-th band token (i < S.mask, the capacity), OUT[8 + 2i] and OUT[9 + 2i] receive its global
//                    index and key. No histogram atomics: most tokens only load and compare.

//   SAMPLE = true:   S.mask samples of GPU-resident entropies for BAND, one in each of S.mask equal blocks of the n
//                    tokens at a hashed offset: OUT[i] = the sample's key, or 0 (no finite value has key 0) where the
//                    token is masked or its entropy is not finite. One invocation per sample, one binding window.

override COLLECT: bool = false;
override BY_INDEX: bool = false;
override BAND: bool = false;
override SAMPLE: bool = false;
const NBINS: u32 = 4096u;

struct Select {
  shift: u32,
  mask: u32,
  prefix: u32,
  cut: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<uniform> S: Select;
@group(0) @binding(2) var<storage, read> ENT: array<vec4f>;
@group(0) @binding(3) var<storage, read> MASK: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> OUT: array<atomic<u32>>;

// BAND reuses it: bins[0 .. 2·PAIRS) hold the workgroup's (index, key) pairs, bins[BAND_N] counts them (pairs beyond
// PAIRS go straight to OUT) and bins[BAND_AT] is where they start in OUT.
var<workgroup> bins: array<atomic<u32>, NBINS>;
const PAIRS: u32 = NBINS / 2u - 1u;
const BAND_HEAD: u32 = 8u; // BAND: OUT's header words before the (index, key) pairs
const BAND_AT: u32 = NBINS - 2u;
const BAND_N: u32 = NBINS - 1u;

// BAND: one (index, key) pair into OUT (pair `at` of S.mask)
fn bandStore(at: u32, idx: u32, key: u32) {
  if (at < S.mask) {
    atomicStore(&OUT[BAND_HEAD + 2u * at], idx);
    atomicStore(&OUT[BAND_HEAD + 2u * at + 1u], key);
  }
}

// A 32-bit hash (PCG's output permutation) for SAMPLE's offsets.
fn hash(x: u32) -> u32 {
  let h = x * 747796405u + 2891336453u;
  let w = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  if (SAMPLE) {
    let i = wg * WG + lid;
    if (i < S.mask && P.n > 0u) {
      let at = min(P.n - 1u, u32((f32(i) + f32(hash(i)) * 2.3283064e-10) * (f32(P.n) / f32(S.mask))));
      let e = ENT[at / 4u][at % 4u];
      let ok = MASK[at / 4u][at % 4u] != 0.0 && !nonFinite(vec4f(e)).x;
      atomicStore(&OUT[i], select(0u, sortKey(vec4f(e)).x, ok));
    }
    return;
  }
  if (BAND) {
    if (lid == 0u) {
      atomicStore(&bins[BAND_N], 0u);
    }
    workgroupBarrier();
  } else if (!COLLECT) {
    for (var i = lid; i < NBINS; i += WG) {
      atomicStore(&bins[i], 0u);
    }
    workgroupBarrier();
  }
  var bad = 0u;
  var nValid = 0u;
  var nAbove = 0u;
  var nBadMask = 0u;
  if (wg < P.nwg) {
    let nv = (P.n + 3u) / 4u;
    let v0 = wg * (WG * VPT) + lid;
    for (var j = 0u; j < VPT; j++) {
      let v = v0 + j * WG;
      if (v < nv) {
        let kk = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u);
        let inb = kk < vec4u(P.n);
        let mr = MASK[v];
        let valid = (mr != vec4f(0.0)) & inb;
        let e = ENT[v];
        var key = sortKey(e);
        bad += dot(select(vec4u(0u), vec4u(1u), valid & nonFinite(e)), vec4u(1u));
        if (BAND) {
          let above = valid & (key > vec4u(S.cut));
          let band = valid & (key >= vec4u(S.prefix)) & !above;
          nValid += dot(select(vec4u(0u), vec4u(1u), valid), vec4u(1u));
          nAbove += dot(select(vec4u(0u), vec4u(1u), above), vec4u(1u));
          nBadMask += dot(select(vec4u(0u), vec4u(1u), notZeroOne(mr) & inb), vec4u(1u));
          if (any(band)) {
            for (var c = 0u; c < 4u; c++) {
              if (band[c]) {
                // into workgroup memory (on a CPU adapter a workgroup runs on one thread: no contention)
                let at = atomicAdd(&bins[BAND_N], 1u);
                if (at < PAIRS) {
                  atomicStore(&bins[2u * at], P.base + kk[c]);
                  atomicStore(&bins[2u * at + 1u], key[c]);
                } else {
                  bandStore(atomicAdd(&OUT[3], 1u), P.base + kk[c], key[c]);
                }
              }
            }
          }
          continue;
        }
        var live = valid;
        if (BY_INDEX) {
          live = valid & (key == vec4u(S.cut));
          key = ~(vec4u(P.base) + kk);
        }
        let hit = live & ((key & vec4u(S.mask)) == vec4u(S.prefix));
        if (any(hit)) {
          for (var c = 0u; c < 4u; c++) {
            if (hit[c]) {
              if (COLLECT) {
                let at = atomicAdd(&OUT[0], 1u);
                atomicStore(&OUT[1u + at], P.base + kk[c]);
              } else {
                atomicAdd(&bins[(key[c] >> S.shift) & (NBINS - 1u)], 1u);
              }
            }
          }
        }
      }
    }
  }
  if (BAND) {
    // reserve the workgroup's range of OUT with one atomic, then copy its pairs there
    workgroupBarrier();
    let held = min(atomicLoad(&bins[BAND_N]), PAIRS);
    if (lid == 0u && held > 0u) {
      atomicStore(&bins[BAND_AT], atomicAdd(&OUT[3], held));
    }
    workgroupBarrier();
    let start = atomicLoad(&bins[BAND_AT]);
    for (var i = lid; i < held; i += WG) {
      bandStore(start + i, atomicLoad(&bins[2u * i]), atomicLoad(&bins[2u * i + 1u]));
    }
    if (nValid > 0u) {
      atomicAdd(&OUT[0], nValid);
    }
    if (nAbove > 0u) {
      atomicAdd(&OUT[1], nAbove);
    }
    if (bad > 0u) {
      atomicAdd(&OUT[2], bad);
    }
    if (nBadMask > 0u) {
      atomicAdd(&OUT[4], nBadMask);
    }
  } else if (!COLLECT) {
    workgroupBarrier();
    for (var i = lid; i < NBINS; i += WG) {
      let c = atomicLoad(&bins[i]);
      if (c > 0u) {
        atomicAdd(&OUT[i], c);
      }
    }
    if (bad > 0u) {
      atomicAdd(&OUT[NBINS], bad);
    }
  }
}
