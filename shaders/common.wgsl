// Shared declarations of every policy-loss kernel: the uniform block, the per-token result, constants.
// The host assembles a pipeline's source as: [enable subgroups;] common + reduce_(subgroup|tree) +
// the family's `tok` function (vanilla.wgsl, gspo.wgsl, ...) + tokenpass.wgsl (or rowreduce.wgsl).

const WG: u32 = 64u;          // invocations per workgroup
override VPT: u32 = 16u;      // vec4 per invocation (the host sets it: 128 on software adapters, 16 on GPUs)
const LOG_RATIO_CLAMP: f32 = 20.0;
const ONE4: vec4f = vec4f(1.0);

// Shape and constants: uniforms, so a new batch shape or ε never recompiles a pipeline.
struct Params {
  n: u32,          // tokens in this chunk (token pass) / rows in this chunk (row pass)
  base: u32,       // global index of the chunk's first token (token pass) / first row (row pass)
  T: u32,          // padded response length (columns)
  wgOffset: u32,   // first workgroup of this chunk: its partial-sum slots follow (token pass) / element shift of the binding (row pass)
  groupsX: u32,    // workgroups along x of the 2D dispatch
  nwg: u32,        // workgroups that carry work
  B: u32,          // rows of the whole batch
  countAt: u32,    // vec4 index in ROWS of maskcount.wgsl's valid-token count (token pass with COUNT_COEF)
  lo: f32,         // 1 − ε_low
  hi: f32,         // 1 + ε_high
  c: f32,          // dual-clip constant
  coef0: f32,      // aggregation coefficient when it is the same for every row
  tauPos: f32,
  tauNeg: f32,
  klCoef: f32,     // kl_cov: ppo_kl_coef
  epsLow: f32,     // geo_mean: log-space bounds
  epsHigh: f32,
  cutKey: u32,     // eighty-twenty on the GPU (SEL_TOPK): the k-th largest entropy's key (topk.wgsl's sortKey)
  cutIdx: u32,     // and the highest global index of the ties at that key that are selected
  rowVec4: u32,    // 1 when T % 4 == 0 (chunks start at multiples of 4): the token pass looks a vec4's row up once
}

// What a family's `tok` returns for 4 tokens: the loss ℓ, ∂ℓ/∂lp, and three metric terms (summed over the
// response mask): m0 = clipped indicator, m1 = ppo_kl term, m2 = lower-clip indicator.
struct Tok {
  loss: vec4f,
  dl: vec4f,
  m0: vec4f,
  m1: vec4f,
  m2: vec4f,
}

fn b2f(b: vec4<bool>) -> vec4f {
  return select(vec4f(0.0), vec4f(1.0), b);
}

// Mask entries that are not 0/1, by their bits (exact for NaN, ±inf, subnormals; a float `!= 0` may compile to
// `|x| > 0`, false for NaN): neither ±0 nor 1.0.
fn notZeroOne(x: vec4f) -> vec4<bool> {
  let b = bitcast<vec4u>(x);
  return ((b & vec4u(0x7fffffffu)) != vec4u(0u)) & (b != vec4u(0x3f800000u));
}

// Mask entries that are not ±0 (NaN included, as JavaScript's `!== 0`), by their bits.
fn nonZero(x: vec4f) -> vec4<bool> {
  return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) != vec4u(0u);
}

fn nonFinite(x: vec4f) -> vec4<bool> {
  return (bitcast<vec4u>(x) & vec4u(0x7f800000u)) == vec4u(0x7f800000u);
}

// An unsigned key with the order of the floats (finite ones; −0 and +0 share a key): negative values flip every
// bit, the others set the sign bit.
fn sortKey(x: vec4f) -> vec4u {
  var b = bitcast<vec4u>(x);
  b = select(b, vec4u(0u), b == vec4u(0x80000000u));
  return select(b | vec4u(0x80000000u), ~b, (b & vec4u(0x80000000u)) != vec4u(0u));
}
