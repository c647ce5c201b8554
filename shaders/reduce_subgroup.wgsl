// Workgroup reduction of two vec4 partial sums with subgroupAdd (adapters with the 'subgroups' feature).
// One barrier: lane 0 of every subgroup stores its subgroup's sum, the other lanes store zero, then
// invocation 0 adds the 64 slots. This holds whatever the subgroup size or layout.
// Prepended after `enable subgroups;` and the WG constant; the result is valid in invocation 0 only.

var<workgroup> redA: array<vec4f, WG>;
var<workgroup> redB: array<vec4f, WG>;

struct RIn {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sgl: u32,
}

struct Pair {
  a: vec4f,
  b: vec4f,
}

fn wgReduce(a: vec4f, b: vec4f, ri: RIn) -> Pair {
  let sa = subgroupAdd(a);
  let sb = subgroupAdd(b);
  let lead = ri.sgl == 0u;
  redA[ri.lid] = select(vec4f(0.0), sa, lead);
  redB[ri.lid] = select(vec4f(0.0), sb, lead);
  workgroupBarrier();
  var ta = vec4f(0.0);
  var tb = vec4f(0.0);
  if (ri.lid == 0u) {
    for (var i = 0u; i < WG; i++) {
      ta += redA[i];
      tb += redB[i];
    }
  }
  return Pair(ta, tb);
}
