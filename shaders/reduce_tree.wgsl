// Workgroup reduction of two vec4 partial sums with a shared-memory barrier tree (fallback for adapters
// without the 'subgroups' feature). The result is valid in invocation 0 only.

var<workgroup> redA: array<vec4f, WG>;
var<workgroup> redB: array<vec4f, WG>;

struct RIn {
  @builtin(local_invocation_index) lid: u32,
}

struct Pair {
  a: vec4f,
  b: vec4f,
}

fn wgReduce(a: vec4f, b: vec4f, ri: RIn) -> Pair {
  redA[ri.lid] = a;
  redB[ri.lid] = b;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (ri.lid < s) {
      redA[ri.lid] += redA[ri.lid + s];
      redB[ri.lid] += redB[ri.lid + s];
    }
    workgroupBarrier();
  }
  var ta = vec4f(0.0);
  var tb = vec4f(0.0);
  if (ri.lid == 0u) {
    ta = redA[0];
    tb = redB[0];
  }
  return Pair(ta, tb);
}
