#!/usr/bin/env bash
# The README's headline table: DDPG and TD3 at 1,000,000 steps, 3 seeds, on four MuJoCo tasks
# (issue 21). Two runs at a time, one per core. Measured here (evaluations and checkpoints
# included): 300 to 350 steps/s per run on a quiet machine, 40 to 150 while other work shares it,
# so 1 to 4 hours per run and 12 to 50 hours of both cores for all 24.
# Safe to run again at any time: each suite call resumes its runs from model.pt where one
# exists and skips those already at 1,000,000, then rewrites its tables from the metrics files.
# The README's table and docs/mujoco-1m.png: python benchmarks/mujoco_1m.py --png docs/mujoco-1m.png
set -euo pipefail
cd "$(dirname "$0")/.."
suite() { python benchmarks/mujoco_suite.py --total-steps 1000000 --threads 1 "$@"; }
R=benchmarks/results
NO_CF="--env-kwargs include_cfrc_ext_in_observation:False"  # Ant without the contact forces
# Two lanes, one per core, each running its suites one run at a time: a suite of 3 seeds run two at
# a time would leave a core idle for its third. A suite's folder belongs to one lane only.
(
  suite --jobs 1 --tasks HalfCheetah-v5 Hopper-v5 Walker2d-v5 --out $R/mujoco-1m
  suite --jobs 1 --tasks HalfCheetah-v5 Hopper-v5 Walker2d-v5 --ddpg-flags=--td3 --out $R/mujoco-1m-td3
  suite --jobs 1 --tasks Ant-v5 --ddpg-flags="$NO_CF" --out $R/mujoco-1m-ant-no-contact-forces
) & lane_a=$!
(
  suite --jobs 1 --tasks Ant-v5 --ddpg-flags="--td3 $NO_CF" --out $R/mujoco-1m-ant-td3-no-contact-forces
) & lane_b=$!
ok=true
wait $lane_a || ok=false
wait $lane_b || ok=false
$ok  # a lane that failed stops the script here, once both have ended
# Item 4 of issue 21, after the 24: is the 64-64 preset why Walker2d-v5's TD3 ends far below the
# TD3 paper's 4,683, with an honest critic and no collapse (two seeds reach 3,621 and 3,814, one
# stays near 1,000), where the 256-256 implementations reach about 4,000? The same runs with the
# paper's 400-300 networks, 3 seeds. Measured here: 43 to 73 steps/s a run with another run on the
# other core, so 4 to 6.5 hours a run. Read up to 380,000 steps they answer it (mujoco_1m.py's last
# table): seed 0 stopped there for good, its model.pt lost with a checkout, and the suite leaves a run
# without one as it is (move its folder away to run it again from step 0); seeds 1 and 2 resume.
suite --jobs 2 --tasks Walker2d-v5 --ddpg-flags="--td3 --hidden-sizes 400 300" --out $R/mujoco-1m-walker2d-td3-400-300
