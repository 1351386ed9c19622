"""Steps per second while learning, --device cuda against the same machine's CPU, per network size.

    python benchmarks/gpu_speed.py                          # HalfCheetah-v5 at 64-64, 256-256, 400-300,
                                                            # and Pendulum-v1 at the quick start's settings
    python benchmarks/gpu_speed.py --devices cpu            # the CPU rows alone (no GPU here)

Each row is one `ddpg.py` process: --random-steps uniform random steps (no updates), then
--learning-steps steps with one update each, one evaluation at the end; the figure is the
median of the progress lines' steps/s over the learning steps, leaving out the first and the
last line (the CUDA graph's capture, the evaluation). The CPU uses --threads' own rule (1
thread below 256 units, 2 from 256 up). A 1,000,000-step run's hours are projected from it.
The Pendulum-v1 rows (its defaults: 64-64, batch 128, --pendulum-random-steps random steps) ask
whether the GPU is also the better --device auto for the quick start.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, ddpg


def steps_per_second(env: str, hidden, device: str, random_steps: int, learning_steps: int, log_every: int):
    """(steps/s while learning, the process's exit status) of one short run."""
    total = random_steps + learning_steps
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        cmd = [sys.executable, str(ROOT / "ddpg.py"), "--env", env, "--seed", "0", "--total-steps", str(total),
               "--learning-starts", str(random_steps), "--eval-every", str(total), "--log-every", str(log_every),
               "--hidden-sizes", *map(str, hidden), "--device", device, "--no-report", "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, proc.returncode, proc.stderr.strip().splitlines()[-1:]
        records = ddpg.read_metrics(out)[0]
    sps = [r["sps"] for r in records if "sps" in r and random_steps + log_every < r["step"] < total]
    return (statistics.median(sps) if sps else None), 0, []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"], help="hidden sizes, as 64,64")
    p.add_argument("--devices", nargs="+", default=["cuda", "cpu"], choices=["cuda", "cpu"])
    p.add_argument("--random-steps", type=int, default=10_000)
    p.add_argument("--learning-steps", type=int, default=8_000)
    p.add_argument("--log-every", type=int, default=1_000)
    p.add_argument("--pendulum-random-steps", type=int, default=1_000,
                   help="Pendulum-v1's random steps (its default); 0: no Pendulum-v1 rows")
    args = p.parse_args(argv)
    devices = list(args.devices)
    if "cuda" in devices and not ddpg.torch.cuda.is_available():
        print("no CUDA GPU visible: the cuda rows are left out")
        devices.remove("cuda")
    rows = [(args.env, tuple(int(h) for h in text.split(",")), args.random_steps) for text in args.sizes]
    if args.pendulum_random_steps:
        rows.append(("Pendulum-v1", (64, 64), args.pendulum_random_steps))
    print(f"{args.learning_steps:,} learning steps after the random ones ({args.env}: {args.random_steps:,}, "
          f"Pendulum-v1: {args.pendulum_random_steps:,})\n")
    print("| task | hidden | device | steps/s while learning | hours for 1,000,000 steps |")
    print("|---|---|---|---|---|")
    results = []
    for env, hidden, random_steps in rows:
        for device in devices:
            sps, code, why = steps_per_second(env, hidden, device, random_steps, args.learning_steps, args.log_every)
            results.append({"env": env, "hidden": hidden, "device": device, "sps": sps, "exit": code})
            cells = [f"{sps:,.0f}", f"{1e6 / sps / 3600:.2f}"] if sps else [f"failed ({code}: {' '.join(why)})", "-"]
            print(f"| {env} | {'-'.join(map(str, hidden))} | {device} | " + " | ".join(cells) + " |", flush=True)
    print("\n" + json.dumps(results))
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
