#!/usr/bin/env python3
"""verl's vanilla policy loss (DAPO clip-higher + dual-clip + ppo_kl + metrics) in PyTorch, with autograd: the
baseline column of `npm run bench`. The formulation repeats verl's compute_policy_loss_vanilla, masked_mean and
agg_loss(token-mean) statement by statement (core_algos.py / torch_functional.py at b178a3cd). float32 on CPU.

Prints one JSON object per size: {"log2": k, "tokens": n, "ns_per_token": best, "loss": value}; with --serve it
takes commands on stdin instead (bench/torchWorker.ts), so the bench can interleave its repetitions with ours.
Run it with 2 threads and jemalloc preloaded (bench/main.ts does): glibc malloc makes torch's fresh temporaries
page-fault and flatters the comparison.
"""
import argparse
import json
import sys
import time

try:
    import torch
except ImportError:  # the bench reports the column as absent
    print(json.dumps({"error": "torch not installed"}))
    sys.exit(0)


def masked_sum(values, mask):
    valid_values = torch.where(mask.bool(), values, 0.0)
    return (valid_values * mask).sum()


def masked_mean(values, mask):
    return masked_sum(values, mask) / (mask.sum() + 1e-8)


def agg_loss_token_mean(loss_mat, loss_mask):
    batch_num_tokens = loss_mask.sum()
    return masked_sum(loss_mat, loss_mask) / batch_num_tokens * 1


def vanilla(old_log_prob, log_prob, advantages, response_mask, clip_low=0.2, clip_high=0.28, clip_ratio_c=3.0):
    negative_approx_kl = log_prob - old_log_prob
    negative_approx_kl = torch.clamp(negative_approx_kl, min=-20.0, max=20.0)
    ratio = torch.exp(negative_approx_kl)
    ppo_kl = masked_mean(-negative_approx_kl, response_mask)
    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses1).float(), response_mask)
    pg_losses3 = -advantages * clip_ratio_c
    clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
    pg_clipfrac_lower = masked_mean(torch.gt(clip_pg_losses1, pg_losses3) * (advantages < 0).float(), response_mask)
    pg_losses = torch.where(advantages < 0, clip_pg_losses2, clip_pg_losses1)
    pg_loss = agg_loss_token_mean(pg_losses, response_mask)
    return pg_loss, {
        "actor/pg_clipfrac": pg_clipfrac.detach().item(),
        "actor/ppo_kl": ppo_kl.detach().item(),
        "actor/pg_clipfrac_lower": pg_clipfrac_lower.detach().item(),
    }


def load_batch(d):
    """The bench's shared batch: raw float32 files written by bench/data.ts."""
    import os
    import numpy as np
    shape = json.load(open(os.path.join(d, "shape.json")))
    B, T = shape["B"], shape["T"]
    f = lambda name: torch.from_numpy(np.fromfile(os.path.join(d, name + ".f32"), dtype=np.float32).reshape(B, T))
    return f("oldLogProbs"), f("logProbs"), f("advantages"), f("responseMask")


def make_batch(n, T, seed):
    g = torch.Generator().manual_seed(seed)
    B = n // T
    olp = -torch.rand(B, T, generator=g) * 3
    lp = olp + (torch.rand(B, T, generator=g) - 0.5) * 0.6
    adv = (torch.rand(B, 1, generator=g) - 0.5).expand(B, T).contiguous() * 2
    lengths = torch.randint(T // 2, T + 1, (B, 1), generator=g)
    mask = (torch.arange(T)[None, :] < lengths).float()
    return olp, lp, adv, mask


def timed_rep(olp, lp0, adv, mask):
    """One repetition: loss + backward + metrics, seconds."""
    lp = lp0.clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss, _metrics = vanilla(olp, lp, adv, mask)
    loss.backward()
    loss_v = loss.item()
    _grad = lp.grad
    t1 = time.perf_counter()
    return t1 - t0, loss_v


def serve():
    """Line protocol on stdin/stdout, so the bench can interleave PyTorch's repetitions with its own:
    `load <key> <dir>` (read a batch, run it once to warm the allocator) -> {"ok": true};
    `run <key>` (one timed repetition) -> {"ms": ..., "loss": ...}; `drop <key>`; `quit`."""
    batches = {}
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "load":
            batches[cmd[1]] = load_batch(cmd[2])
            timed_rep(*batches[cmd[1]])
            out = {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
        elif cmd[0] == "run":
            dt, loss_v = timed_rep(*batches[cmd[1]])
            out = {"ms": dt * 1e3, "loss": loss_v}
        elif cmd[0] == "drop":
            batches.pop(cmd[1], None)
            out = {"ok": True}
        else:
            out = {"error": "unknown command " + cmd[0]}
        print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true", help="interleaving mode: commands on stdin (see serve())")
    ap.add_argument("--sizes", default="16,20,23,24")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--data", default=None, help="folder with one sub-folder per log2 size written by bench/data.ts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        serve()
        return
    for k in [int(s) for s in args.sizes.split(",")]:
        n = 1 << k
        if args.data:
            import os
            olp, lp0, adv, mask = load_batch(os.path.join(args.data, str(k)))
        else:
            olp, lp0, adv, mask = make_batch(n, args.T, k)
        best = float("inf")
        loss_v = None
        for _ in range(args.reps + 1):  # first run warms the allocator
            dt, loss_v = timed_rep(olp, lp0, adv, mask)
            best = min(best, dt)
        print(json.dumps({"log2": k, "tokens": n, "ns_per_token": best * 1e9 / n, "loss": loss_v,
                          "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
