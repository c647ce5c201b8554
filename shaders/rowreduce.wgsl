// Segmented per-row reductions. P.wgOffset is the element shift of this chunk's bindings (binding offsets are
// aligned down to 256 bytes); P.nwg is the chunk's row count.
//   ROW_PER_LANE = false (GPUs): one workgroup per row (2D dispatch beyond 65535 rows), the 64 invocations stride over
//     the row's T columns with scalar loads (rows start at any offset) and reduce with wgReduce.
//   ROW_PER_LANE = true (software adapters): one row per invocation, read as vec4s (the components outside the row
//     masked off, so rows may start at any offset), no barrier. On lavapipe a scalar load costs about what a vec4 load
//     does, and a barrier makes the shader a coroutine.
// It writes ROWS[i].xyz; .w holds the aggregation coefficient the host uploaded (read by the token pass).
//   MODE 0: ROWS[i].xyz = (0, 0, L_i)                                   row lengths of a GPU-resident mask
//   MODE 1: ROWS[i].xyz = (Σ_t d·m / max(L_i, 1), 0, L_i)              gspo's sequence log-ratio (d unclamped)
//   MODE 2: ROWS[i].xyz = (ℓ_i / ((L_i + 1e-8)·B), ℓ_i / B, L_i)      geo_mean, ℓ_i = −Â_i·ρ_i·gw_i

override MODE: u32 = 0u;
override HAS_W: bool = false;
override ROW_PER_LANE: bool = false;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> OLP: array<vec4f>;
@group(0) @binding(2) var<storage, read> LP: array<vec4f>;
@group(0) @binding(3) var<storage, read> ADV: array<vec4f>;
@group(0) @binding(4) var<storage, read> MASK: array<vec4f>;
@group(0) @binding(5) var<storage, read> W: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> ROWS: array<vec4f>;

// One element's terms: (x: Σ of the mode's per-token term, y: Σ A (MODE 2), z: Σ log(w + 1e-10) (MODE 2)), valid m.
struct Terms {
  x: vec4f,
  y: vec4f,
  z: vec4f,
}

fn terms(o: vec4f, l: vec4f, a: vec4f, w: vec4f, m: vec4<bool>) -> Terms {
  var t = Terms(vec4f(0.0), vec4f(0.0), vec4f(0.0));
  if (MODE == 1u) {
    t.x = select(vec4f(0.0), l - o, m);
  } else if (MODE == 2u) {
    let d = l - o;
    let sgn = sign(a);
    let dc = clamp(d, vec4f(-P.epsLow), vec4f(P.epsHigh));
    t.x = select(vec4f(0.0), sgn * min(sgn * d, sgn * dc), m);
    t.y = select(vec4f(0.0), a, m);
    if (HAS_W) {
      t.z = select(vec4f(0.0), log(w + 1e-10), m);
    }
  }
  return t;
}

// The row's sums s = (Σ x, Σ y, Σ z, L) → ROWS[P.base + row].xyz
fn finish(row: u32, s: vec4f) {
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
  let i = P.base + row;
  ROWS[i].x = out.x;
  ROWS[i].y = out.y;
  ROWS[i].z = out.z;
}

@compute @workgroup_size(WG)
fn main(ri: RIn, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  if (ROW_PER_LANE) {
    let row = wg * WG + ri.lid;
    if (row < P.nwg) {
      let start = P.wgOffset + row * P.T;
      let end = start + P.T;
      // vec4 partial sums, added in blocks of 16 vec4 (64 tokens) so a long row's float32 sum stays accurate
      var s = vec4f(0.0);
      var v = start / 4u;
      let vEnd = (end + 3u) / 4u;
      while (v < vEnd) {
        var bx = vec4f(0.0);
        var by = vec4f(0.0);
        var bz = vec4f(0.0);
        var bm = vec4f(0.0);
        let stop = min(v + 16u, vEnd);
        for (; v < stop; v++) {
          let k = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u);
          let m = (k >= vec4u(start)) & (k < vec4u(end)) & (MASK[v] != vec4f(0.0));
          bm += b2f(m);
          if (MODE != 0u) {
            var w = vec4f(1.0);
            if (HAS_W) {
              w = W[v];
            }
            let t = terms(OLP[v], LP[v], ADV[v], w, m);
            bx += t.x;
            by += t.y;
            bz += t.z;
          }
        }
        s += vec4f(dot(bx, ONE4), dot(by, ONE4), dot(bz, ONE4), dot(bm, ONE4));
      }
      finish(row, s);
    }
    return;
  }
  var acc = vec4f(0.0);
  if (wg < P.nwg) {
    let start = P.wgOffset + wg * P.T;
    for (var t = ri.lid; t < P.T; t += WG) {
      let e = start + t;
      let c = e % 4u;
      if (MASK[e / 4u][c] != 0.0) {
        acc.w += 1.0;
        if (MODE != 0u) {
          var w = 1.0;
          if (HAS_W) {
            w = W[e / 4u][c];
          }
          let q = terms(vec4f(OLP[e / 4u][c]), vec4f(LP[e / 4u][c]), vec4f(ADV[e / 4u][c]), vec4f(w), vec4<bool>(true, false, false, false));
          acc.x += q.x.x;
          acc.y += q.y.x;
          acc.z += q.z.x;
        }
      }
    }
  }
  let r = wgReduce(acc, vec4f(0.0), ri);
  if (wg < P.nwg && ri.lid == 0u) {
    finish(wg, r.a);
  }
}
