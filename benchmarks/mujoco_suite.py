"""ddpg.py on Gymnasium's MuJoCo tasks, by the TD3 paper's protocol, optionally beside SB3.

(Not named mujoco.py: a script of that name would shadow the mujoco package for every
process started from this folder.)

    python benchmarks/mujoco_suite.py                                   # every task, 3 seeds, its budget
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 --total-steps 1000000   # extend: resumes the runs
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 HalfCheetah-v5 --compare-sb3 --sb3-steps 100000
    python benchmarks/mujoco_suite.py --tasks HalfCheetah-v5 --seeds 1 --total-steps 20000 --jobs 1 --compare-sb3
                                                                  # speed, side by side, whole machine each
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 --ddpg-flags=--td3 --out benchmarks/results/mujoco-td3
                                                                  # TD3: flags for ddpg.py (note the =)
    python benchmarks/mujoco_suite.py --slurm --slurm-args="--partition=gpu --time=4:00:00"
                                                                  # a SLURM job array, one task a run

Protocol (Fujimoto et al. 2018, section 6.1): ddpg.py with its MuJoCo preset, evaluation
every 5,000 steps, 10 episodes without noise. For each task: the max over evaluations of
the seed-mean curve and the mean of the last 10 evaluations, each with its spread over
seeds; steps/s while learning, updates/s, wall-clock and peak memory.

Seeds run as parallel processes (--jobs, one torch thread each when more than one). A run
folder that exists is resumed (`ddpg.py --resume`) up to the budget asked for, or left as
it is if it already got there: a long benchmark is built up over several sittings, the resumed
runs first, as the nearest to done. SB3
runs (rl-zoo's MuJoCo settings) cannot resume: one that did not finish starts over. The
tables cover every run in OUT/runs, so a benchmark built up a task or a seed at a time reads
as one. Writes OUT/results.md, OUT/results.json and OUT/curves.html; each run's
metrics.jsonl stays in OUT/runs/.

With --slurm, the runs short of their budget go to SLURM instead, as one job array (one task a
run, at most --jobs at once) that survives preemption: each task works out its command when it
starts (--resume where model.pt exists), so a requeued task continues its run exactly and a
finished one is never redone; SIGTERM comes SIGNAL_LEAD seconds ahead of a time limit, and
ddpg.py saves on it. Run the same command without --slurm once the array is done: it finds every
run at its budget, runs nothing, and writes the tables.
"""

import argparse
import contextlib
import io
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import harness
from harness import ROOT, ddpg, fmt

TASKS = {  # task: budget in environment steps (issue 10's minimum)
    "InvertedPendulum-v5": 100_000, "InvertedDoublePendulum-v5": 100_000, "Reacher-v5": 100_000,
    "Hopper-v5": 300_000, "HalfCheetah-v5": 300_000, "Walker2d-v5": 300_000, "Ant-v5": 300_000,
}
EVAL_EVERY, EVAL_EPISODES = 5_000, 10
# One run on the GPU path against the CPU, HalfCheetah-v5 at the MuJoCo preset's 400-300 (steps/s while learning,
# one H200 and its Xeon cores, benchmarks/results/gpu-2026-12-01): 929 against 140 on two cores, so against one
# core more still; at 64-64 (--ddpg-flags) it was 3.1 against one core. Runs sharing one GPU take turns on it
# (three ran at a third of one's speed each), so the GPU is worth it while jobs < this ratio.
GPU_OVER_CPU_CORE = 6.7
SB3_ZOO = dict(gamma=0.99, buffer_size=1_000_000, learning_starts=10_000, noise_std=0.1, learning_rate=1e-3,
               net_arch=[400, 300], batch_size=256, train_freq=1, gradient_steps=1)  # rl-zoo's DDPG, MuJoCo


