// Row-wise entropy of softmax(z·invTemp) over the vocabulary (verl's entropy_from_logits, TF:224-238), one
// workgroup per position. Each of the 64 invocations strides over V: a first pass finds its running max m,
// a second accumulates s = Σ e^{z−m} and t = Σ e^{z−m}·(z − m) (one exp per logit, no divergent rescaling).
// The 64 (m, s, t) states are merged by a barrier tree as an online log-sum-exp, and H = log s − t/s.
// Softmax is never materialised in global memory; V up to 152k (Qwen) in one dispatch.
// VEC4 (override): V % 4 == 0, read the logits as vec4 through Z4 (the host binds the same buffer to Z and Z4).
// Params: n = positions in this chunk, T = V, base = output index of the chunk's first position,
// groupsX = workgroups along x of the 2D dispatch, coef0 = 1/temperature.

override VEC4: bool = false;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Z: array<f32>;
@group(0) @binding(2) var<storage, read_write> HOUT: array<f32>;
@group(0) @binding(3) var<storage, read> Z4: array<vec4f>;

var<workgroup> entM: array<f32, WG>;
var<workgroup> entS: array<f32, WG>;
var<workgroup> entT: array<f32, WG>;

const ENT_NEG_BIG: f32 = -3.0e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let pos = wg.y * P.groupsX + wg.x;
  if (pos >= P.n) {
    return;
  }
  let V = P.T;
  let it = P.coef0;
  var m = ENT_NEG_BIG;
  var s = 0.0;
  var t = 0.0;
  if (VEC4) {
    let V4 = V / 4u;
    let off4 = pos * V4;
    var m4 = vec4f(ENT_NEG_BIG);
    for (var v = lid; v < V4; v += WG) {
      m4 = max(m4, Z4[off4 + v] * it);
    }
    m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var s4 = vec4f(0.0);
    var t4 = vec4f(0.0);
    for (var v = lid; v < V4; v += WG) {
      let d = Z4[off4 + v] * it - m;
      let w = exp(d);
      s4 += w;
      t4 += select(vec4f(0.0), w * d, w > vec4f(0.0));
    }
    s = (s4.x + s4.y) + (s4.z + s4.w);
    t = (t4.x + t4.y) + (t4.z + t4.w);
  } else {
    let off = pos * V;
    for (var v = lid; v < V; v += WG) {
      m = max(m, Z[off + v] * it);
    }
    for (var v = lid; v < V; v += WG) {
      let d = Z[off + v] * it - m;
      let w = exp(d);
      s += w;
      t += select(0.0, w * d, w > 0.0);
    }
  }
  entM[lid] = m;
  entS[lid] = s;
  entT[lid] = t;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let m1 = entM[lid];
      let m2 = entM[lid + k];
      let mx = max(m1, m2);
      let a = exp(m1 - mx);
      let b = exp(m2 - mx);
      let s1 = entS[lid];
      let s2 = entS[lid + k];
      entT[lid] = a * (entT[lid] + s1 * (m1 - mx)) + b * (entT[lid + k] + s2 * (m2 - mx));
      entS[lid] = a * s1 + b * s2;
      entM[lid] = mx;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    HOUT[P.base + pos] = log(entS[0]) - entT[0] / entS[0];
  }
}
