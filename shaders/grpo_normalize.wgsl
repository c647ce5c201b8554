// GRPO-family group normalisation (verl's grpo / grpo_vectorized / Dr.GRPO, CA:266-357, and the other group-mean
// baselines rloo, rloo_vectorized and gpg, CA:476-525, 657-755), one workgroup per group. Rows of a group may be anywhere in the batch: the host maps group ids to dense ints and uploads the
// rows sorted by group (MEMBERS, with OFFSETS[g]..OFFSETS[g+1] the rows of group g). Statistics are shifted
// by the group's first score (exact zeros for a constant group) and computed in two passes:
// μ = mean, σ² = Σ(s − μ)²/(n − 1); grpo_vectorized floors σ² at ε. A singleton group uses μ = 0, σ = 1.
// MODE 0 (grpo): Â_i = (s_i − μ)/(σ + ε), or s_i − μ without std normalisation. MODE 1 (rloo): n/(n−1)·(s_i − μ),
// a singleton keeps s_i. MODE 2 (rloo_vectorized): the same, a singleton gets 0. MODE 3 (gpg): lo·(s_i − μ) with
// lo = α/f_norm from the host (μ = 0 for a singleton). Written per row (ROWADV) and broadcast over the row's valid
// tokens (ADV = Â_i·m, 0 at padding).
// Params: n = number of groups, B, T, groupsX, coef0 = ε, lo = gpg scale, base = flags (bit 0: divide by σ;
// bit 1: floor σ² at ε; bit 2: write ROWADV only — the host broadcasts, used when B·T exceeds one storage binding;
// bits 3-4: MODE).

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> SCORES: array<f32>;
@group(0) @binding(2) var<storage, read> MEMBERS: array<u32>;
@group(0) @binding(3) var<storage, read> OFFSETS: array<u32>;
@group(0) @binding(4) var<storage, read> MASK: array<f32>;
@group(0) @binding(5) var<storage, read_write> ROWADV: array<f32>;
@group(0) @binding(6) var<storage, read_write> ADV: array<f32>;

var<workgroup> grpRed: array<f32, WG>;

fn grpSum(x: f32, lid: u32) -> f32 {
  grpRed[lid] = x;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      grpRed[lid] += grpRed[lid + k];
    }
    workgroupBarrier();
  }
  let r = grpRed[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wg.y * P.groupsX + wg.x;
  if (g >= P.n) {
    return;
  }
  let start = OFFSETS[g];
  let end = OFFSETS[g + 1u];
  let cnt = end - start;
  let nf = f32(cnt);
  let eps = P.coef0;
  let byStd = (P.base & 1u) != 0u;
  let floorVar = (P.base & 2u) != 0u;
  let rowsOnly = (P.base & 4u) != 0u;
  let mode = (P.base >> 3u) & 3u;
  let pivot = SCORES[MEMBERS[start]];
  var acc = 0.0;
  for (var k = start + lid; k < end; k += WG) {
    acc += SCORES[MEMBERS[k]] - pivot;
  }
  let meanD = grpSum(acc, lid) / nf;
  var acc2 = 0.0;
  for (var k = start + lid; k < end; k += WG) {
    let c = SCORES[MEMBERS[k]] - pivot - meanD;
    acc2 += c * c;
  }
  let ss = grpSum(acc2, lid);
  var variance = ss / max(nf - 1.0, 1.0);
  if (floorVar) {
    variance = max(variance, eps);
  }
  let single = cnt <= 1u;
  let sd = select(sqrt(variance), 1.0, single);
  let T = P.T;
  for (var k = start; k < end; k++) {
    let row = MEMBERS[k];
    let centred = select(SCORES[row] - pivot - meanD, SCORES[row], single);
    var a = select(centred, centred / (sd + eps), byStd);
    if (mode == 1u || mode == 2u) {
      a = select(centred * (nf / max(nf - 1.0, 1.0)), select(centred, 0.0, mode == 2u), single);
    } else if (mode == 3u) {
      a = P.lo * centred;
    }
    if (lid == 0u) {
      ROWADV[row] = a;
    }
    if (rowsOnly) {
      continue;
    }
    for (var j = lid; j < T; j += WG) {
      let idx = row * T + j;
      ADV[idx] = select(0.0, a, MASK[idx] != 0.0);
    }
  }
}