def evaluated_until(run_dir: Path) -> int:
    """The step of a run folder's last evaluation (0 if none): a run is done when it reached the budget.
    metrics.jsonl is what results/ keeps of a run, so this works without its checkpoints too."""
    if not (run_dir / "metrics.jsonl").exists():
        return 0
    return max((r["step"] for r in ddpg.read_metrics(run_dir)[0] if "eval_return" in r), default=0)


def process_history(run_dir: Path) -> list:
    """What run_process measured of each process that worked on this run (one per sitting)."""
    path = run_dir / "process.json"
    return json.loads(path.read_text()) if path.exists() else []


def suite_device(jobs: int, cuda: bool) -> tuple:
    """(the --device for the suite's runs, or None to leave ddpg.py's own choice, and why)."""
    if not cuda:
        return None, "device: the CPU (no CUDA GPU visible)"
    if jobs < GPU_OVER_CPU_CORE:
        return "cuda", (f"device: cuda, {jobs} run(s) sharing the GPU (one alone measured {GPU_OVER_CPU_CORE}x a "
                        "CPU core; runs take turns on it)")
    return "cpu", (f"device: cpu, one core a run: {jobs} runs sharing one GPU would each get less than a core's "
                   f"speed (one alone measured {GPU_OVER_CPU_CORE}x a core; runs take turns on it)")


def ddpg_command(task: str, seed: int, run_dir: Path, budget: int, threads: int, flags: str, device: str = None):
    """The command that brings run_dir to `budget` steps, or None if it is there already."""
    if evaluated_until(run_dir) >= budget:
        return None
    on = ["--device", device] if device else []
    if (run_dir / "model.pt").exists():  # extend it: the same run, continued exactly
        return [sys.executable, "ddpg.py", "--resume", str(run_dir), "--total-steps", str(budget),
                "--threads", str(threads)] + on
    if evaluated_until(run_dir):  # evaluations, but no model.pt (checkpoints are not committed): keep it
        print(f"{run_dir}: evaluated up to step {evaluated_until(run_dir):,}, but its model.pt is gone, so it "
              "cannot be continued; left as it is (move the folder away to run it again from the start)", flush=True)
        return None
    if run_dir.exists():  # a run that stopped before its first checkpoint: start it again
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)  # its stdout.log goes inside; ddpg.py takes an empty folder
    return ([sys.executable, "ddpg.py", "--env", task, "--seed", str(seed), "--total-steps", str(budget),
             "--eval-every", str(EVAL_EVERY), "--eval-episodes", str(EVAL_EPISODES), "--threads", str(threads),
             "--out", str(run_dir)] + on + shlex.split(flags))


SIGNAL_LEAD = 120  # seconds: SLURM's SIGTERM ahead of a task's time limit, time enough for ddpg.py to save


def slurm_script(argv: list, out: Path, indices: list, jobs: int, threads: int) -> str:
    """The sbatch script of a --slurm sweep: one array task per index of the suite's run list. Each task
    asks this script (--slurm-task) for its command when it starts, and becomes that process (exec), so
    SIGTERM reaches ddpg.py; its output goes to the run folder's stdout.log."""
    ask = shlex.join([sys.executable, str(Path(__file__).resolve()), *argv])
    return "\n".join([
        "#!/bin/bash",
        "#SBATCH --job-name=ddpg-suite",
        f"#SBATCH --array={','.join(map(str, indices))}%{jobs}",
        f"#SBATCH --cpus-per-task={threads}",
        "#SBATCH --requeue",  # a preempted task goes back into the queue, and resumes
        f"#SBATCH --signal=B:TERM@{SIGNAL_LEAD}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={out / 'slurm' / '%A_%a.out'}",
        "set -euo pipefail",
        f"cd {shlex.quote(str(ROOT))}",
        f'eval "$({ask} --slurm-task "$SLURM_ARRAY_TASK_ID")"', ""])


