// token-mean's denominator N = the number of non-zero entries of the response mask, counted on the GPU so the host
// never scans the mask (the token pass then uses coef0 / N, COUNT_COEF). Same layout as tokenpass.wgsl (VPT vec4
// per invocation, WG·VPT·4 tokens per workgroup, binding windows of P.n tokens); each workgroup adds its count to
// COUNT[0], and its count of entries that are neither 0 nor 1 (NaN included) to COUNT[1], with one atomicAdd each
// (the host zeroes them first). The token pass then skips its own count and 0/1 check (MASK_CHECKED).

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> MASK: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> COUNT: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(ri: RIn, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  var acc = 0.0;
  var bad = 0.0;
  if (wg < P.nwg) {
    let nv = (P.n + 3u) / 4u;
    let v0 = wg * (WG * VPT) + ri.lid;
    for (var j = 0u; j < VPT; j++) {
      let v = v0 + j * WG;
      if (v < nv) {
        let inb = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(P.n);
        let mr = MASK[v];
        acc += dot(b2f(nonZero(mr) & inb), ONE4);
        bad += dot(b2f(notZeroOne(mr) & inb), ONE4);
      }
    }
  }
  // a workgroup counts at most WG·VPT·4 ≤ 2^24 tokens: exact in f32
  let r = wgReduce(vec4f(acc, bad, 0.0, 0.0), vec4f(0.0), ri);
  if (wg < P.nwg && ri.lid == 0u) {
    atomicAdd(&COUNT[0], u32(r.a.x));
    if (r.a.y > 0.0) {
      atomicAdd(&COUNT[1], u32(r.a.y));
    }
  }
}
