// gpg: ℓ = −lp·A (verl CA:1414-1447); also bypass_mode's REINFORCE form ℓ = −A·lp·w, whose ppo_kl metric is
// masked_mean(rollout_lp − lp) = Σ m1 / Σ m.

fn tok(o: vec4f, l: vec4f, a: vec4f, rv: vec4f, sel: vec4f) -> Tok {
  return Tok(-l * a, -a, vec4f(0.0), o - l, vec4f(0.0));
}