def without(argv: list, options: dict) -> list:
    """argv less the options named, each with the number of values it takes (given as --x=v or --x v)."""
    kept, skip = [], 0
    for a in argv:
        name = a.split("=", 1)[0]
        if skip:
            skip -= 1
        elif name in options:
            skip = 0 if "=" in a else options[name]
        else:
            kept.append(a)
    return kept


def submit(script: str, out: Path, slurm_args: str) -> str:
    """sbatch the script (kept in OUT/slurm/ once submitted); the job id, or SystemExit with all of sbatch's
    own words in one line, and no script left behind."""
    folder = out / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    path.write_text(script)
    try:
        proc = subprocess.run(["sbatch", "--parsable", *shlex.split(slurm_args), str(path)], capture_output=True,
                              text=True)
    except FileNotFoundError:
        path.unlink()
        sys.exit("mujoco_suite.py: error: --slurm needs sbatch, which is not on this machine's PATH "
                 "(run on a SLURM login node, or without --slurm to run here)")
    if proc.returncode != 0:
        path.unlink()
        why = " / ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        sys.exit(f"mujoco_suite.py: error: sbatch refused the sweep: {why or f'exit status {proc.returncode}'}")
    return proc.stdout.strip().split(";")[0]


def check_flags(p: argparse.ArgumentParser, args, budget: dict) -> None:
    """--slurm-args and --ddpg-flags, checked before a run starts or a job is submitted (dry runs too): a flag
    ddpg.py would refuse is refused here, in ddpg.py's words, for every task of the sweep."""
    try:
        shlex.split(args.slurm_args)
        argv = shlex.split(args.ddpg_flags)
    except ValueError as e:  # an unbalanced quote
        p.error(f"--slurm-args or --ddpg-flags cannot be split into words: {e}")
    try:
        with contextlib.redirect_stderr(io.StringIO()) as said:  # ddpg.py's parser says what is wrong, and exits
            given = vars(ddpg.build_parser().parse_args(argv))
    except SystemExit:
        p.error(f"--ddpg-flags: {said.getvalue().strip().removeprefix('ddpg.py: error: ')}")
    td3 = given.pop("td3", False)
    for task in args.tasks:
        settings = {"seed": args.seeds - 1, "total_steps": budget[task], "eval_every": EVAL_EVERY,
                    "eval_episodes": EVAL_EPISODES, **given}
        try:
            ddpg.check_config(ddpg.config_for(task, td3=td3, **settings))
        except (ddpg.ConfigError, TypeError) as e:
            p.error(f"--ddpg-flags for {task}: {e}")


def summarise(runs: list, until: int = None) -> dict:
    """The protocol's figures over the seeds of one task, from evaluations up to `until` steps."""
    curves = [[(s, r) for s, _, r in run["eval_curve"] if until is None or s <= until] for run in runs]
    n = min(len(c) for c in curves)  # the steps every seed has reached
    returns = np.array([[r for _, r in c[:n]] for c in curves])  # (seeds, evaluations)
    steps = [s for s, _ in curves[0][:n]]
    best = int(returns.mean(0).argmax()) if n else None
    last10 = returns[:, -10:].mean(1) if n else np.array([np.nan])

    def mean(key):
        values = [run[key] for run in runs if run.get(key) is not None]
        return float(np.mean(values)) if values else None

    return {"seeds": len(runs), "steps": steps[-1] if n else 0,
            "max_mean_curve": float(returns.mean(0)[best]) if n else None,
            "max_mean_curve_std": float(returns[:, best].std()) if n else None,
            "max_mean_curve_step": steps[best] if n else None,
            "last10_mean": float(last10.mean()), "last10_std": float(last10.std()),
            "steps_per_second_learning": mean("steps_per_second_learning"),
            "updates_per_second": mean("updates_per_second"), "hours": mean("train_seconds") / 3600,
            "peak_rss_mib": max((run["peak_rss_mib"] for run in runs if run["peak_rss_mib"]), default=None)}


