// The fused per-token pass shared by every policy loss: VPT vec4 (4·VPT tokens) per invocation, 256·VPT per
// workgroup, one partial-sum slot pair per workgroup (per invocation with LANE_SLOTS, below). It calls the family's
// `tok` (prepended), then writes
// d loss / d lp = coef_row · w · ∂ℓ/∂lp at aggregated positions (0 elsewhere) and accumulates
//   PART[2s]   = (Σ coef·w·ℓ over the aggregation mask, Σ m0, Σ m1, Σ m2 over the response mask)
//   PART[2s+1] = (Σ of the inputs at valid positions: non-finite iff an input is non-finite there (or, for
//                |values| near 1e38, overflows; the host then checks the inputs exactly),
//                Σ m (entries equal to 1), the count of non-zero entries (by their bits: NaN included), 0);
//                the mask is 0/1 iff the two counts are equal)
// The host adds the slots in float64 (the valid-token count comes from the host's row lengths). With LANE_SLOTS
// (software adapters) every invocation writes its own slot pair, WG pairs per workgroup, and the pass has no barrier.

override HAS_W: bool = false;     // AUX carries weights w ≥ 0 multiplying ℓ and ∂ℓ/∂lp (IS weights, clip_cov's corr)
override HAS_SEL: bool = false;   // AUX's sign carries a 0/1 selection passed to `tok` (kl_cov's KL term)
override SEL_AGG: bool = false;   // the selection also multiplies the aggregation mask (eighty-twenty)
override PER_ROW: bool = false;   // the aggregation coefficient is ROWS[row].w (seq-mean-* modes)
override NEED_ROW: bool = false;  // `tok` reads the per-row value ROWS[row].x (gspo, geo_mean)
override COUNT_COEF: bool = false; // token-mean's coefficient is P.coef0 / N, N = maskcount.wgsl's count at ROWS[P.countAt].x
override MASK_CHECKED: bool = false; // the host or maskcount.wgsl already counted the mask and checked it is 0/1: skip both here
override SEL_TOPK: bool = false;  // eighty-twenty selected on the GPU: AUX holds the entropies and the aggregation mask is
                                  // key > P.cutKey, or key == P.cutKey at a global index ≤ P.cutIdx (topk.wgsl)
override SEL_TIES: bool = true;   // SEL_TOPK: only some ties at the cut are taken (else key ≥ P.cutKey: one comparison)
override LANE_SLOTS: bool = false; // one partial-sum slot pair per invocation instead of per workgroup: no barrier.
                                   // On lavapipe a barrier makes the shader a coroutine; without one the pass took
                                   // 3-19 % less GPU time in 7 of 8 paired timestamp-query runs (2^23 tokens). The host
                                   // adds 64× the slots, which on a hardware GPU would cost more than its barrier: off.

// Eight storage bindings (WebGPU's default limit). AUX packs weight and selection in one float, the
// selection in the sign bit (so −0.0 is an unselected zero weight): HAS_W only: w; HAS_SEL only: +1 / −1;
// both: +w selected, −w not.
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> OLP: array<vec4f>;
@group(0) @binding(2) var<storage, read> LP: array<vec4f>;
@group(0) @binding(3) var<storage, read> ADV: array<vec4f>;
@group(0) @binding(4) var<storage, read> MASK: array<vec4f>;
@group(0) @binding(5) var<storage, read> AUX: array<vec4f>;
@group(0) @binding(6) var<storage, read> ROWS: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> GRAD: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> PART: array<vec4f>;

