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

override COLLECT: bool = false;
override BY_INDEX: bool = false;
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

var<workgroup> bins: array<atomic<u32>, NBINS>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let wg = wid.y * P.groupsX + wid.x;
  if (!COLLECT) {
    for (var i = lid; i < NBINS; i += WG) {
      atomicStore(&bins[i], 0u);
    }
    workgroupBarrier();
  }
  var bad = 0u;
  if (wg < P.nwg) {
    let nv = (P.n + 3u) / 4u;
    let v0 = wg * (WG * VPT) + lid;
    for (var j = 0u; j < VPT; j++) {
      let v = v0 + j * WG;
      if (v < nv) {
        let kk = vec4u(v * 4u) + vec4u(0u, 1u, 2u, 3u);
        let valid = (MASK[v] != vec4f(0.0)) & (kk < vec4u(P.n));
        let e = ENT[v];
        var key = sortKey(e);
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
        bad += dot(select(vec4u(0u), vec4u(1u), valid & nonFinite(e)), vec4u(1u));
      }
    }
  }
  if (!COLLECT) {
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
