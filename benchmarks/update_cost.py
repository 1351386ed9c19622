"""What one DDPG update costs on this CPU, against what its matrix multiplies could reach.

    python benchmarks/update_cost.py                      # HalfCheetah-v5's sizes (obs 17, action 6)
    python benchmarks/update_cost.py --obs-dim 3 --action-dim 1 --batch-size 128   # Pendulum's

For each network size and thread count: milliseconds per update (the median of several
timed blocks of updates, after a warm-up), the floating-point operations one update does
(counted from the layer sizes, below), and what share that is of the CPU's matmul rate,
measured on a large float32 matrix multiply with the same thread count. The fastest
thread count per size is what --threads should be.

FLOPs per update, per sample, with M the multiply-adds of one forward pass of a network:
the targets' forward passes for y (2 M_actor + 2 M_critic), the critic's forward and
backward (6 M_critic), and the actor step: forward through actor and critic, back through
the critic to the action only, and through the actor in full (6 M_actor + 4 M_critic).
That is 8 M_actor + 12 M_critic per sample, times the batch size; biases, activations and
Adam are left out (a few percent at these sizes).
"""

import argparse
import statistics
import sys
import time

import torch

from harness import ddpg


def macs(sizes) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_update(obs_dim: int, action_dim: int, hidden, batch: int) -> int:
    actor = macs([obs_dim, *hidden, action_dim])
    critic = macs([obs_dim + action_dim, *hidden, 1])
    return (8 * actor + 12 * critic) * batch


def ms_per_update(obs_dim, action_dim, hidden, batch, blocks=7, per_block=100) -> float:
    torch.manual_seed(0)
    agent = ddpg.DDPG(obs_dim, [-1.0] * action_dim, [1.0] * action_dim, hidden)
    buffer = ddpg.ReplayBuffer(obs_dim, action_dim, 10_000)
    for _ in range(10_000):
        buffer.add(torch.randn(obs_dim).numpy(), torch.rand(action_dim).numpy(), 0.1, torch.randn(obs_dim).numpy(),
                   0.0)
    batches = [buffer.sample(batch) for _ in range(per_block)]
    for b in batches:  # warm-up
        agent.update(b, 0.99, 0.005)
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for b in batches:
            agent.update(b, 0.99, 0.005)
        times.append((time.perf_counter() - start) / per_block * 1000)
    return statistics.median(times)


def matmul_gflops(n=1024, repeats=20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--action-dim", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"], help="hidden sizes, as 64,64")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = p.parse_args(argv)
    ceiling = {}
    for t in args.threads:
        torch.set_num_threads(t)
        ceiling[t] = matmul_gflops()
    print(f"float32 matmul (1024 x 1024): " + ", ".join(f"{ceiling[t]:.0f} GFLOP/s on {t} thread(s)"
                                                        for t in args.threads))
    print(f"\nobs {args.obs_dim}, action {args.action_dim}, batch {args.batch_size}\n")
    print("| hidden | threads | ms per update | MFLOP per update | GFLOP/s | share of matmul rate |")
    print("|---|---|---|---|---|---|")
    for text in args.sizes:
        hidden = tuple(int(h) for h in text.split(","))
        flops = flops_per_update(args.obs_dim, args.action_dim, hidden, args.batch_size)
        for t in args.threads:
            torch.set_num_threads(t)
            ms = ms_per_update(args.obs_dim, args.action_dim, hidden, args.batch_size)
            rate = flops / ms / 1e6
            print(f"| {'-'.join(map(str, hidden))} | {t} | {ms:.2f} | {flops / 1e6:.1f} | {rate:.1f} | "
                  f"{rate / ceiling[t]:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