@compute @workgroup_size(WG)
fn main(ri: RIn, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  var accL = 0.0;
  var acc0 = 0.0;
  var acc1 = 0.0;
  var acc2 = 0.0;
  var accN = 0.0;
  var accM = 0.0;
  var accB = 0.0;
  var c0 = P.coef0;
  if (wg < P.nwg) {
    let nv = (P.n + 3u) / 4u;
    let v0 = wg * (WG * VPT) + ri.lid;
    if (COUNT_COEF) {
      // the count was stored as a u32 by atomicAdd; bitcast reads its bits unchanged
      let cnt = bitcast<u32>(ROWS[P.countAt].x);
      c0 = select(0.0, P.coef0 / f32(cnt), cnt > 0u);
    }
    // A workgroup wholly below n (a uniform test) skips the bounds tests: only a chunk's last workgroup tests
    // each vec4's four indices. With the one-comparison mask, the shared log-ratio and c0 applied after the loop
    // (below), this made the pass 5-22 % faster on lavapipe in paired timestamp-query runs.
    let full = (wg + 1u) * (WG * VPT * 4u) <= P.n;
    for (var j = 0u; j < VPT; j++) {
      let v = v0 + j * WG;
      if (full || v < nv) {
        var inb = vec4<bool>(true);
        if (!full) {
          inb = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(P.n);
        }
        let mr = MASK[v];
        // A checked mask is exactly 0 or 1: one comparison (`!= 0` compiles to |x| > 0 on lavapipe). Unchecked, the
        // valid tokens are the entries equal to 1, and the host compares their count with the non-zero entries'
        // (which include NaN): any other entry makes the call throw, so its m does not matter.
        var m = (mr > vec4f(0.5)) & inb;
        if (!MASK_CHECKED) {
          m = (mr == ONE4) & inb;
          accB += dot(b2f(nonZero(mr) & inb), ONE4);
          accM += dot(b2f(m), ONE4);
        }
        let o = OLP[v];
        let l = LP[v];
        let a = ADV[v];
        accN += dot(select(vec4f(0.0), (l - o) + a, m), ONE4); // l − o is tok's log-ratio: computed once
        var coef = vec4f(c0);
        var rv = vec4f(0.0);
        if ((PER_ROW || NEED_ROW) && P.rowVec4 != 0u) {
          // T % 4 == 0 (a uniform, so a new shape never recompiles): the four tokens of a vec4 share one row
          let r0 = ROWS[min((P.base + v * 4u) / P.T, P.B - 1u)];
          if (PER_ROW) {
            coef = vec4f(r0.w);
          }
          if (NEED_ROW) {
            rv = vec4f(r0.x);
          }
        } else if (PER_ROW || NEED_ROW) {
          let k = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u);
          let row = min((k + vec4u(P.base)) / vec4u(P.T), vec4u(P.B - 1u));
          let r0 = ROWS[row.x];
          let r1 = ROWS[row.y];
          let r2 = ROWS[row.z];
          let r3 = ROWS[row.w];
          if (PER_ROW) {
            coef = vec4f(r0.w, r1.w, r2.w, r3.w);
          }
          if (NEED_ROW) {
            rv = vec4f(r0.x, r1.x, r2.x, r3.x);
          }
        }
        var w = vec4f(1.0);
        var sel = vec4f(1.0);
        var am = m;
        if (SEL_TOPK && !SEL_TIES) {
          am = m & (sortKey(AUX[v]) >= vec4u(P.cutKey));
        } else if (SEL_TOPK) {
          let key = sortKey(AUX[v]);
          let gk = vec4u(P.base + v * 4u) + vec4u(0u, 1u, 2u, 3u);
          am = m & ((key > vec4u(P.cutKey)) | ((key == vec4u(P.cutKey)) & (gk <= vec4u(P.cutIdx))));
        } else if (HAS_W || HAS_SEL) {
          let x = AUX[v];
          if (HAS_SEL) {
            let on = (bitcast<vec4u>(x) & vec4u(0x80000000u)) == vec4u(0u);
            sel = b2f(on);
            if (HAS_W) {
              w = abs(x);
            }
            if (SEL_AGG) {
              am = m & on;
            }
          } else {
            w = x;
          }
          if (HAS_W) {
            accN += dot(select(vec4f(0.0), w, m), ONE4);
          }
        }
        let t = tok(o, l, a, rv, sel);
        let cw = coef * w;
        GRAD[v] = select(vec4f(0.0), cw * t.dl, am);
        // scalar accumulators: on lavapipe every live vec4 costs four SIMD registers
        if (PER_ROW || HAS_W) {
          accL += dot(select(vec4f(0.0), cw * t.loss, am), ONE4);
        } else {
          accL += dot(select(vec4f(0.0), t.loss, am), ONE4); // times the uniform c0 once, after the loop
        }
        acc0 += dot(select(vec4f(0.0), t.m0, m), ONE4);
        acc1 += dot(select(vec4f(0.0), t.m1, m), ONE4);
        acc2 += dot(select(vec4f(0.0), t.m2, m), ONE4);
      }
    }
  }
  if (!(PER_ROW || HAS_W)) {
    accL *= c0;
  }
  if (LANE_SLOTS) {
    if (wg < P.nwg) {
      let s = 2u * ((P.wgOffset + wg) * WG + ri.lid);
      PART[s] = vec4f(accL, acc0, acc1, acc2);
      PART[s + 1u] = vec4f(accN, accM, accB, 0.0);
    }
  } else {
    let r = wgReduce(
      vec4f(accL, acc0, acc1, acc2),
      vec4f(accN, accM, accB, 0.0),
      ri,
    );
    if (wg < P.nwg && ri.lid == 0u) {
      let s = 2u * (P.wgOffset + wg);
      PART[s] = r.a;
      PART[s + 1u] = r.b;
    }
  }
}
