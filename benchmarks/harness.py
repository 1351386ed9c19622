"""What the benchmarks share: pendulum.py and mujoco_suite.py differ only in their task lists
and the figures they read off each run (td3_bridge.py and gpu_speed.py read runs too).

- the Stable-Baselines3 worker: SB3's DDPG in its own process, writing metrics.jsonl in
  ddpg.py's format and evaluating on the same start states with ddpg.py's episode loop;
- the process pool: each run is its own process, timed from outside (wall time, and peak
  resident memory from wait4);
- reading a run folder into the figures both benchmarks report;
- the markdown tables (median or mean over seeds, and ratios) and the Plotly curves page.

The SB3 worker is this file run as a script (see sb3_command).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import ddpg  # noqa: E402  (the metrics reader, the episode loop, the report's curve helpers)


# --- the SB3 worker ---


def sb3_worker(env_id: str, seed: int, out: Path, total_steps: int, eval_every: int, eval_episodes: int,
               hp: dict, threads: int) -> None:
    """SB3's DDPG with the hyper-parameters `hp` (rl-zoo's names), logging like ddpg.py."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    metrics = open(out / "metrics.jsonl", "w", buffering=1)
    env, eval_env = gym.make(env_id), gym.make(env_id)
    n = env.action_space.shape[0]
    learning_starts = min(hp["learning_starts"], total_steps // 2)  # only shorter for smoke runs
    model = DDPG("MlpPolicy", env, gamma=hp["gamma"], buffer_size=hp["buffer_size"], batch_size=hp["batch_size"],
                 learning_starts=learning_starts, learning_rate=hp["learning_rate"],
                 action_noise=NormalActionNoise(np.zeros(n), hp["noise_std"] * np.ones(n)),
                 train_freq=hp["train_freq"], gradient_steps=hp["gradient_steps"],
                 policy_kwargs=dict(net_arch=hp["net_arch"]), seed=seed, device="cpu")

    class Recorder(BaseCallback):
        def _on_training_start(self):
            self.start = time.perf_counter()
            self.log({"step": 0, "env": env_id, "gamma": hp["gamma"], "config": {"sb3": hp, "seed": seed}})

        def log(self, record):
            metrics.write(json.dumps({**record, "time": round(time.perf_counter() - self.start, 4)}) + "\n")

        def _on_step(self):
            step = self.num_timesteps
            for info in self.locals["infos"]:
                if "episode" in info:  # SB3's Monitor wrapper reports finished episodes here
                    self.log({"step": step, "episode_return": float(info["episode"]["r"]),
                              "episode_length": int(info["episode"]["l"])})
            if step % 1000 == 0 and self.model._n_updates:
                self.log({"step": step, "updates": int(self.model._n_updates)})
            if step % eval_every == 0 or step == total_steps:
                def act(obs):
                    return self.model.predict(obs, deterministic=True)[0]
                # ddpg.py's own episode loop, on the same start states as its evaluations
                returns = [ddpg.run_episode(eval_env, act, seed + ddpg.EVAL_SEED_OFFSET + k, hp["gamma"])[1]
                           for k in range(eval_episodes)]
                self.log({"step": step, "eval_return": float(np.mean(returns))})
            return True

    model.learn(total_timesteps=total_steps, callback=Recorder())
    metrics.close()


def sb3_command(env_id: str, seed: int, out: Path, total_steps: int, eval_every: int, eval_episodes: int,
                hp: dict, threads: int = 0) -> list:
    return [sys.executable, __file__, "--env", env_id, "--seed", str(seed), "--out", str(out),
            "--total-steps", str(total_steps), "--eval-every", str(eval_every),
            "--eval-episodes", str(eval_episodes), "--hp", json.dumps(hp), "--threads", str(threads)]


def need_sb3(parser: argparse.ArgumentParser) -> None:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        parser.error("--compare-sb3 needs Stable-Baselines3: pip install -r benchmarks/requirements.txt")


# --- the process pool ---


def run_process(cmd, log_path: Path) -> dict:
    """Run cmd to completion; its wall time and peak resident memory (from wait4)."""
    start = time.perf_counter()
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait(): it returns the child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
    if proc.returncode != 0:
        sys.exit(f"benchmark: {' '.join(map(str, cmd))} failed with status {proc.returncode}; see {log_path}")
    return {"process_seconds": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024}


def run_all(jobs, parallel: int, done=None) -> list:
    """Run jobs [(cmd, log_path), ...], `parallel` at a time, in order; their run_process
    results in the same order. done(i, result) is called as each one finishes."""
    def one(i):
        cmd, log_path = jobs[i]
        result = run_process(cmd, log_path)
        if done:
            done(i, result)
        return result

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, range(len(jobs))))


