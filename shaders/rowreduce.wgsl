// Segmented per-row reductions: one workgroup per row (2D dispatch beyond 65535 rows), the 64 invocations
// stride over the row's T columns. Scalar loads, because rows start at any offset. P.wgOffset is the element
// shift of this chunk's bindings (binding offsets are aligned down to 256 bytes).
// It writes ROWS[i].xyz; .w holds the aggregation coefficient the host uploaded (read by the token pass).
//   MODE 0: ROWS[i].xyz = (0, 0, L_i)                                   row lengths of a GPU-resident mask
//   MODE 1: ROWS[i].xyz = (Σ_t d·m / max(L_i, 1), 0, L_i)              gspo's sequence log-ratio (d unclamped)
//   MODE 2: ROWS[i].xyz = (ℓ_i / ((L_i + 1e-8)·B), ℓ_i / B, L_i)      geo_mean, ℓ_i = −Â_i·ρ_i·gw_i

override MODE: u32 = 0u;
override HAS_W: bool = false;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> OLP: array<f32>;
@group(0) @binding(2) var<storage, read> LP: array<f32>;
@group(0) @binding(3) var<storage, read> ADV: array<f32>;
@group(0) @binding(4) var<storage, read> MASK: array<f32>;
@group(0) @binding(5) var<storage, read> W: array<f32>;
@group(0) @binding(6) var<storage, read_write> ROWS: array<vec4f>;

@compute @workgroup_size(WG)
fn main(ri: RIn, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  var acc = vec4f(0.0);
  if (wg < P.nwg) {
    let start = P.wgOffset + wg * P.T;
    for (var t = ri.lid; t < P.T; t += WG) {
      let e = start + t;
      if (MASK[e] != 0.0) {
        acc.w += 1.0;
        if (MODE == 1u) {
          acc.x += LP[e] - OLP[e];
        } else if (MODE == 2u) {
          let d = LP[e] - OLP[e];
          let a = ADV[e];
          let sgn = sign(a);
          let dc = clamp(d, -P.epsLow, P.epsHigh);
          acc.x += sgn * min(sgn * d, sgn * dc);
          acc.y += a;
          if (HAS_W) {
            acc.z += log(W[e] + 1e-10);
          }
        }
      }
    }
  }
  let r = wgReduce(acc, vec4f(0.0), ri);
  if (wg < P.nwg && ri.lid == 0u) {
    let s = r.a;
    let L = s.w;
    var out = vec3f(0.0, 0.0, L);
    if (MODE == 1u) {
      out.x = s.x / max(L, 1.0);
    } else if (MODE == 2u) {
      let Lp = L + 1e-8;
      var gw = 1.0;
      if (HAS_W) {
        gw = exp(s.z / Lp);
      }
      let li = -(s.y / Lp) * exp(s.x / Lp) * gw;
      let b = f32(P.B);
      out.x = li / (Lp * b);
      out.y = li / b;
    }
    let i = P.base + wg;
    ROWS[i].x = out.x;
    ROWS[i].y = out.y;
    ROWS[i].z = out.z;
  }
}