COLUMNS = [("steps", "steps", "{:,}"), ("seeds", "seeds", "{}"),
           ("max_mean_curve", "max of mean curve", "{:,.1f}"), ("max_mean_curve_std", "± std", "{:,.1f}"),
           ("max_mean_curve_step", "at step", "{:,}"),
           ("last10_mean", "mean of last 10 evals", "{:,.1f}"), ("last10_std", "± std", "{:,.1f}"),
           ("steps_per_second_learning", "steps/s learning", "{:,.0f}"),
           ("updates_per_second", "updates/s", "{:,.0f}"), ("hours", "hours per seed", "{:.2f}"),
           ("peak_rss_mib", "peak MiB", "{:,.0f}")]


def table(rows: dict) -> list:
    lines = ["| task | " + " | ".join(label for _, label, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for task, row in rows.items():
        lines.append(f"| {task} | " + " | ".join(fmt(row[k], p) for k, _, p in COLUMNS) + " |")
    return lines


def ratio_table(ours: dict, sb3: dict) -> list:
    keys = [("max_mean_curve", "max of mean curve", "{:,.1f}"), ("last10_mean", "mean of last 10 evals", "{:,.1f}"),
            ("steps_per_second_learning", "steps/s learning", "{:,.0f}"), ("updates_per_second", "updates/s", "{:,.0f}"),
            ("peak_rss_mib", "peak MiB", "{:,.0f}")]
    lines = ["| task | steps | " + " | ".join(f"{label}: ddpg.py | SB3 | ratio" for _, label, _ in keys) + " |",
             "|---" * (2 + 3 * len(keys)) + "|"]
    for task in sb3:
        a, b = ours[task], sb3[task]
        cells = []
        for k, _, p in keys:
            ratio = f"{a[k] / b[k]:.2f}" if a[k] is not None and b[k] and a[k] > 0 and b[k] > 0 else "-"  # returns < 0: none
            cells += [fmt(a[k], p), fmt(b[k], p), ratio]
        lines.append(f"| {task} | {b['steps']:,} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="default: all of " + ", ".join(TASKS))
    p.add_argument("--seeds", type=int, default=3, help="run seeds 0 .. N-1")
    p.add_argument("--total-steps", type=int, help="budget for every task (default: the task's own, see TASKS)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default: 2, one per core here)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads per run (default: 1 with several jobs, else the preset's)")
    p.add_argument("--ddpg-flags", default="", help="extra flags for new ddpg.py runs")
    p.add_argument("--compare-sb3", action="store_true", help="also run SB3's DDPG with rl-zoo's MuJoCo settings")
    p.add_argument("--sb3-steps", type=int, help="SB3's budget (default: the same as ddpg.py's)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mujoco", help="where results go")
    p.add_argument("--slurm", action="store_true", help="submit the runs short of their budget to SLURM as one job "
                   "array (one task a run, --jobs at once) instead of running them here; then run again without it")
    p.add_argument("--slurm-args", default="", help="with --slurm: what your cluster needs, passed to sbatch, e.g. "
                   "--slurm-args=\"--partition=gpu --account=lab --time=4:00:00 --gres=gpu:1\"")
    p.add_argument("--dry-run", action="store_true", help="with --slurm: print the sbatch script, submit nothing")
    p.add_argument("--tables-only", action="store_true", help="start nothing: the tables of what OUT/runs holds now "
                   "(runs in flight, here or on a cluster, count up to their last evaluation)")
    p.add_argument("--slurm-task", type=int, help=argparse.SUPPRESS)  # an array task asks for its command
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        p.error("--seeds and --jobs must be at least 1")
    if args.compare_sb3:
        harness.need_sb3(p)
    unknown = [t for t in args.tasks if t not in TASKS and not args.total_steps]
    if unknown:
        p.error(f"no budget known for {', '.join(unknown)}: pass --total-steps")
    threads = args.threads or (1 if args.jobs > 1 else ddpg.config_for(args.tasks[0]).threads)
    sb3_threads = args.threads or (1 if args.jobs > 1 else 0)  # 0: torch's default, as SB3 users run it

    device, why = suite_device(args.jobs, ddpg.torch.cuda.is_available())
    budget = {t: args.total_steps or TASKS[t] for t in args.tasks}
    check_flags(p, args, budget)
    if args.slurm or args.slurm_task is not None:
        if args.compare_sb3:
            p.error("--slurm runs ddpg.py's runs only (SB3's cannot resume): drop --compare-sb3")
        args.out = args.out.resolve()  # the nodes start elsewhere
        planned = [(task, seed, args.out / "runs" / "ours" / task / f"seed{seed}")
                   for task in args.tasks for seed in range(args.seeds)]
        if args.slurm_task is not None:  # on the node: the command, worked out now (a requeued task resumes)
            task, seed, run_dir = planned[args.slurm_task]
            # each task is its own allocation: ddpg.py's --device auto (the GPU where the task was given one)
            cmd = ddpg_command(task, seed, run_dir, budget[task], threads, args.ddpg_flags)
            print(f"exec {shlex.join(cmd)} >> {shlex.quote(str(run_dir / 'stdout.log'))} 2>&1" if cmd else
                  f"echo {shlex.quote(f'{run_dir}: nothing to run (at its budget, or it cannot be continued)')}")
            return 0
        todo = [i for i, (task, _, run_dir) in enumerate(planned) if evaluated_until(run_dir) < budget[task]]
        if todo:
            ask = without(argv, {"--slurm": 0, "--dry-run": 0, "--slurm-args": 1, "--out": 1}) + ["--out", str(args.out)]
            script = slurm_script(ask, args.out, todo, args.jobs, threads)
            if args.dry_run:
                print(script)
                return 0
            job = submit(script, args.out, args.slurm_args)
            again = shlex.join(["python", "benchmarks/mujoco_suite.py", *ask])
            print(f"submitted job {job}: {len(todo)} runs as array tasks {','.join(map(str, todo))}, at most "
                  f"{args.jobs} at once; each writes its run folder's stdout.log\n"
                  f"watch: squeue -j {job}; when it is done, the tables: {again}", flush=True)
            return 0
        print("0 runs to do: every run is at its budget", flush=True)
    sb3_budget = {t: args.sb3_steps or budget[t] for t in args.tasks}
    jobs, where = [], []  # task by task; ddpg.py and SB3 interleaved seed by seed, so both meet the same machine
    for task in ([] if args.tables_only else args.tasks):
        for seed in range(args.seeds):
            for side in ["ddpg.py"] + (["SB3"] if args.compare_sb3 else []):
                run_dir = args.out / "runs" / ("ours" if side == "ddpg.py" else "sb3") / task / f"seed{seed}"
                where.append((side, task, seed, run_dir))
                if side == "ddpg.py":
                    cmd = ddpg_command(task, seed, run_dir, budget[task], threads, args.ddpg_flags, device)
                elif evaluated_until(run_dir) >= sb3_budget[task]:
                    cmd = None
                else:  # SB3 cannot resume: its runs start over
                    run_dir.mkdir(parents=True, exist_ok=True)
                    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
                    cmd = harness.sb3_command(task, seed, run_dir, sb3_budget[task], EVAL_EVERY, EVAL_EPISODES,
                                              SB3_ZOO, sb3_threads)
                if cmd:
                    jobs.append((cmd, run_dir / "stdout.log", len(where) - 1))
    # A run that resumes from model.pt is the nearest to done: it goes first, so that a new checkout, which comes
    # without the checkpoints (they are not committed), loses the fewest steps (the order is otherwise kept).
    jobs.sort(key=lambda job: "--resume" not in job[0])

    def done(i, process):
        side, task, seed, run_dir = where[jobs[i][2]]
        (run_dir / "process.json").write_text(json.dumps(process_history(run_dir) + [process]) + "\n")
        print(f"{side:8s} {task} seed {seed}: done, {process['process_seconds'] / 60:.1f} min, "
              f"peak {process['peak_rss_mib']:,.0f} MiB", flush=True)

    if args.tables_only:
        print("--tables-only: no run started", flush=True)
    else:
        print(f"{len(jobs)} runs to do, {args.jobs} at a time; {why}", flush=True)
        harness.run_all([(cmd, log) for cmd, log, _ in jobs], args.jobs, done)

    # The tables cover every run in OUT/runs, not only this invocation's: a benchmark built up
    # over several sittings (a task at a time, SB3 a seed at a time) reads as one.
    results = {"ddpg.py": {}, "SB3": {}}
    for side, folder in (("ddpg.py", "ours"), ("SB3", "sb3")):
        for run_dir in sorted((args.out / "runs" / folder).glob("*/seed*")):
            if evaluated_until(run_dir) == 0:
                continue
            run = harness.read_run(run_dir)
            evals = [r for r in run.pop("records") if "q_start" in r][-10:]  # ddpg.py's overestimation check
            for key in ("q_start", "mc_return"):
                run[key] = float(np.mean([r[key] for r in evals])) if evals else None
            run["peak_rss_mib"] = max((h["peak_rss_mib"] for h in process_history(run_dir)), default=None)
            results[side].setdefault(run_dir.parent.name, []).append(run)
    ours = {t: summarise(runs) for t, runs in results["ddpg.py"].items()}
    command = shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [f"Every run in `{args.out.name}/runs`; last command: `python benchmarks/mujoco_suite.py {command}`  ",
             f"Machine: {harness.machine_description()}", "", "**ddpg.py** (MuJoCo preset; evaluation every "
             f"{EVAL_EVERY:,} steps, {EVAL_EPISODES} episodes without noise; ± is the std over seeds)", ""]
    lines += table(ours)
    lines += ["", "**ddpg.py's overestimation check** (report panel 3, mean of each seed's last 10 evaluations): "
              "the critic's Q(s0, mu(s0)) at the evaluation start states against the discounted return the "
              "policy collected from them", "", "| task | critic's Q(s0, mu(s0)) | collected | Q / collected |",
              "|---|---|---|---|"]
    for task, runs in results["ddpg.py"].items():
        q, collected = (float(np.mean([run[key] for run in runs])) for key in ("q_start", "mc_return"))
        lines.append(f"| {task} | {q:,.1f} | {collected:,.1f} | "
                     + (f"{q / collected:.2f} |" if collected > 0 else "- |"))
    if results["SB3"]:
        sb3 = {t: summarise(runs) for t, runs in results["SB3"].items()}
        ours_then = {t: summarise(results["ddpg.py"][t], until=sb3[t]["steps"]) for t in sb3}
        lines += ["", "**SB3** (rl-zoo's DDPG settings for MuJoCo)", ""] + table(sb3)
        lines += ["", "**ddpg.py / SB3 at the same step** (ddpg.py's evaluations up to SB3's budget)", ""]
        lines += ratio_table(ours_then, sb3)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"command": lines[0], "summary": ours, "runs": results},
                                                      indent=1) + "\n")
    panels = [(f"{task}: evaluation return (mean of {len(results['ddpg.py'][task])} seeds, band: min-max)",
               "environment steps", f"mean return over {EVAL_EPISODES} episodes",
               {side: [([s for s, _, _ in r["eval_curve"]], [v for _, _, v in r["eval_curve"]])
                       for r in results[side][task]] for side in results if task in results[side]}, {})
              for task in results["ddpg.py"]]
    harness.curves_page(panels, args.out / "curves.html")
    print(f"wrote {args.out / 'results.md'}, {args.out / 'results.json'}, {args.out / 'curves.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
