"""What writing model.pt costs, with the replay buffer inside, at the sizes a long run reaches.

    python benchmarks/checkpoint_cost.py                   # HalfCheetah-v5's sizes, 5,000 to 10^6 transitions
    python benchmarks/checkpoint_cost.py --env Hopper-v5 --steps-per-second 440

For each buffer size: the file's size, the seconds of one save_checkpoint() (the median of
several writes, fsync and rename included), exactly as the training loop calls it: the agent,
the config and run_state() with that many transitions; the checksum's seconds, timed alone; and the
seconds of one verified read, load_checkpoint(resume=True) as --resume does it (checksum and
field checks included). Then the share of a run's time that checkpointing takes when model.pt is
written every --eval-every steps, and the checksum's part of it: the times, interpolated between
the sizes measured, summed over a run's checkpoints, against the run's training time at
--steps-per-second (the MuJoCo table's steps/s while learning).

The files are written under --dir (default: runs/, beside ddpg.py), on the disk a real run
writes to: /tmp may be a RAM disk, where fsync costs nothing.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, ddpg


def write_seconds(run: ddpg.Run, size: int, path: Path, repeats: int) -> tuple:
    """(median seconds of a write, of its checksum and of a verified read, bytes) of save_checkpoint with
    `size` transitions in the buffer."""
    rng = np.random.default_rng(0)
    b = run.buffer
    n = size - b.size  # grow the buffer to `size` with random transitions (their values do not matter)
    for name in ddpg.ReplayBuffer.FIELDS:
        field = getattr(b, name)
        field[b.size:size] = rng.standard_normal((n,) + field.shape[1:], dtype=np.float32)
    b.size, b.pos = size, size % b.capacity
    times = {"write": [], "checksum": [], "read": []}
    for _ in range(repeats):
        start = time.perf_counter()
        ddpg.save_checkpoint(path, run.agent, run.cfg, size, run.env, run=ddpg.run_state(run))
        times["write"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ddpg.checksum({"run": ddpg.run_state(run)})  # the buffer is nearly all of what it hashes
        times["checksum"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ddpg.load_checkpoint(path, resume=True)  # read, verified and checked, as --resume reads it
        times["read"].append(time.perf_counter() - start)
    return (*(statistics.median(times[k]) for k in ("write", "checksum", "read")), path.stat().st_size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--sizes", nargs="+", type=int, default=[5_000, 25_000, 50_000, 100_000, 300_000, 1_000_000],
                   help="buffer sizes in transitions, ascending")
    p.add_argument("--repeats", type=int, default=5, help="writes per size; the median is reported")
    p.add_argument("--run-steps", nargs="+", type=int, default=[100_000, 300_000, 1_000_000],
                   help="run lengths whose checkpointing share is reported")
    p.add_argument("--steps-per-second", type=float, default=400.0,
                   help="training speed for the share (default: about HalfCheetah-v5's at 64-64, MuJoCo table)")
    p.add_argument("--dir", type=Path, default=ROOT / "runs", help="where the test files go (then removed)")
    args = p.parse_args(argv)

    cfg = ddpg.config_for(args.env, buffer_size=max(args.sizes), report=False)
    env, eval_env, agent, _, _ = ddpg.setup(cfg)  # no run folder: no lock
    eval_env.close()
    run = ddpg.new_run(cfg, env, agent)
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "model.pt"
        print(f"{args.env}: {env.observation_space.shape[0]} observation and {env.action_space.shape[0]} action "
              f"dimensions; model.pt written to {args.dir}, median of {args.repeats} writes\n")
        print("| transitions in the buffer | model.pt (MB) | seconds per write | the checksum, alone | "
              "seconds per verified read |")
        print("|---|---|---|---|---|")
        measured = []
        for size in args.sizes:
            write, check, read, size_bytes = write_seconds(run, size, path, args.repeats)
            measured.append((write, check))
            print(f"| {size:,} | {size_bytes / 1e6:,.1f} | {write:.3f} | {check:.3f} | {read:.3f} |", flush=True)
    env.close()

    print(f"\nmodel.pt every {cfg.eval_every:,} steps, at {args.steps_per_second:,.0f} steps/s "
          "(buffer up to --buffer-size, 10^6):\n")
    print("| run | checkpoints | seconds writing | of which the checksum | seconds training | share | "
          "the checksum's share |")
    print("|---|---|---|---|---|---|---|")
    for steps in args.run_steps:
        at = np.minimum(np.arange(cfg.eval_every, steps + 1, cfg.eval_every), cfg.buffer_size)
        writing, checking = (float(np.interp(at, args.sizes, [m[k] for m in measured]).sum()) for k in (0, 1))
        training = steps / args.steps_per_second
        print(f"| {steps:,} steps | {len(at)} | {writing:,.1f} | {checking:,.1f} | {training:,.0f} | "
              f"{writing / training:.1%} | {checking / training:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