# --- reading a run ---


def read_run(run_dir: Path) -> dict:
    """The figures every benchmark reports, from a run folder's metrics.jsonl."""
    records, problems = ddpg.read_metrics(run_dir)
    if problems:
        sys.exit("benchmark: " + "; ".join(problems))
    evals = [r for r in records if "eval_return" in r]
    updates = [r for r in records if r.get("updates")]
    last = max(records, key=lambda r: r["time"])
    first_u, last_u = (updates[0], updates[-1]) if len(updates) > 1 else (None, None)
    span = (last_u["time"] - first_u["time"]) if first_u else 0
    return {
        "records": records,
        "final_eval_return": evals[-1]["eval_return"] if evals else None,
        "train_seconds": last["time"],
        "steps": last["step"],
        "steps_per_second": last["step"] / last["time"] if last["time"] else None,
        "steps_per_second_learning": (last_u["step"] - first_u["step"]) / span if span else None,
        "updates_per_second": (last_u["updates"] - first_u["updates"]) / span if span else None,
        "eval_curve": [(e["step"], e["time"], e["eval_return"]) for e in evals],
    }


# --- tables and curves ---


def median(values):
    """Median, counting a missing value (a run that never got there) as infinitely slow."""
    m = statistics.median([float("inf") if v is None else v for v in values])
    return None if m == float("inf") else m


def fmt(value, pattern):
    return "not reached" if value is None else pattern.format(value)


def comparison_table(sides: dict, figures, summary=median, heading="figure (median over seeds)") -> list:
    """Markdown rows: one per figure (key, label, format), a column per side, and the ratio of
    the first side to the second when there are two."""
    names = list(sides)
    head = f"| {heading} | " + " | ".join(names) + (f" | {names[0]} / {names[1]} |" if len(names) == 2 else " |")
    lines = [head, "|---" * (len(names) + 1 + (len(names) == 2)) + "|"]
    for key, label, pattern in figures:
        values = [summary([s[key] for s in sides[n]]) for n in names]
        row = f"| {label} | " + " | ".join(fmt(v, pattern) for v in values)
        if len(names) == 2:
            a, b = values
            row += f" | {a / b:.2f}" if a is not None and b else " | -"
        lines.append(row + " |")
    return lines


def per_seed_table(name: str, seeds: list, figures) -> list:
    lines = [f"**{name}, per seed**", "", "| seed | " + " | ".join(label for _, label, _ in figures) + " |",
             "|---" * (len(figures) + 1) + "|"]
    for seed, s in enumerate(seeds):
        lines.append(f"| {seed} | " + " | ".join(fmt(s[k], p) for k, _, p in figures) + " |")
    lines.append("| **median** | " + " | ".join(fmt(median([s[k] for s in seeds]), p) for k, _, p in figures) + " |")
    return lines + [""]


def curves_page(panels, path: Path) -> None:
    """One self-contained page of Plotly figures. panels: [(title, xtitle, ytitle,
    {side: [(x, y), one per seed]}, extra layout), ...]; each side is drawn as its mean with a
    min-max band."""
    pio = ddpg.load_plotly().io
    body = []
    for title, xtitle, ytitle, sides, layout in panels:
        traces = []
        for i, (name, curves) in enumerate(sides.items()):
            curves = [(np.asarray(x, float), np.asarray(y, float)) for x, y in curves]
            traces += ddpg.line(name, curves, ddpg.COLORS[i], mode="lines+markers")
        fig = ddpg.figure(traces, title, xtitle=xtitle, ytitle=ytitle)
        fig["layout"].update(layout)
        body.append(pio.to_html(fig, full_html=False, include_plotlyjs=False, validate=False))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ddpg.py benchmark</title><script>"
            + ddpg.plotly_js().decode() + "</script></head><body>" + "\n".join(body) + "</body></html>")
    Path(path).write_text(page)


def machine_description() -> str:
    import torch
    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), cpu)
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.release()}")


def worker_main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run SB3's DDPG once, logging metrics.jsonl like ddpg.py.")
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--total-steps", type=int, required=True)
    p.add_argument("--eval-every", type=int, required=True)
    p.add_argument("--eval-episodes", type=int, required=True)
    p.add_argument("--hp", type=json.loads, required=True, help="SB3 hyper-parameters as JSON")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    sb3_worker(a.env, a.seed, a.out, a.total_steps, a.eval_every, a.eval_episodes, a.hp, a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
