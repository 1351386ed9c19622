"""DDPG: Deep Deterministic Policy Gradient, in one annotated file.

Lillicrap et al. (2015), "Continuous control with deep reinforcement learning",
arXiv:1509.02971. The numbers E1-E8 refer to the equations written out in
docs/equations.md, and to the equation-to-code table in README.md; E9-E11 are TD3's three
changes (Fujimoto et al. 2018), each a switch, all off unless asked for.

    python ddpg.py --env Pendulum-v1          # train, evaluate, checkpoint, report
    python ddpg.py --env Hopper-v5 --td3      # MuJoCo's own settings; TD3: E9, E10 and E11 on
    python ddpg.py --resume runs/X            # continue a run exactly where it stopped
    python ddpg.py --load runs/X/best.pt --eval-only    # or --export policy.pt2, or --report runs/X
    import ddpg                               # reuse Actor, Critic, td_target, ...

The file has two parts. Part A is the algorithm, read top to bottom in the order of the
derivation: the config, the networks (E1, E2), the replay buffer (E4), exploration noise (E5),
the update (E6, E7, E8, E3; TD3's E9-E11), evaluation, what stops a run, and the run with its
loop. Part B, after a banner, is the machinery a reader may skip, in the order a run uses it:
input checks, assembling the run, the run folder, checkpoints, the GPU path, the report and the
command line. Part A enters it by two doors only, start_run and stop_on_signals.

Where this departs from Lillicrap et al. (2015), and why (each also marked at its line):
  1. Gaussian exploration noise by default, not Ornstein-Uhlenbeck: simpler and as good
     on most tasks (Fujimoto et al. 2018; the default of TD3, CleanRL and Stable-Baselines3).
     --noise ou gives the paper's process, which tasks with sparse rewards need.
  2. Hidden layers 64-64 on Pendulum-sized tasks (as good there, at an eighth of an update's cost
     on a CPU); MuJoCo keeps the paper's 400-300 (Walker2d-v5 TD3 learns far slower at 64-64, and
     slower at CleanRL's 256-256: benchmarks/README, how the MuJoCo settings were chosen).
  3. Actor and critic learning rates both 1e-3 (paper: 1e-4 and 1e-3), batch 128 (paper:
     64), gamma 0.98 on Pendulum (paper: 0.99), tau 0.005 (paper: 0.001; the value of TD3,
     CleanRL and SB3), no L2 weight decay on the critic (paper: 1e-2), no batch
     normalisation, default PyTorch initialisation (paper: uniform +-3e-3 on the last
     layers). Chosen by measurement over seeds; see README.
  4. The first --learning-starts steps act uniformly at random, to fill the buffer with
     diverse data before the first update (the paper starts updating at once).
  5. The action enters the critic at its first layer (paper: at the second).
  6. Time-limit truncation is not treated as termination (the paper predates the
     distinction; see E6).
"""


import argparse
import ast
import contextlib
import copy
import functools
import hashlib
try:
    import fcntl  # run-folder locks (prepare_run_dir); not on Windows, where a run goes on without one
except ImportError:
    fcntl = None
import json
import math
import os
import pkgutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn


# --- Config: every hyper-parameter is a flag; the help text says what it is and why. -----


def arg(default, help, **argparse_kwargs):
    """A Config field whose help text and argparse options travel with it (besides argparse's
    own: flag, the option if not --field-name; shown_default, the default as --help words it)."""
    if isinstance(default, dict):  # a mutable default: each Config gets its own
        return field(default_factory=dict, metadata={"help": help, **argparse_kwargs})
    return field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclass
class Config:
    env: str = arg("Pendulum-v1", "Gymnasium id; 'module:EnvId' imports module first to register it", metavar="ID")
    seed: int = arg(0, "seed for torch, numpy and the environments; same seed, same run on the same machine, "
                       "CPU and versions")
    total_steps: int = arg(20_000, "environment steps to train for")
    learning_starts: int = arg(1_000, "uniform random actions for this many steps before the first update "
                                      "(fills the buffer)")
    buffer_size: int = arg(1_000_000, "replay buffer capacity in transitions (E4); the paper's 10^6")
    batch_size: int = arg(128, "minibatch size per gradient step; paper: 64")
    gamma: float = arg(0.98, "discount factor in [0, 1) (E6); 0.98 learns Pendulum faster than the paper's 0.99")
    tau: float = arg(0.005, "Polyak rate in (0, 1] for the target networks (E3); paper: 0.001")
    actor_lr: float = arg(1e-3, "Adam learning rate of the actor; paper: 1e-4")
    critic_lr: float = arg(1e-3, "Adam learning rate of the critic; paper: 1e-3")
    hidden_sizes: tuple = arg((64, 64), "hidden layer widths of actor and critic; paper: 400 300",
                              nargs="+", type=int, metavar="N")
    noise: str = arg("gaussian", "exploration noise (E5): gaussian, independent at each step, or ou, the "
                                 "paper's Ornstein-Uhlenbeck process, correlated in time", choices=("gaussian", "ou"))
    noise_std: float = arg(0.1, "exploration noise std (the OU process's sigma) as a fraction of the action "
                                "half-range (E5)")
    ou_theta: float = arg(0.15, "with --noise ou: how fast the noise returns to 0 per step; the paper's 0.15")
    # TD3's three changes (E9-E11), each a switch; all off is DDPG. --td3 turns on all three.
    twin_critics: bool = arg(False, "TD3's clipped double Q (E9): two critics, y bootstraps from the smaller "
                                    "target estimate", action=argparse.BooleanOptionalAction)
    target_noise: float = arg(0.0, "TD3's target policy smoothing (E10): std of the noise added to mu'(s') in y, "
                                   "a fraction of the action half-range; 0: off")
    target_noise_clip: float = arg(0.5, "with --target-noise: that noise is clipped to +-this fraction of the "
                                        "half-range (E10)")
    policy_delay: int = arg(1, "TD3's delayed policy updates (E11): the actor and the targets step once every N "
                               "critic updates; 1: every update, as DDPG")
    env_kwargs: dict = arg({}, "keyword arguments for gymnasium.make, as KEY:VALUE pairs (Python literals), e.g. "
                               "include_cfrc_ext_in_observation:False", shown_default="none", nargs="+",
                           metavar="KEY:VALUE")  # each parsed by parse_env_kwarg (the command line)
    eval_every: int = arg(2_000, "evaluate the deterministic policy, checkpoint and report every this many steps")
    eval_episodes: int = arg(10, "episodes per evaluation")
    log_every: int = arg(1_000, "print a progress line and log the update's numbers every this many steps")
    probe_states: int = arg(5, "fixed start states whose actions the report tracks over training")
    threads: int = arg(1, "torch CPU threads; 0: torch's default", shown_default="1, or 2 with hidden layers 256 "
                       "wide or wider, where two are 1.4-1.6x faster (benchmarks/README: choosing --threads)")
    device: str = arg("auto", "where the networks live: cpu; cuda, the GPU path (buffer on the GPU, the update in a "
                              "CUDA graph); or auto, the GPU where CUDA is visible (measured 3.1x the CPU at 64-64, "
                              "6.7x at 400-300: README, On a GPU), else the CPU. cpu for several runs on one GPU",
                      choices=("auto", "cpu", "cuda"))
    out: str = arg("", "run folder for metrics.jsonl, model.pt, best.pt and report.html "
                       "(default: a new folder under runs/)", metavar="DIR")
    load: str = arg("", "start a new run from this checkpoint's networks, targets, optimizers and step "
                        "(model.pt or best.pt; its replay buffer is not used); --env, --seed, --hidden-sizes, the "
                        "learning rates and --eval-episodes default to the checkpoint's", metavar="FILE")
    resume: str = arg("", "continue the run in this folder exactly where its model.pt stopped: buffer, random "
                          "streams and counters too; only --total-steps, --threads, --device and --no-report "
                          "may change", metavar="DIR")
    eval_only: bool = arg(False, "with --load: evaluate the checkpoint, print the return, train nothing",
                          action="store_true")
    report: bool = arg(True, "don't write report.html (then plotly is not needed)", flag="--no-report",
                       action="store_false")

    def __post_init__(self):  # a list from argparse or a checkpoint's JSON-like config: one form, compared equal
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.env_kwargs = dict(self.env_kwargs)  # from argparse: [(key, value), ...]


# TD3 (Fujimoto et al. 2018) is DDPG with its three switches on, at the paper's values.
TD3 = dict(twin_critics=True, target_noise=0.2, target_noise_clip=0.5, policy_delay=2)

# Settings per task family, measured on this project's machine (benchmarks/README, "How the MuJoCo
# settings were chosen"). A flag given on the command line always wins over its preset.
PRESETS = {
    "mujoco": dict(hidden_sizes=(400, 300), total_steps=1_000_000, learning_starts=10_000, batch_size=256,
                   gamma=0.99, eval_every=5_000, log_every=5_000),
}


def preset_for(env_id: str) -> str:
    """The PRESETS family of an environment id, or "" (Pendulum's defaults) if it has none."""
    try:
        entry_point = str(gym.spec(env_id).entry_point)
    except Exception:  # unknown or not yet importable: make_env() says what is wrong
        return ""
    return "mujoco" if entry_point.startswith("gymnasium.envs.mujoco") else ""


def config_for(env: str = Config.env, td3: bool = False, **flags) -> Config:
    """A Config for `env`: Pendulum's defaults, then its family's preset (preset_for), then TD3's
    switches if td3, then `flags` (so `--td3 --policy-delay 3` is TD3 with a longer delay)."""
    cfg = Config(env=env, **{**PRESETS.get(preset_for(env), {}), **(TD3 if td3 else {}), **flags})
    if "threads" not in flags:  # a second thread pays from 256 wide (benchmarks/README: choosing --threads)
        cfg.threads = 1 if max(cfg.hidden_sizes, default=0) < 256 else min(2, os.cpu_count() or 1)
    return cfg


# --- E1, E2: the networks ----------------------------------------------------------------


def mlp(in_dim: int, hidden_sizes, out_dim: int) -> nn.Sequential:
    layers, d = [], in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """E1: the deterministic policy  a = mu_theta(s) = bias + scale * tanh(f_theta(s)).

    scale = (high - low) / 2 and bias = (high + low) / 2 map tanh's (-1, 1) onto any box
    [low, high], asymmetric ones included (implementations that multiply by `high` alone
    are wrong when low != -high)."""

    def __init__(self, obs_dim: int, action_low, action_high, hidden_sizes=(64, 64)):
        super().__init__()
        low = torch.as_tensor(np.asarray(action_low), dtype=torch.float32)
        high = torch.as_tensor(np.asarray(action_high), dtype=torch.float32)
        self.net = mlp(obs_dim, hidden_sizes, low.numel())
        # Buffers, not parameters: they move with .to(device) and are saved, never trained.
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> (B, act_dim)
        return self.action_bias + self.action_scale * torch.tanh(self.net(s))


class Critic(nn.Module):
    """E2: the action-value function  Q_phi(s, a) ~ E[sum_t gamma^t r_t | s_0=s, a_0=a, then mu]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes=(64, 64)):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden_sizes, 1)  # departure 5: a enters at layer 1

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # -> (B,)
        return self.net(torch.cat([s, a], dim=-1)).squeeze(-1)


# --- E4: replay buffer -------------------------------------------------------------------


class Batch(NamedTuple):
    s: torch.Tensor  # (B, obs_dim)
    a: torch.Tensor  # (B, act_dim)
    r: torch.Tensor  # (B,)
    s2: torch.Tensor  # (B, obs_dim)
    terminated: torch.Tensor  # (B,) 1.0 where the episode really ended, else 0.0


class ReplayBuffer:
    """E4: a circular store of transitions (s, a, r, s2, terminated), sampled uniformly.

    Sampling i.i.d. from many past episodes breaks the correlation between consecutive
    steps and reuses each transition many times. Learning from data that an older
    policy collected is what makes DDPG off-policy. Storage: numpy arrays, sampled through
    torch views of the same memory."""

    FIELDS = ("s", "a", "r", "s2", "terminated")

    def __init__(self, obs_dim: int, action_dim: int, capacity: int):
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.s = np.zeros((capacity, obs_dim), np.float32)
        self.a = np.zeros((capacity, action_dim), np.float32)
        self.r = np.zeros(capacity, np.float32)
        self.s2 = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self._views = [torch.from_numpy(getattr(self, name)) for name in self.FIELDS]

    def add(self, s, a, r, s2, terminated) -> None:
        i = self.pos
        self.s[i], self.a[i], self.r[i], self.s2[i], self.terminated[i] = s, a, r, s2, terminated
        self.pos = (i + 1) % self.capacity  # wrap around: the oldest transition is overwritten
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator = None) -> Batch:
        idx = torch.randint(self.size, (batch_size,), generator=generator)  # uniform, with replacement
        return Batch(*(v[idx] for v in self._views))

    def state_dict(self) -> dict:  # for model.pt: the transitions held (all of them once full) and where to write
        return {"buffer": {name: torch.from_numpy(getattr(self, name)[:self.size]) for name in self.FIELDS},
                "buffer_pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        n = len(state["buffer"]["r"])
        for name, values in state["buffer"].items():
            getattr(self, name)[:n] = values.numpy()
        self.size, self.pos = n, state["buffer_pos"]


# --- E5: exploration noise ---------------------------------------------------------------


def gaussian_noise(sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """E5, the default: eps_t ~ N(0, sigma^2), drawn afresh at every step (departure 1)."""
    return rng.normal(0.0, sigma)


def ou_noise(x: np.ndarray, sigma: np.ndarray, theta: float, rng: np.random.Generator, dt: float = 1.0):
    """E5, the paper's: one step of the Ornstein-Uhlenbeck process, eps_t = x_{t+1}, with

        x_{t+1} = x_t + theta * (0 - x_t) * dt + sigma * sqrt(dt) * N(0, 1).

    Each step keeps (1 - theta) of the last noise and adds a fresh kick, so the noise
    pushes in one direction for about 1 / theta steps: a sustained push that independent
    Gaussian draws almost never produce (MountainCar's back-and-forth swing needs one).
    x starts at 0 and is reset to 0 at every episode start."""
    return x + theta * (0.0 - x) * dt + sigma * math.sqrt(dt) * rng.standard_normal(np.shape(x))


def add_exploration_noise(action: np.ndarray, eps: np.ndarray, low, high) -> np.ndarray:
    """E5: a_t = clip(mu(s_t) + eps_t, low, high). The actor is deterministic: without the
    noise it would only ever try one action per state."""
    return np.clip(action + eps, low, high)


# --- E6, E7, E8, E3 (and TD3's E9, E10, E11): the update, one pure function per equation ---


def td_target(reward, next_q, terminated, gamma: float):
    """E6: y = r + gamma * (1 - d) * Q_phi'(s', mu_theta'(s')), with next_q = Q_phi'(s', mu_theta'(s')).

    d is Gymnasium's `terminated`: the episode really ended and s' has no future, so the
    bootstrap term is dropped. A time-limit cut (`truncated`) is NOT d: the state still
    had a future, so the target bootstraps from s' as usual. Treating truncation as
    termination teaches the critic that the world ends at step 200."""
    if isinstance(terminated, torch.Tensor) and terminated.dtype == torch.bool:
        terminated = terminated.float()  # a bool mask (vector envs, many buffers); 1 - bool raises
    return reward + gamma * (1.0 - terminated) * next_q


def critic_loss(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E7: L(phi) = E[(Q_phi(s, a) - y)^2], the mean squared TD error."""
    return ((q - y) ** 2).mean()


def actor_loss(actor: nn.Module, critic: nn.Module, s: torch.Tensor) -> torch.Tensor:
    """E8: L_actor(theta) = -E[Q_phi(s, mu_theta(s))].

    Minimising it ascends J(theta); autograd applies the deterministic policy gradient
    grad_a Q_phi(s, a)|_{a=mu(s)} * grad_theta mu_theta(s) through the chain rule."""
    return -critic(s, actor(s)).mean()


@torch.no_grad()  # targets are never part of a graph: they receive no gradient
def soft_update(target, source, tau: float) -> None:
    """E3: theta' <- tau * theta + (1 - tau) * theta', in place, for every parameter.

    tau = 1 copies, tau = 0 keeps. A small tau makes the target network, and so the TD
    target y, change slowly: the critic regresses onto a target that stands still long
    enough to be fitted. `target`, `source`: two nn.Modules of one shape, or their parameter lists."""
    if isinstance(target, nn.Module):
        target, source = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(target, source, tau)  # t + tau * (s - t), for all parameters in one call


def clipped_double_q(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """E9 (TD3): min_i Q_phi_i'(s', a'), the smaller of the two target critics' estimates.

    The actor climbs the critic's errors (E8 takes a max-like step on Q), so a single
    critic's y inherits its overestimates; two critics rarely err upwards at the same
    point, and their minimum keeps y from feeding the bias back into itself."""
    return torch.minimum(q1, q2)


def smooth_target_action(next_action, eps, clip, low, high) -> torch.Tensor:
    """E10 (TD3): a~' = clip(mu_theta'(s') + clip(eps, -c, c), low, high), eps ~ N(0, sigma^2) drawn by the caller.

    clip, low and high are in action units (tensors per action dimension, or anything that
    broadcasts). The critic is fitted on a neighbourhood of the target action, so it cannot
    build a narrow peak there for the actor to exploit."""
    return torch.clamp(next_action + torch.clamp(eps, -clip, clip), low, high)


class DDPG:
    """The four networks of E1-E3, their optimizers, and one update step; with twin_critics
    a second critic and its target (E9), with target_noise the smoothing of E10."""

    def __init__(self, obs_dim: int, action_low, action_high, hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3,
                 device="cpu", twin_critics=False, target_noise=0.0, target_noise_clip=0.5):
        self.device = torch.device(device)
        self.actor = Actor(obs_dim, action_low, action_high, hidden_sizes).to(self.device)
        self.critic = Critic(obs_dim, len(action_low), hidden_sizes).to(self.device)
        # E3: the targets start as exact copies (else y would come from an unrelated
        # random network) and are frozen: only soft_update changes them.
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.twin_critics = twin_critics
        if twin_critics:  # E9: Q_phi2, initialised apart from Q_phi1, with its own target
            self.critic2 = Critic(obs_dim, len(action_low), hidden_sizes).to(self.device)
            self.critic2_target = copy.deepcopy(self.critic2).requires_grad_(False)
        trained = ["actor", "critic"] + (["critic2"] if twin_critics else [])
        # fused: one kernel per optimizer step. One Adam over both critics is two: its state is per parameter.
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam([p for name in trained[1:] for p in getattr(self, name).parameters()],
                                                 lr=critic_lr, fused=True)
        # (theta', theta) and (phi', phi) as parameter lists, made once for soft_update
        self.target_pairs = [(list(getattr(self, name + "_target").parameters()), list(getattr(self, name).parameters()))
                             for name in trained]
        # E10 in action units: sigma and c are fractions of the half-range (the actor's scale)
        self.smoothing = target_noise > 0
        scale, bias = self.actor.action_scale, self.actor.action_bias
        self.target_noise, self.target_noise_clip = target_noise * scale, target_noise_clip * scale
        self.action_low, self.action_high = bias - scale, bias + scale

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action mu(s) for one observation, as numpy."""
        s = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        return self.actor(s)[0].cpu().numpy()

    def critic_step(self, batch: Batch, gamma: float, generator: torch.Generator = None) -> dict:
        """E6 and E7 (with E9, E10 if on): regress Q_phi(s, a) onto the TD target y, one Adam step on phi."""
        s, a, r, s2, terminated = batch
        # E6 from the target networks, under no_grad: y is a fixed regression label, so
        # no gradient may flow into it (or into the targets).
        with torch.no_grad():
            next_action = self.actor_target(s2)  # (B, act_dim)
            if self.smoothing:  # E10
                eps = torch.randn(next_action.shape, generator=generator, device=next_action.device)
                next_action = smooth_target_action(next_action, eps * self.target_noise, self.target_noise_clip,
                                                   self.action_low, self.action_high)
            next_q = self.critic_target(s2, next_action)  # (B,)
            if self.twin_critics:  # E9
                next_q = clipped_double_q(next_q, self.critic2_target(s2, next_action))
            y = td_target(r, next_q, terminated, gamma)  # (B,)
        q = self.critic(s, a)  # (B,)
        loss = critic_loss(q, y)
        both = loss + critic_loss(self.critic2(s, a), y) if self.twin_critics else loss  # E9: both regress onto y
        self.critic_optimizer.zero_grad(set_to_none=True)
        both.backward()
        self.critic_optimizer.step()
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean(), "target_mean": y.mean()}  # 0-d tensors

    def actor_step(self, s: torch.Tensor) -> dict:
        """E8: one Adam step on theta along the deterministic policy gradient (of Q_phi1 alone with E9)."""
        # Trap: the actor loss runs through the critic, so backward() would also fill the
        # critic's .grad. Freezing the critic keeps its gradients out (and saves that
        # work), and only the actor's optimizer steps: the critic is left as it was.
        self.critic.requires_grad_(False)
        loss = actor_loss(self.actor, self.critic, s)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_optimizer.step()
        self.critic.requires_grad_(True)
        return {"actor_loss": loss.detach()}

    def update(self, batch: Batch, gamma: float, tau: float, step_actor: bool = True,
               generator: torch.Generator = None) -> dict:
        """One DDPG update: critic step, actor step (on the updated critic), soft updates.
        step_actor=False (E11, --policy-delay) leaves out the actor step and the soft updates.
        Returns, as 0-d tensors, what logging and the report read: critic_loss, q_mean (mean
        Q(s, a) of the minibatch), target_mean (mean y) and, with the actor step, actor_loss."""
        numbers = self.critic_step(batch, gamma, generator)
        if step_actor:
            numbers.update(self.actor_step(batch.s))
            # E3, after every gradient step: theta' <- tau theta + (1 - tau) theta', same for phi'.
            for target, source in self.target_pairs:
                soft_update(target, source, tau)
        return numbers

    NETWORKS = ("actor", "critic", "actor_target", "critic_target", "critic2", "critic2_target")

    def state_dict(self) -> dict:
        names = [n for n in self.NETWORKS if hasattr(self, n)] + ["actor_optimizer", "critic_optimizer"]
        return {name: getattr(self, name).state_dict() for name in names}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)


# --- Evaluation: the deterministic policy, no noise, on its own environment instance -----

EVAL_SEED_OFFSET, PROBE_SEED_OFFSET = 10_000, 20_000  # evaluation and probe start states differ from training's


def run_episode(env: gym.Env, act, seed: int, gamma: float) -> tuple:
    """One episode of the policy `act` (observation -> action) from env.reset(seed=seed) to its
    termination or truncation. Returns (first observation, return, discounted return)."""
    obs0 = obs = env.reset(seed=seed)[0]
    total, total_discounted, discount, done = 0.0, 0.0, 1.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward)
        total_discounted += discount * float(reward)
        discount *= gamma
        done = terminated or truncated
    return obs0, total, total_discounted


def evaluate(agent: DDPG, env: gym.Env, episodes: int, seed: int, gamma: float) -> dict:
    """Run mu(s) without noise for `episodes` episodes; episode k starts at reset(seed=seed+k):
    the same start states at every evaluation, so that a change is the policy's, not the draw's.
    Also returns, for the overestimation check, the critic's Q(s0, mu(s0)) at each start state
    against the discounted return the policy then collected (cut where the episode ends)."""
    actor = copy.deepcopy(agent.actor).cpu()  # on a GPU: one copy per evaluation, not a round trip per step
    act = torch.inference_mode()(lambda obs: actor(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0].numpy())
    returns, discounted, q_start = [], [], []
    for k in range(episodes):
        obs0, total, total_discounted = run_episode(env, act, seed + k, gamma)
        s0 = torch.as_tensor(obs0, dtype=torch.float32, device=agent.device).unsqueeze(0)
        with torch.inference_mode():
            q_start.append(agent.critic(s0, agent.actor(s0)).item())
        returns.append(total)
        discounted.append(total_discounted)
    return {"eval_return": float(np.mean(returns)), "eval_returns": returns,
            "q_start": float(np.mean(q_start)), "mc_return": float(np.mean(discounted))}


# --- What stops a run: the exceptions, and the checks that raise them -------------------


class RunStopped(RuntimeError):
    """The run cannot go on (model.pt holds it up to the last checkpoint). main(): one line, exit status 1."""


class Diverged(RunStopped):
    """A loss, weight, observation or reward that is not finite."""


class EnvFailed(RunStopped):
    """The environment raised an exception in reset or step (ReplayableEnv, Part B); train() saves the run first."""


def check_finite(step: int, numbers: dict, cause: str) -> None:
    """Stop the run at the first NaN or infinity, naming the step, the quantity and the likely cause."""
    for name, value in numbers.items():  # math.isfinite for plain numbers: this runs at every step
        if not (math.isfinite(value) if isinstance(value, (float, int)) else np.isfinite(value).all()):
            bad = np.ravel(value)[~np.isfinite(np.ravel(value))][0]
            raise Diverged(f"step {step:,}: {name} is {bad}; {cause}")


def diverged_cause(cfg: Config) -> str:
    return f"the updates diverged: lower --critic-lr ({cfg.critic_lr:g}) and --actor-lr ({cfg.actor_lr:g})"


def check_weights(agent: DDPG, cfg: Config, step: int) -> None:
    for name in ("actor", "critic"):
        if not all(torch.isfinite(p).all() for p in getattr(agent, name).parameters()):
            raise Diverged(f"step {step:,}: the {name}'s weights are not finite (no checkpoint written); "
                           + diverged_cause(cfg))


# --- The training run: its state in one object, and the loop -----------------------------


def sample_and_update(agent: DDPG, buffer: ReplayBuffer, cfg: Config, generator, step_actor: bool) -> tuple:
    """E4, then E6-E11 and E3: one update on a uniform minibatch, drawn with `generator`. Returns the
    minibatch's states (for the report's saturation panel) and the update's numbers. The GPU path
    (Part B) runs this same function, captured in a CUDA graph."""
    batch = buffer.sample(cfg.batch_size, generator)
    return batch.s, agent.update(batch, cfg.gamma, cfg.tau, step_actor, generator)


class Run:
    """A training run's state, all that --resume needs to continue it exactly: the agent, its replay buffer and
    update (made for its device by new_run), every random stream (rng: warm-up actions and noise; sampler:
    minibatch indices and E10's noise; the training environment's own: its resets), the OU noise state, the
    counters and the episode in progress. collect() takes one environment step, learn() one update."""

    def __init__(self, cfg: Config, env: gym.Env, agent: DDPG, buffer, update, sampler, step: int = 0):
        self.cfg, self.env, self.agent, self.buffer, self.update = cfg, env, agent, buffer, update
        self.low, self.high = env.action_space.low, env.action_space.high
        self.sigma = cfg.noise_std * (self.high - self.low) / 2  # E5: noise std relative to the half-range
        self.rng, self.sampler = np.random.default_rng(cfg.seed), sampler  # the random streams above
        self.reset_seed = cfg.seed  # the first reset seeds the environment; later ones draw from its generator
        self.noise_x = np.zeros(self.low.shape)  # the OU process's state x_t (E5)
        self.step, self.updates = step, 0
        self.obs = None  # None: the next step starts a new episode
        self.episode_return, self.episode_length, self.recent_returns = 0.0, 0, []
        self.best, self.elapsed = None, 0.0  # the best evaluation (eval_return, step); seconds trained before
        self.stop_signal = None  # set by a signal handler; the loop stops before the next step
        self.numbers, self.last_s = {}, None  # the latest update's numbers (0-d tensors) and minibatch states
        # what check_finite says is the likely cause, made once (the checks run at every step)
        self.env_cause = f"{cfg.env} produced it from a finite action: the environment, not the learning, is at fault"
        self.update_cause = diverged_cause(cfg)

    def collect(self):
        """One environment step of the exploring policy, stored in the buffer (E4, E5). Returns the
        record of the episode it finished, or None."""
        if self.obs is None:  # a new episode
            self.obs = self.env.reset(seed=self.reset_seed)[0]
            self.reset_seed, self.noise_x = None, np.zeros_like(self.noise_x)
            check_finite(self.step, {"the first observation": self.obs}, self.env_cause)
        # Act: uniform random during warm-up (departure 4), then mu(s) + noise (E5).
        self.before = self.rng.bit_generator.state, self.noise_x  # if env.step raises, the run is saved with these
        if self.step < self.cfg.learning_starts:
            action = self.rng.uniform(self.low, self.high)
        else:
            if self.cfg.noise == "ou":
                eps = self.noise_x = ou_noise(self.noise_x, self.sigma, self.cfg.ou_theta, self.rng)
            else:
                eps = gaussian_noise(self.sigma, self.rng)
            mu = self.agent.act(self.obs)
            # A non-finite action is the learning's fault: stop before the environment sees it (and is
            # blamed). It is also where a diverged update is caught, one step after it.
            check_finite(self.step, {"the actor's action mu(s)": mu}, self.update_cause)
            action = add_exploration_noise(mu, eps, self.low, self.high)
        action = action.astype(np.float32)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.step += 1
        check_finite(self.step, {"the observation": next_obs, "the reward": reward}, self.env_cause)

        # E4, E6 trap: store `terminated`, never `truncated`, and next_obs as returned by
        # this step, which is the true last observation even when the time limit cut the
        # episode. The reset comes at the next step, after it is stored.
        self.buffer.add(self.obs, action, reward, next_obs, terminated)
        self.obs = next_obs
        self.episode_return += float(reward)
        self.episode_length += 1
        if not (terminated or truncated):
            return None
        episode = {"step": self.step, "episode_return": self.episode_return, "episode_length": self.episode_length}
        self.recent_returns = (self.recent_returns + [self.episode_return])[-10:]
        self.obs, self.episode_return, self.episode_length = None, 0.0, 0
        return episode

    def learn(self) -> None:
        """One update (E6-E11, E3) on a uniform minibatch (E4). The numbers stay 0-d tensors until
        the log line reads them (and checks they are finite): on a GPU, reading one is a wait."""
        step_actor = (self.updates + 1) % self.cfg.policy_delay == 0  # E11: every update unless --policy-delay
        self.updates += 1
        self.last_s, numbers = self.update(step_actor)
        self.numbers = {**self.numbers, **numbers}  # actor_loss stays that of the last actor step


def train(cfg: Config, quiet: bool = False) -> dict:
    """Train DDPG as `cfg` says, or continue the run in cfg.resume (see resume_config). Returns the agent,
    the buffer, the run folder, the final and the best evaluation. Raises ConfigError on bad input, before
    the first step; Diverged when a loss, weight, observation or reward stops being finite (no checkpoint
    is written then); RunStopped when metrics.jsonl cannot be written or the environment raises (saved first)."""
    # Part B's first door: every check on the input, the environments, the agent (new, --load or
    # --resume), the run folder and its first lines; probes are fixed states whose actions the report follows.
    run, eval_env, probes, folder = start_run(cfg, quiet)
    last_eval = None
    try:
        with stop_on_signals(run):  # the second door: a signal only sets run.stop_signal: the loop ends after this step
            if folder.evaluation_missed:  # --resume after the environment failed in this step's evaluation: again
                last_eval = evaluate_and_save(run, eval_env, probes, folder)
            while run.step < cfg.total_steps and not run.stop_signal:
                episode = run.collect()  # act with mu(s) + noise (E5), store the transition (E4)
                if episode:
                    folder.log(episode)
                if run.step > cfg.learning_starts and run.buffer.size >= cfg.batch_size:
                    run.learn()  # E6-E11, E3
                if run.step % cfg.log_every == 0 or run.step == cfg.total_steps:
                    folder.log_progress()  # the update's numbers in metrics.jsonl, a progress line
                if run.step % cfg.eval_every == 0 or run.step == cfg.total_steps:
                    last_eval = evaluate_and_save(run, eval_env, probes, folder)
            if run.stop_signal:  # save what there is, without an evaluation: a signal wants a quick exit
                folder.say(f"\n{signal.Signals(run.stop_signal).name} at step {run.step:,}; saving")
                saved = folder.checkpoint()
            else:
                if last_eval is None:  # resumed at or past --total-steps: evaluate what was loaded
                    last_eval = evaluate_and_save(run, eval_env, probes, folder)
                saved = last_eval["saved"]
    except Diverged:
        folder.report()  # the report shows the run up to the divergence
        raise
    except EnvFailed as e:  # the environment raised: the run is saved as a signal saves it, then stops
        raise folder.env_failed(e) from None
    finally:
        folder.close()
        run.env.close()
        eval_env.close()
    return folder.finish(last_eval, saved)


def evaluate_and_save(run: Run, eval_env: gym.Env, probes: torch.Tensor, folder) -> dict:
    """Evaluate mu(s) without noise, log it and the actions at the probe states, keep the best
    policy in best.pt, and checkpoint the run in model.pt (with report.html)."""
    cfg, agent = run.cfg, run.agent
    check_weights(agent, cfg, run.step)  # before acting with them in the environment
    result = evaluate(agent, eval_env, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET, cfg.gamma)
    check_finite(run.step, {"the evaluation return": result["eval_return"]}, run.env_cause)
    check_finite(run.step, {"the critic's Q(s0, mu(s0))": result["q_start"]}, run.update_cause)
    with torch.inference_mode():
        probe_actions = agent.actor(probes).cpu().tolist()
    folder.log({"step": run.step, "eval_return": result["eval_return"], "q_start": result["q_start"],
                "mc_return": result["mc_return"], "probe_actions": probe_actions})
    if run.best is None or result["eval_return"] > run.best[0]:
        run.best = (result["eval_return"], run.step)
        folder.save("best.pt", eval_return=result["eval_return"])
    result["saved"] = folder.checkpoint()
    return result


# =======================================================================================
# The algorithm is complete above this line. Part B, below, is machinery a reader may skip.
# =======================================================================================


# --- Input checks and environments: what can fail on bad input fails here, before the first step ---


class ConfigError(ValueError):
    """Bad input that the user can fix. main() prints it as one line and exits with 2."""


def check_config(cfg: Config) -> None:
    """Reject values that cannot work, before anything is built: the first rule broken, in one line."""
    c, flag = cfg, lambda name: "--" + name.replace("_", "-")
    rules = [(getattr(c, n) <= 0, f"{flag(n)} must be positive, got {getattr(c, n)}")
             for n in ("total_steps", "buffer_size", "batch_size", "eval_every", "eval_episodes", "log_every")]
    rules += [(getattr(c, n) < 0, f"{flag(n)} must be >= 0, got {getattr(c, n)}")
              for n in ("learning_starts", "probe_states", "threads")]
    rules += [(not 0 <= c.seed < 2 ** 64, f"--seed must be in [0, 2^64) (numpy and torch take no other), got {c.seed}"),
              (not 0 < c.tau <= 1, f"--tau must be in (0, 1], got {c.tau}"),
              (not 0 <= c.gamma < 1, f"--gamma must be in [0, 1), got {c.gamma}")]
    rules += [(not (getattr(c, n) > 0 and math.isfinite(getattr(c, n))),
               f"{flag(n)} must be a positive number, got {getattr(c, n)}") for n in ("actor_lr", "critic_lr")]
    rules += [
        (not (c.noise_std >= 0 and math.isfinite(c.noise_std)), f"--noise-std must be >= 0, got {c.noise_std}"),
        (not (0 <= c.target_noise < math.inf and 0 <= c.target_noise_clip < math.inf),
         f"--target-noise and --target-noise-clip must be >= 0, got {c.target_noise} and {c.target_noise_clip}"),
        (c.policy_delay < 1, f"--policy-delay must be at least 1 (1: DDPG), got {c.policy_delay}"),
        (not 0 <= c.ou_theta <= 1, f"--ou-theta must be in [0, 1] (it is a per-step rate, dt = 1), got {c.ou_theta}"),
        (any(h <= 0 for h in c.hidden_sizes), f"--hidden-sizes must all be positive, got {list(c.hidden_sizes)}"),
        (c.batch_size > c.buffer_size, f"--batch-size {c.batch_size} is larger than --buffer-size {c.buffer_size}"),
        (c.eval_only and not c.load, "--eval-only needs --load CHECKPOINT"),
        (c.resume and (c.load or c.eval_only),
         "--resume continues a run; --load starts a new one from a checkpoint: pass one of them"),
        (c.learning_starts >= c.total_steps and not (c.eval_only or c.load or c.resume),
         f"--learning-starts {c.learning_starts} >= --total-steps {c.total_steps}: nothing would be learned")]
    for broken, message in rules:
        if broken:
            raise ConfigError(message)


def resolve_device(name: str) -> tuple:
    """The device to train on, and why (the first lines of a run say both)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this PyTorch cannot see a CUDA GPU; use --device cpu")
    if name != "auto":
        return torch.device(name), f"--device {name}"
    if torch.cuda.is_available():
        return torch.device("cuda"), (f"--device auto: a CUDA GPU is visible, and the GPU path measured {GPU_SPEEDUP} "
                                      "the CPU's steps/s; --device cpu where several runs share one GPU")
    return torch.device("cpu"), "--device auto: no CUDA GPU visible"


# What --device auto rests on: benchmarks/gpu_speed.py on one H200 against its own CPU cores, HalfCheetah-v5,
# steps/s while learning (benchmarks/results/gpu-2026-12-01). Three runs sharing that GPU each ran at a third.
GPU_SPEEDUP = "3.1x (64-64) to 6.7x (400-300)"


def check_memory(cfg: Config, obs_dim: int, action_dim: int) -> None:
    """Refuse a replay buffer and networks larger than this machine's memory (where the operating system
    says how much there is), before numpy or torch fail to allocate them, or the kernel kills the run."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows
        return
    sizes = [obs_dim + action_dim, *cfg.hidden_sizes, 1]  # the critic's layers; the actor's are about as large
    weights = sum((a + 1) * b for a, b in zip(sizes, sizes[1:])) * (3 if cfg.twin_critics else 2)
    # float32: the buffer's s, a, r, s2, terminated; the weights with their targets, gradients and Adam's two moments
    need = 4 * (cfg.buffer_size * (2 * obs_dim + action_dim + 2) + 5 * weights)
    if need > memory:
        raise ConfigError(f"the replay buffer (--buffer-size {cfg.buffer_size:,}) and networks (--hidden-sizes "
                          f"{as_typed(cfg.hidden_sizes)}) need {need / 2 ** 30:,.1f} GiB, more than this machine's "
                          f"{memory / 2 ** 30:,.1f} GiB")


def make_env(env_id: str, env_kwargs: dict = None) -> gym.Env:
    """gym.make, plus the checks DDPG needs: a flat Box observation, a bounded Box action."""
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except gym.error.DependencyNotInstalled as e:  # e.g. a MuJoCo task without the mujoco package
        extra = "mujoco" if preset_for(env_id) == "mujoco" else None
        how = f'pip install "gymnasium[{extra}]=={gym.__version__}"' if extra else str(e).splitlines()[0]
        raise ConfigError(f"cannot make environment {env_id!r}: a package it needs is missing; {how}") from None
    except Exception as e:  # unknown id, missing module, ...
        raise ConfigError(f"cannot make environment {env_id!r}: {str(e).splitlines()[0]}") from None
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, gym.spaces.Box):
        problem = f"{env_id} has a {type(act).__name__} action space; DDPG needs a continuous Box"
    elif len(act.shape) != 1 or not (np.isfinite(act.low).all() and np.isfinite(act.high).all()):
        problem = f"{env_id}: DDPG needs a 1-D action Box with finite bounds, got {act}"
    elif not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        problem = (f"{env_id} has observation space {obs}; this script needs a flat (1-D) Box "
                   "(wrap it, e.g. with gymnasium.wrappers.FlattenObservation)")
    else:
        return ReplayableEnv(env, env_id)
    env.close()
    raise ConfigError(problem)


class ReplayableEnv(gym.Wrapper):
    """The environment as the run sees it. An exception it raises becomes EnvFailed (one line naming it;
    train() saves the run). It records the episode in progress: its reset (the seed, or the generator's state
    before it) and the actions since. model.pt holds the record (run_state) and --resume replays it, so a run stopped
    mid-episode continues exactly, for any environment deterministic given its generator and the actions
    (MuJoCo's, classic control's); the observation the replay ends on is checked against the saved one."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        self.id, self.start, self.actions = env_id, None, []

    def call(self, name, *args, **kwargs):
        try:
            return getattr(self.env, name)(*args, **kwargs)
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            failed = EnvFailed(f"{self.id}'s {name} raised {type(e).__name__}: {(str(e) or '-').splitlines()[0]} "
                               f"(at {Path(where.filename).name}:{where.lineno})")
            failed.env = self
            raise failed from e

    def reset(self, *, seed=None, options=None):
        self.start = seed if seed is not None else self.env.unwrapped.np_random.bit_generator.state
        self.actions = []
        return self.call("reset", seed=seed, options=options)

    def step(self, action):
        result = self.call("step", action)
        self.actions.append(action)
        return result

    def replay(self, episode: dict) -> bool:
        """Rebuild the saved episode; False, with a warning, if the environment ends elsewhere."""
        if isinstance(episode["reset"], dict):
            self.env.unwrapped.np_random = generator_from(episode["reset"])
            obs = self.reset()[0]
        else:
            obs = self.reset(seed=episode["reset"])[0]
        for action in episode["actions"].numpy():
            obs = self.step(action)[0]
        if np.array_equal(obs, episode["obs"].numpy()):
            return True
        warn(f"{self.id} did not replay the episode in progress to the same state (it is not deterministic given "
             "its seed and the actions, or the episode saved in model.pt was changed): the run goes on from a new "
             "episode, no longer exactly")
        return False


def generator_from(state: dict) -> np.random.Generator:
    """A numpy Generator in the saved state (of its bit generator: PCG64 for Gymnasium's)."""
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    return generator


# --- Assembling the run: the checks, the agent, its buffer and update, the folder, signals ---


def setup(cfg: Config, run_dir: Path = None):
    """Everything that can fail on bad input, checked before the first step; with a run_dir (training) also
    plotly, if a report is wanted, and last the folder, so that bad input leaves none behind. Returns env,
    eval_env, agent, the checkpoint read (--load, --resume) or None, and the folder's lock (training only)."""
    check_config(cfg)
    device = resolve_device(cfg.device)[0]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if run_dir is not None and cfg.report:
        load_plotly()
    checkpoint = Path(cfg.resume) / "model.pt" if cfg.resume else cfg.load
    data = load_checkpoint(checkpoint, resume=bool(cfg.resume)) if checkpoint else None
    envs = [make_env(cfg.env, cfg.env_kwargs)]
    try:
        envs.append(make_env(cfg.env, cfg.env_kwargs))  # the evaluation environment
        env = envs[0]
        check_memory(cfg, env.observation_space.shape[0], env.action_space.shape[0])
        torch.manual_seed(cfg.seed)  # network initialisation
        agent = (agent_from_checkpoint(data, checkpoint, env, cfg, device) if data is not None else
                 new_agent(cfg, env.observation_space.shape[0], env.action_space.low, env.action_space.high, device))
        lock = prepare_run_dir(run_dir, resume=bool(cfg.resume)) if run_dir is not None else None
    except ConfigError:
        for e in envs:
            e.close()
        raise
    return envs[0], envs[1], agent, data, lock


def start_run(cfg: Config, quiet: bool = False) -> tuple:
    """Everything train() needs before its first step: the checks and the agent (setup), the Run (--resume:
    restored from model.pt), the probe states, and the run folder with its first record and lines."""
    run_dir = Path(cfg.resume) if cfg.resume else new_run_dir(cfg)
    env, eval_env, agent, data, lock = setup(cfg, run_dir)  # lock: this process alone writes run_dir
    run = new_run(cfg, env, agent, step=data["step"] if data else 0)
    if cfg.resume:
        restore_run(run, data["run"])
        kept = keep_metrics_until(run_dir / "metrics.jsonl", run.step)
    del data  # with --resume it maps the old buffer, now copied
    probes = np.array([eval_env.reset(seed=cfg.seed + PROBE_SEED_OFFSET + i)[0] for i in range(cfg.probe_states)],
                      dtype=np.float32).reshape(cfg.probe_states, env.observation_space.shape[0])  # 0 probes is fine
    probes = torch.as_tensor(probes, device=agent.device)
    folder = RunFolder(run_dir, lock, run, quiet)
    if cfg.resume:  # the last evaluation, for the progress line; one the environment failed in is done again
        last = next((r for r in reversed(kept) if "eval_return" in r), None)
        folder.last_eval_return = last["eval_return"] if last else None
        folder.evaluation_missed = run.step % cfg.eval_every == 0 and (last["step"] if last else 0) < run.step
        folder.log({"step": run.step, "resumed": True, "total_steps": cfg.total_steps})
    else:
        folder.log({"step": run.step, "env": cfg.env, "algorithm": algorithm_name(cfg), "gamma": cfg.gamma,
                    "preset": preset_for(cfg.env), "config": asdict(cfg),
                    "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
                    "probe_states": probes.cpu().tolist()})
    folder.say(f"{'resuming' if cfg.resume else 'training'} {algorithm_name(cfg)} on {cfg.env} "
               f"{f'at step {run.step:,} ' if cfg.resume else ''}"
               f"for {cfg.total_steps:,} steps on {agent.device} ({resolve_device(cfg.device)[1]}); run folder {run_dir}")
    folder.say(settings_line(cfg))
    if cfg.resume and run.step >= cfg.total_steps:
        folder.say(f"the run is at step {run.step:,}, not before --total-steps {cfg.total_steps:,}: it trains no "
                   "further; what model.pt holds is evaluated and saved again (a larger --total-steps extends it)")
    return run, eval_env, probes, folder


def new_run(cfg: Config, env: gym.Env, agent: DDPG, step: int = 0) -> Run:
    """A Run with the buffer and the update for the agent's device, chosen here alone (as LeanRL wraps its
    update in one place): on a GPU the GPU path's, else Part A's ReplayBuffer and sample_and_update."""
    sampler = torch.Generator().manual_seed(cfg.seed)  # minibatch indices (and E10's noise) on the CPU path
    dims = env.observation_space.shape[0], env.action_space.shape[0], cfg.buffer_size
    if agent.device.type == "cuda":  # the draw and E10's noise from the device's generator, which a graph replays
        buffer = DeviceReplayBuffer(*dims, agent.device)
        update = GraphedUpdate(functools.partial(sample_and_update, agent, buffer, cfg, None), agent)
    else:
        buffer = ReplayBuffer(*dims)
        update = functools.partial(sample_and_update, agent, buffer, cfg, sampler)
    return Run(cfg, env, agent, buffer, update, sampler, step)


def algorithm_name(cfg: Config) -> str:
    """"DDPG", "TD3", or DDPG with the TD3 switches that are on, for the first lines and the report."""
    switches = [name for name, on in (("twin critics", cfg.twin_critics), ("target smoothing", cfg.target_noise > 0),
                                      ("policy delay", cfg.policy_delay > 1)) if on]
    if len(switches) == 3 and all(getattr(cfg, k) == v for k, v in TD3.items()):
        return "TD3"
    return " + ".join(["DDPG"] + switches)


@contextlib.contextmanager
def stop_on_signals(run: Run):
    """Ctrl-C (SIGINT), SIGTERM (kill, docker stop, a cluster's preemption) and SIGHUP (a closed
    terminal) ask the run to stop: it ends the step it is in, saves model.pt and the report, and
    exits with 128 + the signal's number. The handler only sets a flag, so a signal never lands in
    the middle of an update or a write, and a second one during the save changes nothing."""
    def handler(signum, frame):
        run.stop_signal = run.stop_signal or signum

    # Only the main thread may set handlers. A signal that is ignored stays ignored: `nohup` ignores SIGHUP,
    # and a shell's background jobs SIGINT, so that closing the terminal or Ctrl-C elsewhere does not stop them.
    main_thread = threading.current_thread() is threading.main_thread()
    stop_signals = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, handler) for sig in stop_signals
                if main_thread and signal.getsignal(sig) != signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- The run folder: its lock, metrics.jsonl, the progress lines, checkpoints and report ---


def new_run_dir(cfg: Config) -> Path:
    if cfg.out:
        return Path(cfg.out)
    name = f"{cfg.env.replace(':', '-').replace('/', '-')}__seed{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path("runs") / name, 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{name}-{n}"
    return path


def prepare_run_dir(path: Path, resume: bool = False):
    """Make the folder, lock it and prove it writable now, not after twenty minutes of training. One
    writer per run folder: the returned file holds an exclusive lock on path/.lock until it is closed. The
    lock is the operating system's (flock), so it dies with the process: a kill -9 leaves nothing stale,
    and a second process started on the folder stops before it touches anything."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / ".lock", "a+")
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")  # for the message below: who holds it
        lock.flush()
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip()
        lock.close()
        raise ConfigError(f"{path} is in use by another process{f' (pid {holder})' if holder else ''}: one "
                          "process writes a run folder at a time; wait for it to end, or choose another --out") from None
    except (OSError, AttributeError) as e:  # a file system without locks, or no fcntl (Windows)
        warn(f"cannot lock {path} ({getattr(e, 'strerror', None) or 'no file locks here'}); "
             "make sure no other process writes to it")
    if (path / "metrics.jsonl").exists() and not resume:  # checked under the lock: two new runs cannot both pass
        lock.close()
        raise ConfigError(f"{path} already holds a run (metrics.jsonl); choose another --out, "
                          f"or continue it with --resume {path}")
    return lock


class RunFolder:
    """What a run writes and prints: metrics.jsonl (line-buffered, so a killed run keeps its lines),
    model.pt and best.pt, report.html, and the progress lines. Holds the folder's lock (prepare_run_dir)
    until close()."""

    def __init__(self, run_dir: Path, lock, run: Run, quiet: bool = False):
        self.dir, self.lock, self.run, self.cfg, self.quiet = run_dir, lock, run, run.cfg, quiet
        self.metrics = open(run_dir / "metrics.jsonl", "a", buffering=1)
        self.start = time.perf_counter() - run.elapsed
        self.last_log_time, self.last_log_step = time.perf_counter(), run.step
        self.first_step = run.step
        self.last_eval_return, self.evaluation_missed = None, False  # on --resume start_run sets them

    def log(self, record: dict) -> None:
        """One line of metrics.jsonl, strict JSON: check_finite has stopped the run before any NaN gets here."""
        self.last_eval_return = record.get("eval_return", self.last_eval_return)  # for the progress line
        try:
            self.metrics.write(json.dumps({**record, "time": round(time.perf_counter() - self.start, 4)},
                                          allow_nan=False) + "\n")
        except OSError as e:  # a full disk: stop, rather than train on with a log full of holes
            raise RunStopped(f"cannot write {self.dir / 'metrics.jsonl'} at step {self.run.step:,} "
                             f"({e.strerror or e}); model.pt holds the run up to its last checkpoint: fix that, "
                             f"then --resume {self.dir}") from None

    def say(self, *parts) -> None:
        """print, flushed (so `| tee log` shows it live), unless quiet; harmless if the reader went away."""
        if self.quiet:
            return
        try:
            print(*parts, flush=True)
        except BrokenPipeError:  # e.g. `python ddpg.py | head`: keep training, stop printing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def log_progress(self) -> None:
        """Every --log-every steps: the latest update's numbers (read from the device here, once, and
        checked to be finite) into metrics.jsonl, and one printed line with the speed and time left."""
        run, cfg, now = self.run, self.cfg, time.perf_counter()
        sps = (run.step - self.last_log_step) / max(now - self.last_log_time, 1e-9)
        self.last_log_time, self.last_log_step = now, run.step
        if run.numbers:
            numbers = dict(zip(run.numbers, torch.stack(list(run.numbers.values())).tolist()))
            check_finite(run.step, numbers, run.update_cause)
            self.log({"step": run.step, **numbers, "action_at_bound": saturation(run.agent, run.last_s),
                      "updates": run.updates, "sps": round(sps, 1)})
        left = int((cfg.total_steps - run.step) / max(sps, 1e-9))  # at the current (learning) speed
        recent = f"{np.mean(run.recent_returns):8.1f}" if run.recent_returns else f"{'-':>8}"
        evaluated = f"{self.last_eval_return:8.1f}" if self.last_eval_return is not None else f"{'-':>8}"
        self.say(f"step {run.step:>9,}/{cfg.total_steps:,} | {sps:6.0f} steps/s | return (last 10 episodes) "
                 f"{recent} | last eval {evaluated} | {f'{left // 60}:{left % 60:02d}' if run.numbers else '--:--'}"
                 " left")

    def save(self, name: str, **extra) -> bool:
        """A checkpoint (best.pt, model.pt) in the folder; a failed write is a warning, and training goes on."""
        try:
            save_checkpoint(self.dir / name, self.run.agent, self.cfg, self.run.step, self.run.env, **extra)
            return True
        except OSError as e:  # e.g. a full disk: the previous file is intact
            warn(f"could not write {self.dir / name} at step {self.run.step:,} ({e.strerror or e}); "
                 "the previous one is intact")
            return False

    def checkpoint(self) -> bool:
        """model.pt with the whole run (for --resume), then the report."""
        self.run.elapsed = time.perf_counter() - self.start
        saved = self.save("model.pt", run=run_state(self.run))
        self.report()
        return saved

    def env_failed(self, e: "EnvFailed") -> "RunStopped":
        """Save the run as a signal does, up to the last step that completed, so that --resume (once the
        environment is fixed) takes the failed step again, exactly; the one line that ends it. A new run that
        failed in its first step leaves nothing behind."""
        run, training = self.run, e.env is self.run.env
        when = f"step {run.step + 1:,}" if training else f"step {run.step:,}, evaluating"
        if training and run.obs is not None:  # env.step raised: its draws of noise are undone
            run.rng.bit_generator.state, run.noise_x = run.before
        if run.step == self.first_step and not self.cfg.resume:
            self.close()
            for name in ("metrics.jsonl", ".lock"):
                (self.dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.dir.rmdir()  # if that left it empty
            return RunStopped(f"{when}: {e}; nothing was trained, and nothing is left in {self.dir}: fix that, "
                              "then run the same command again")
        saved = self.checkpoint()
        then = (f"fix the environment, then --resume {self.dir}" if saved else
                "and model.pt could not be written (see above)")
        return RunStopped(f"{when}: {e}; the run is saved up to step {run.step:,}: {then}")

    def report(self) -> None:
        try:
            if self.cfg.report:
                write_report([self.dir], self.dir / "report.html")
        except ConfigError as e:  # a page that cannot be written is not worth the run: say so, train on
            warn(f"{e} at step {self.run.step:,}; training goes on")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # after a failed write, closing fails again: said already
            self.metrics.close()
        self.lock.close()

    def finish(self, last_eval, saved: bool) -> dict:
        """The closing lines, and what train() returns."""
        run, cfg = self.run, self.cfg
        if run.stop_signal:
            self.say(f"stopped at step {run.step:,}; " + (f"continue with: python ddpg.py --resume {self.dir}"
                                                           if saved else "model.pt could not be written (see above)"))
        else:
            self.say(f"final evaluation: mean return {last_eval['eval_return']:.1f} over {cfg.eval_episodes} "
                     f"episodes at step {run.step:,}")
        if run.best:
            self.say(f"best evaluation: mean return {run.best[0]:.1f} at step {run.best[1]:,} (best.pt)")
        self.say(f"run folder: {self.dir}  (metrics.jsonl, model.pt, best.pt{', report.html' if cfg.report else ''})")
        return {"agent": run.agent, "buffer": run.buffer, "run_dir": self.dir, "steps": run.step,
                "signal": run.stop_signal, "saved": saved, "best": run.best,
                "final_eval_return": last_eval and last_eval["eval_return"],
                "final_eval_returns": last_eval and last_eval["eval_returns"]}


def saturation(agent: DDPG, s: torch.Tensor) -> float:
    """The share of mu(s)'s components, over the minibatch states s, within 1% of the action range
    from a bound. tanh is flat there: the actor's gradient vanishes, and it can hardly come back."""
    with torch.inference_mode():
        a = agent.actor(s)
    near = torch.minimum(a - agent.action_low, agent.action_high - a)
    return round((near < 0.01 * (agent.action_high - agent.action_low)).float().mean().item(), 4)


def warn(message: str) -> None:
    print(f"ddpg.py: warning: {message}", file=sys.stderr, flush=True)


@functools.cache  # a file that is read twice (--resume reads model.pt for its settings, then the run) warns once
def warn_once(message: str) -> None:
    warn(message)


def settings_line(cfg: Config) -> str:
    preset = preset_for(cfg.env)
    return (f"settings ({f'{preset} preset' if preset else 'defaults'}, then flags): "
            f"hidden {' '.join(map(str, cfg.hidden_sizes))} | batch {cfg.batch_size} | "
            f"lr actor {cfg.actor_lr:g} critic {cfg.critic_lr:g} | gamma {cfg.gamma} | tau {cfg.tau} | "
            f"noise {cfg.noise} {cfg.noise_std:g} | random steps {cfg.learning_starts:,} | "
            f"eval every {cfg.eval_every:,} | threads {cfg.threads}"
            + (f" | twin critics {cfg.twin_critics} | target noise {cfg.target_noise:g} clip {cfg.target_noise_clip:g}"
               f" | policy delay {cfg.policy_delay}" if algorithm_name(cfg) != "DDPG" else "")
            + (f" | env kwargs {cfg.env_kwargs}" if cfg.env_kwargs else ""))


def write_atomically(path: Path, write, sync: bool = False) -> None:
    """write(f) into a temporary file beside `path`, then rename it over `path`: a kill or a full disk
    during the write leaves the previous file as it was, and a reader never sees half a file. With
    sync, the bytes are on disk before the rename, so a power cut cannot leave an empty file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def metrics_lines(path: Path):
    """(line number, line, record) for each line of a metrics.jsonl; record is None for a line that is
    not a JSON object with a numeric "step" (DAMAGED says so)."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            ok = isinstance(record, dict) and isinstance(record.get("step"), (int, float))
            yield n, line, record if ok else None


DAMAGED = "not a JSON object with a numeric 'step'"


def read_metrics(run_dir) -> tuple:
    """The records of run_dir/metrics.jsonl, and a message for each line that is not one."""
    path = Path(run_dir) / "metrics.jsonl"
    records, problems = [], []
    for n, _, record in metrics_lines(path):
        if record is None:
            problems.append(f"{path}:{n}: {DAMAGED}; skipped")
        else:
            records.append(record)
    return records, problems


def keep_metrics_until(path: Path, step: int) -> list:
    """On --resume, drop what a killed process logged after its last checkpoint: the
    resumed run logs those steps again. A damaged line is named and kept as it is.
    Returns the records kept."""
    lines, kept, records = [], [], []
    for n, line, record in (metrics_lines(path) if path.exists() else []):
        lines.append(line)
        if not line.endswith("\n"):  # an unfinished last line: a write the kill cut short
            continue
        if record is None:
            warn(f"{path}:{n}: {DAMAGED}; kept as it is")
        if record is None or record["step"] <= step:
            kept.append(line)
            records += [record] if record else []
    if kept != lines:
        write_atomically(path, lambda f: f.write("".join(kept).encode()))
    return records


# --- Checkpoints: written atomically, loaded with weights_only=True (no code is unpickled) ---
# Two kinds, one format: best.pt (what --load, --eval-only and --export read) holds the networks, targets,
# optimizers, config and step; model.pt adds a "run" part, run_state(), for --resume.


CHECKPOINT_FORMAT = "ddpg.py checkpoint 1"
CHECKPOINT_KEYS = {"config", "step", "obs_dim", "action_low", "action_high", "actor", "critic", "actor_target",
                   "critic_target", "actor_optimizer", "critic_optimizer"}


def save_checkpoint(path: Path, agent: DDPG, cfg: Config, step: int, env: gym.Env, **extra) -> None:
    """Write a checkpoint atomically (write_atomically, synced to disk). Weights that are not
    finite are never written: the previous checkpoint stays the last good one."""
    check_weights(agent, cfg, step)
    data = {"format": CHECKPOINT_FORMAT, "config": asdict(cfg), "step": step, "obs_dim": env.observation_space.shape[0],
            "action_low": env.action_space.low.tolist(), "action_high": env.action_space.high.tolist(),
            **agent.state_dict(), **extra}
    data["checksum"] = checksum(data)  # every reader checks it (load_checkpoint)
    write_atomically(path, lambda f: torch.save(data, f), sync=True)


def run_state(run: Run) -> dict:
    """model.pt's "run" part: all of the Run beyond the agent. The buffer is stored up to its size (whole
    once full); the episode in progress as the environment's record of it (ReplayableEnv), to be replayed."""
    env = run.env
    episode = {"reset": env.start, "actions": torch.as_tensor(np.array(env.actions, np.float32)),
               "obs": torch.as_tensor(run.obs), "return": run.episode_return, "length": run.episode_length
               } if run.obs is not None and isinstance(env, ReplayableEnv) else None  # make_env's environments are
    return {**run.buffer.state_dict(), "rng": run.rng.bit_generator.state, "sampler": run.sampler.get_state(),
            "reset_seed": run.reset_seed,
            "env_rng": None if run.reset_seed is not None else env.unwrapped.np_random.bit_generator.state,
            "noise_x": run.noise_x.tolist(), "updates": run.updates, "recent_returns": run.recent_returns,
            "best": run.best, "elapsed": run.elapsed, "episode": episode,
            "numbers": {k: float(v) for k, v in run.numbers.items()}}


def restore_run(run: Run, state: dict) -> None:
    """--resume: put back what run_state saved, the episode in progress included: the environment replays
    it. Where it cannot (or model.pt is older than that), the run goes on with a new episode."""
    run.buffer.load_state_dict(state)
    run.rng.bit_generator.state = state["rng"]
    run.sampler.set_state(state["sampler"])
    run.reset_seed, run.noise_x = state["reset_seed"], np.array(state["noise_x"])
    run.updates, run.recent_returns = state["updates"], list(state["recent_returns"])
    run.best, run.elapsed = (tuple(state["best"]) if state["best"] else None), state["elapsed"]
    run.numbers = {k: torch.tensor(v, device=run.agent.device) for k, v in state.get("numbers", {}).items()}
    episode = state.get("episode")
    if episode and isinstance(run.env, ReplayableEnv) and run.env.replay(episode):
        run.obs, run.episode_return, run.episode_length = episode["obs"].numpy(), episode["return"], episode["length"]
    elif state["env_rng"] is not None:  # a new episode: the generator its reset draws from
        run.env.unwrapped.np_random = generator_from(state["env_rng"])


def load_checkpoint(path, resume: bool = False) -> dict:
    """Read a checkpoint and check it before anything uses it: against the checksum it was saved with, then
    field by field (check_fields). With resume=True it must also hold a run (model.pt)."""
    if Path(path).is_dir():
        raise ConfigError(f"--load wants a file such as {Path(path) / 'model.pt'}, got a folder")
    try:  # mmap: tensors are read from the file as they are used (by the checksum first), not copied
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint not found: {path}") from None
    except Exception as e:
        raise ConfigError(f"cannot read checkpoint {path}: corrupt or not a ddpg.py checkpoint "
                          f"({type(e).__name__})") from None
    try:
        damaged = isinstance(data, dict) and "checksum" in data and data["checksum"] != checksum(data)
    except Exception:  # a value the walk cannot read
        damaged = True
    if damaged:
        raise ConfigError(f"{path} is damaged: what it holds does not match the checksum it was saved with "
                          "(a failing disk or an interrupted copy); it is left as it is")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a ddpg.py checkpoint")
    if "checksum" not in data:
        warn_once(f"{path} was saved before checkpoints held a checksum, so it could not be verified")
    missing = CHECKPOINT_KEYS - set(data) or isinstance(data["config"], dict) and {"env", "hidden_sizes"} - set(
        data["config"])
    if missing:
        raise ConfigError(f"{path} is incomplete: it lacks {', '.join(sorted(missing))}")
    if resume and "run" not in data:
        raise ConfigError(f"{path} holds a policy only, not a run to resume; pass --load {path} to start "
                          "a new run from it")
    check_fields(data, path, resume)
    return data


def checksum(data: dict) -> str:
    """sha256 of all that a checkpoint holds but its "checksum", in the order a walk meets it: each tensor's
    dtype, shape and bytes, every other value's type and repr (exact for floats). About 0.13 s for a full
    10^6-transition buffer here (benchmarks/README: what checkpointing costs)."""
    digest = hashlib.sha256()

    def walk(value):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, (dict, list, tuple)):
            digest.update(b"{" if isinstance(value, dict) else b"[")
            for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
                digest.update(f"{key!r}:".encode())
                walk(item)
            digest.update(b"}")
        else:
            digest.update(f"{type(value).__name__} {value!r};".encode())

    walk({key: value for key, value in data.items() if key != "checksum"})
    return digest.hexdigest()


def check_fields(data: dict, path, resume: bool) -> None:
    """Every field a reader uses, checked before the first step: a checkpoint edited by hand, or written by
    something else, is refused in one line naming the field, not by a traceback halfway through a run."""
    def integer(x, low=0):
        return isinstance(x, int) and not isinstance(x, bool) and x >= low

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def array(x, shape, dtype=torch.float32):  # a finite tensor of that shape (None: any length)
        return (isinstance(x, torch.Tensor) and (dtype is None or x.dtype == dtype) and x.dim() == len(shape)
                and all(want is None or n == want for n, want in zip(x.shape, shape)) and torch.isfinite(x).all())

    def typed(value, kind):  # a config value of its Config field's type
        if kind is tuple:
            return isinstance(value, (list, tuple)) and all(integer(v, 1) for v in value)
        return number(value) if kind is float else integer(value, -2 ** 63) if kind is int else isinstance(value, kind)

    def accepted(setter, state):  # a random stream's saved state, as its generator takes it
        with contextlib.suppress(Exception):
            setter(state)
            return True
        return False

    def check(name, test, want):
        try:
            ok = bool(test())
        except Exception:  # a value of the wrong type
            ok = False
        if not ok:
            raise ConfigError(f"{path}: its {name} is not {want}; a ddpg.py checkpoint edited by hand, or written by "
                              "something else, cannot be used")

    config, low, high = data["config"], data["action_low"], data["action_high"]
    kinds = {f.name: f.type for f in fields(Config)}
    check("config", lambda: isinstance(config, dict), "a dict of settings")
    for name in (name for name in config if name in kinds):
        check(f"config's {name}", lambda: typed(config[name], kinds[name]), f"a {kinds[name].__name__}")
    try:  # and values that a run could have been started with
        check_config(Config(**{name: value for name, value in config.items() if name in kinds}))
    except ConfigError as e:
        raise ConfigError(f"{path}: its config cannot be a run's: {e}") from None
    check("step", lambda: integer(data["step"]), "a count of steps (an integer >= 0)")
    check("obs_dim", lambda: integer(data["obs_dim"], 1), "a positive integer")
    check("action bounds", lambda: isinstance(low, list) and isinstance(high, list) and 0 < len(low) == len(high)
          and all(number(a) and number(b) and a <= b for a, b in zip(low, high)), "two lists of finite low <= high")
    for name in DDPG.NETWORKS:  # a NaN weight is not a policy: stop here, not after acting with it
        for key, tensor in data.get(name, {}).items() if isinstance(data.get(name), dict) else ():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ConfigError(f"{path} is not a usable policy: {name}.{key} holds NaN or infinite values "
                                  "(an earlier checkpoint, such as the run's best.pt, may be sound)")
    for name in ("actor_optimizer", "critic_optimizer"):
        check(f"{name}'s state", lambda: all(torch.isfinite(t).all() for t in tensors(data[name])
                                              if t.is_floating_point()), "finite (it holds NaN or infinities)")
    if not resume:
        return
    run, obs_dim, n_act = data["run"], data["obs_dim"], len(low)
    capacity = config.get("buffer_size", Config.buffer_size)
    check("run", lambda: isinstance(run, dict) and isinstance(run.get("buffer"), dict), "a dict with a buffer")
    buffer, episode = run["buffer"], run.get("episode")
    n = len(buffer["r"]) if isinstance(buffer.get("r"), torch.Tensor) else -1
    check("run's buffer", lambda: set(buffer) == set(ReplayBuffer.FIELDS) and 0 <= n <= capacity
          and all(len(column) == n for column in buffer.values()), "five arrays s, a, r, s2, terminated of one "
          "length, at most --buffer-size")
    for name, width in zip(ReplayBuffer.FIELDS, (obs_dim, n_act, 0, obs_dim, 0)):
        check(f"run's buffer {name}", lambda: array(buffer[name], (n, width) if width else (n,)),
              "a finite float32 array of one row per transition")
    check("run's buffer_pos", lambda: integer(run["buffer_pos"]) and (run["buffer_pos"] == n if n < capacity
                                                                     else run["buffer_pos"] < capacity),
          "where the buffer writes next")
    check("run's rng", lambda: accepted(lambda state: setattr(np.random.PCG64(), "state", state), run["rng"]),
          "the state of numpy's generator")
    check("run's sampler", lambda: accepted(torch.Generator().set_state, run["sampler"]),
          "the state of torch's generator")
    check("run's reset_seed", lambda: run["reset_seed"] is None or integer(run["reset_seed"]), "a seed or None")
    check("run's env_rng", lambda: run["env_rng"] is None or accepted(generator_from, run["env_rng"]),
          "the state of the environment's generator, or None")
    check("run's noise_x", lambda: len(run["noise_x"]) == n_act and all(map(number, run["noise_x"])),
          "one finite number per action dimension")
    check("run's updates", lambda: integer(run["updates"]), "a count (an integer >= 0)")
    check("run's recent_returns", lambda: len(run["recent_returns"]) <= 10 and all(map(number, run["recent_returns"])),
          "at most 10 finite returns")
    check("run's best", lambda: run["best"] is None or len(run["best"]) == 2 and number(run["best"][0])
          and integer(run["best"][1]), "None or (return, step)")
    check("run's elapsed", lambda: number(run["elapsed"]) and run["elapsed"] >= 0, "seconds (a number >= 0)")
    check("run's numbers", lambda: all(isinstance(k, str) and number(v) for k, v in run.get("numbers", {}).items()),
          "finite numbers by name")
    check("run's episode", lambda: episode is None or (
        (integer(episode["reset"]) or accepted(generator_from, episode["reset"]))
        and array(episode["actions"], (None, n_act)) and array(episode["obs"], (obs_dim,), None)
        and number(episode["return"]) and integer(episode["length"]) and episode["length"] == len(episode["actions"])),
        "the episode in progress: its reset, as many actions as its length, the observation it ends on")


def tensors(value):
    """Every tensor inside nested dicts and lists (a state dict, an optimizer's state)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (dict, list, tuple)):
        for item in (value.values() if isinstance(value, dict) else value):
            yield from tensors(item)


def load_defaults(checkpoint, given: dict) -> dict:
    """--load: the checkpoint's env (and its make-arguments), seed, network sizes, learning rates, evaluation
    episodes and TD3 switches, as defaults. So `--load RUN/best.pt --eval-only` reproduces the return best.pt
    was saved with, and a run started from a checkpoint learns at its rates unless told otherwise. Its
    networks are what they are: a --hidden-sizes that says otherwise is refused (the settings a run writes
    must describe its networks, or --resume, --eval-only and --export of it fail)."""
    saved = load_checkpoint(checkpoint)["config"]
    if "hidden_sizes" in given and tuple(given["hidden_sizes"]) != tuple(saved["hidden_sizes"]):
        raise ConfigError(f"{checkpoint} holds {as_typed(saved['hidden_sizes'])} networks, and --hidden-sizes "
                          f"{as_typed(given['hidden_sizes'])} cannot change them: drop --hidden-sizes, or train "
                          "new networks without --load")
    names = ("env", "env_kwargs", "seed", "hidden_sizes", "actor_lr", "critic_lr", "eval_episodes", *TD3)
    return {name: saved[name] for name in names if name in saved}


def new_agent(cfg: Config, obs_dim: int, action_low, action_high, device, hidden_sizes=None) -> DDPG:
    return DDPG(obs_dim, action_low, action_high, hidden_sizes or cfg.hidden_sizes, cfg.actor_lr, cfg.critic_lr,
                device, cfg.twin_critics, cfg.target_noise, cfg.target_noise_clip)


def load_weights(module, data: dict, path) -> None:
    """Load `module`'s state (a DDPG, or an Actor) from a checkpoint's `data`, or say in one line that
    the checkpoint does not fit it."""
    try:
        module.load_state_dict({k: data[k] for k in module.state_dict()})
        optimizers = (module.actor_optimizer, module.critic_optimizer) if isinstance(module, DDPG) else ()
        for optimizer in optimizers:  # Adam's moments must fit their weights
            for p in (p for group in optimizer.param_groups for p in group["params"]):
                if any(moment.shape != p.shape for moment in optimizer.state.get(p, {}).values() if moment.dim()):
                    raise ValueError("its optimizers' state does not fit the networks' shapes")
    except Exception as e:  # a missing key, a wrong shape, a value of the wrong type
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        reason = next((line for line in lines if not line.endswith(":")), lines[0])  # torch's first line is a heading
        raise ConfigError(f"{path} does not match the networks it describes: {reason}") from None


def agent_from_checkpoint(data: dict, path, env: gym.Env, cfg: Config, device) -> DDPG:
    """Rebuild the agent the checkpoint describes, after checking it fits this environment."""
    trained_on = data["config"]["env"]
    fits = (data["obs_dim"] == env.observation_space.shape[0]
            and np.allclose(data["action_low"], env.action_space.low)
            and np.allclose(data["action_high"], env.action_space.high))
    if not fits:
        raise ConfigError(f"{path} was trained on {trained_on}, whose spaces differ from {cfg.env}'s; "
                          f"pass --env {trained_on}")
    agent = new_agent(cfg, data["obs_dim"], data["action_low"], data["action_high"], device,
                      hidden_sizes=data["config"]["hidden_sizes"])
    if cfg.twin_critics and "critic2" not in data:
        raise ConfigError(f"{path} holds one critic; --twin-critics needs a checkpoint saved with two")
    load_weights(agent, data, path)  # the optimizers' state comes back too (Adam's moments), but the learning
    # rates are cfg's: the run's own on --resume, the checkpoint's on --load unless a flag says otherwise.
    for optimizer, lr in ((agent.actor_optimizer, cfg.actor_lr), (agent.critic_optimizer, cfg.critic_lr)):
        for group in optimizer.param_groups:  # a GPU run's graph left capturable on; GraphedUpdate decides again
            group.update(lr=lr, capturable=False)
    return agent


def resume_config(run_dir, **changes) -> Config:
    """The Config of the run in run_dir, for --resume: `changes` may only be to what a run may change."""
    resumable = ("total_steps", "threads", "device", "report")  # the rest is the run's
    fixed = [f"--{name.replace('_', '-')}" for name in changes if name not in resumable]
    if fixed:
        raise ConfigError(f"--resume continues a run with its own settings; {', '.join(fixed)} cannot change "
                          "(only --total-steps, --threads, --device and --no-report can)")
    if Path(run_dir).is_file():
        raise ConfigError(f"--resume wants a run folder, got the file {run_dir}: pass --resume {Path(run_dir).parent}")
    data = load_checkpoint(Path(run_dir) / "model.pt", resume=True)
    saved = {f.name: data["config"][f.name] for f in fields(Config) if f.name in data["config"]}
    return Config(**{**saved, **changes, "resume": str(run_dir), "out": str(run_dir), "load": ""})


def export_policy(checkpoint: str, path: str) -> Path:
    """--export: the actor of a checkpoint, action scaling included, as a torch.export program:
    torch.export.load(path).module() maps a (batch, obs_dim) float32 tensor to actions in the
    environment's bounds, with no ddpg.py (nor gymnasium) needed to run it."""
    data = load_checkpoint(checkpoint)
    actor = Actor(data["obs_dim"], data["action_low"], data["action_high"], data["config"]["hidden_sizes"])
    load_weights(actor, data["actor"], checkpoint)
    example = torch.zeros(2, data["obs_dim"])  # any batch size works: the first dimension is dynamic
    program = torch.export.export(actor.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = Path(path)
    try:
        write_atomically(path, lambda f: torch.export.save(program, f))
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return path


# --- The GPU path (--device cuda): replay buffer in device memory, the update in a CUDA graph ---
# An update of small networks is about a hundred tiny kernels, which launched one by one from Python leave
# the GPU idle: the whole update (draw, E6-E11, Adam, E3) is recorded once as a CUDA graph, replayed as one.


class DeviceReplayBuffer:
    """E4 on the GPU (new_run): each transition one row of one device tensor, a minibatch drawn and gathered there.
    Its add, sample and state_dict are the CPU ReplayBuffer's: model.pt holds the same from either."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, device):
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.widths = [obs_dim, action_dim, 1, obs_dim, 1]  # s, a, r, s2, terminated
        self.data = torch.zeros(capacity, sum(self.widths), device=device)
        self.filled = torch.zeros((), dtype=torch.float64, device=device)  # self.size, where the graph reads it

    def add(self, s, a, r, s2, terminated) -> None:
        row = np.concatenate([np.ravel(s), np.ravel(a), [r], np.ravel(s2), [terminated]]).astype(np.float32)
        self.data[self.pos].copy_(torch.from_numpy(row))  # one host-to-device copy per step
        self.pos = (self.pos + 1) % self.capacity
        if self.size < self.capacity:
            self.size += 1
            self.filled.fill_(self.size)  # a device-side write: no wait

    def sample(self, batch_size: int, generator: torch.Generator = None) -> Batch:
        """Uniform indices from the device's default generator, which a CUDA graph can replay (not `generator`)."""
        idx = (torch.rand(batch_size, dtype=torch.float64, device=self.data.device) * self.filled).long()
        s, a, r, s2, terminated = self.data[idx].split(self.widths, dim=1)
        return Batch(s, a, r.squeeze(1), s2, terminated.squeeze(1))

    def state_dict(self) -> dict:
        parts = [part.contiguous() for part in self.data[:self.size].cpu().split(self.widths, dim=1)]
        parts[2], parts[4] = parts[2].squeeze(1), parts[4].squeeze(1)
        return {"buffer": dict(zip(ReplayBuffer.FIELDS, parts)), "buffer_pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        b, n = state["buffer"], len(state["buffer"]["r"])
        self.data[:n] = torch.cat([b["s"], b["a"], b["r"][:, None], b["s2"], b["terminated"][:, None]], 1).to(self.data)
        self.size, self.pos = n, state["buffer_pos"]
        self.filled.fill_(n)


class GraphedUpdate:
    """update(step_actor) (sample_and_update) captured in a CUDA graph on first use, one with the actor step
    and one without (--policy-delay), and replayed after: the update does not know. The first WARMUP calls
    of each kind run eagerly on a side stream (cuBLAS and autograd set up lazily, which a capture must not
    see). A replay overwrites the returned tensors in place. Off a GPU, or if a capture fails: eager calls."""

    WARMUP = 3

    def __init__(self, update, agent: DDPG):
        self.eager, self.agent = update, agent  # eager: the update itself, launched from Python
        self.capture = agent.device.type == "cuda"
        self.graphs, self.outputs, self.calls = {}, {}, {True: 0, False: 0}

    def capturable(self, on: bool) -> None:
        """Adam may step inside a CUDA graph only when told so; fused Adam keeps its step count on
        the GPU already, so the flag can change once warm-up is done (and must be off on a CPU)."""
        for optimizer in (self.agent.actor_optimizer, self.agent.critic_optimizer):
            for group in optimizer.param_groups:
                group["capturable"] = on

    def __call__(self, step_actor: bool) -> tuple:
        if step_actor in self.graphs:
            self.graphs[step_actor].replay()
            return self.outputs[step_actor]
        if not self.capture:
            return self.eager(step_actor)
        self.calls[step_actor] += 1
        if self.calls[step_actor] <= self.WARMUP:
            self.capturable(False)  # (a graph already captured keeps what it recorded)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.eager(step_actor)
            torch.cuda.current_stream().wait_stream(side)
            return out
        try:
            self.capturable(True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.eager(step_actor)  # recorded, not run
        except Exception as e:  # an old driver, an op that cannot be captured: go on without the graph
            warn(f"capturing the update in a CUDA graph failed ({type(e).__name__}: {str(e).splitlines()[0][:120]});"
                 " the GPU path goes on without one, slower")
            self.capture = False
            self.capturable(False)
            return self.eager(step_actor)
        self.graphs[step_actor], self.outputs[step_actor] = graph, out
        graph.replay()  # this call's update
        return out


# --- Diagnostics (Plotly): report.html ---------------------------------------------------


def load_plotly():
    """Import plotly only when a report is written (training checks this before it starts)."""
    try:
        import plotly.io  # the slow part of importing plotly, done once, before training
    except ImportError:
        raise ConfigError("writing report.html needs plotly (pip install -r requirements.txt); "
                          "or pass --no-report") from None
    return plotly


def series(records, key):
    """(steps, values) of the records that have `key`, as arrays."""
    rows = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return np.array([s for s, _ in rows], dtype=float), np.array([v for _, v in rows], dtype=float)


def mean_band(curves):
    """One curve: itself. Several: mean, min and max across them, on the steps they all cover
    (each interpolated onto the union of their steps: episodes end at different steps)."""
    curves = [(x, y) for x, y in curves if len(x)]
    if len(curves) <= 1:
        return (*(curves[0] if curves else (np.array([]), np.array([]))), None, None)
    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def line(name, curves, color, axis="", mode="lines", width=2, dash="solid"):
    """Plotly trace dicts: the mean line and, for several runs, a min-max band under it."""
    x, y, low, high = mean_band(curves)
    axes = {"xaxis": "x" + axis, "yaxis": "y" + axis}
    band = [] if low is None else [
        {"type": "scatter", "x": x.tolist(), "y": low.tolist(), "mode": "lines", **axes,
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip", "legendgroup": name},
        {"type": "scatter", "x": x.tolist(), "y": high.tolist(), "mode": "lines", **axes, "fill": "tonexty",
         "fillcolor": color + "33", "line": {"width": 0}, "name": name + " (min-max)", "legendgroup": name,
         "hoverinfo": "skip"}]
    return band + [{"type": "scatter", "x": x.tolist(), "y": y.tolist(), "mode": mode, "name": name, **axes,
                    "line": {"color": color, "width": width, "dash": dash}, "marker": {"color": color, "size": 7},
                    "legendgroup": name}]


def figure(traces, title, xtitle="environment steps", ytitle="", **layout):
    return {"data": traces, "layout": {"title": {"text": title}, "height": 420, "margin": {"t": 60, "b": 50},
                                      "xaxis": {"title": {"text": xtitle}}, "yaxis": {"title": {"text": ytitle}},
                                      "legend": {"orientation": "h", "y": -0.2}, **layout}}


def group_by_settings(runs) -> list:
    """[(label, runs)]: the runs with the same settings (all but seed, budget and where they ran)
    in one group, labelled by what differs between groups (the TD3 switches by their name)."""
    def settings(records):
        config = next((r["config"] for r in records if isinstance(r.get("config"), dict)), {})
        return {k: v for k, v in {**defaults, **config}.items() if k not in run_only}  # older runs lack newer keys
    defaults = asdict(Config())
    run_only = ("seed", "total_steps", "threads", "device", "out", "load", "resume", "eval_only", "report")
    groups = {}
    for name, records in runs:
        groups.setdefault(json.dumps(settings(records), sort_keys=True), []).append((name, records))
    configs = [json.loads(key) for key in groups]
    differ = [k for k in sorted(set().union(*configs)) if len({json.dumps(c.get(k)) for c in configs}) > 1]

    def label(config):
        parts = [f"{k} {as_typed(v)}" for k, v in config.items() if k in differ and k not in TD3]
        if any(k in TD3 for k in differ):
            known = {f.name for f in fields(Config)}
            parts.insert(0, algorithm_name(Config(**{k: v for k, v in config.items() if k in known})))
        return ", ".join(parts) or "runs"
    return [(label(c), members) for c, members in zip(configs, groups.values())]


def report_figures(runs):
    """The report's figures as Plotly dicts, from [(run name, records), ...]. Runs with the same settings are
    drawn as one mean with a min-max band; several settings (DDPG and TD3, say) as one such curve each."""
    groups = group_by_settings(runs)
    many = len(groups) > 1

    def lines(key, name, color, **style):  # one curve (and band) per group of runs
        return [trace for g, (label, members) in enumerate(groups)
                for trace in line(f"{label}: {name}" if many else name, [series(records, key) for _, records in members],
                                  COLORS[g % len(COLORS)] if many else color, **style)]

    def short(state):  # a probe state for the legend: its first numbers (a MuJoCo state has 17 or more)
        return ", ".join(f"{v:.2f}" for v in state[:4]) + (", ..." if len(state) > 4 else "")

    header = next((r for r in runs[0][1] if "probe_states" in r), {})
    cut, gamma = header.get("max_episode_steps"), header.get("gamma")
    plural = (f" ({len(groups)} settings, each the mean of its runs, band: min-max)" if many else
              f" (mean of {len(runs)} runs, band: min-max)" if len(runs) > 1 else "")
    best = []
    if len(runs) == 1:  # the evaluation that best.pt holds
        x, y = series(runs[0][1], "eval_return")
        if len(y):
            best = [{"type": "scatter", "x": [float(x[y.argmax()])], "y": [float(y.max())], "mode": "markers",
                     "name": "best evaluation (best.pt)", "marker": {"symbol": "star", "size": 16, "color": "#2ca02c"}}]
    learning = figure(lines("episode_return", "training episode return", COLORS[0], width=1)
                      + lines("eval_return", "evaluation return (no noise)", COLORS[1], mode="lines+markers")
                      + best, "Learning curve" + plural, ytitle="return")

    q_panel = figure(lines("q_mean", "Q(s, a), minibatch mean", COLORS[0])
                     + lines("target_mean", "TD target y, minibatch mean", COLORS[1], dash="dot")
                     + lines("critic_loss", "critic loss", COLORS[2], axis="2")
                     + lines("actor_loss", "actor loss = -Q(s, mu(s))", COLORS[3], axis="3"),
                     "Q-values, TD targets and losses" + plural, ytitle="value",
                     xaxis={"domain": [0, 0.42], "title": {"text": "environment steps"}},
                     xaxis2={"domain": [0.5, 0.72], "anchor": "y2", "title": {"text": "steps"}},
                     xaxis3={"domain": [0.8, 1], "anchor": "y3", "title": {"text": "steps"}},
                     yaxis2={"anchor": "x2", "title": {"text": "critic loss"}},
                     yaxis3={"anchor": "x3", "title": {"text": "actor loss"}})

    horizon = f"{cut} steps" if cut else "the episode's end"
    overestimation = figure(lines("q_start", "critic: Q(s0, mu(s0))", COLORS[0], mode="lines+markers")
                            + lines("mc_return", "collected: discounted return from s0", COLORS[1],
                                    mode="lines+markers", dash="dot"),
                            f"Overestimation check at the evaluation start states{plural}<br><sup>"
                            f"return discounted with gamma={gamma}, cut at termination or the time limit "
                            f"({horizon}): it leaves out gamma^T V(s_T) after a cut</sup>", ytitle="value")

    name, records = runs[0]
    evals = [r for r in records if "probe_actions" in r]
    steps = [r["step"] for r in evals]
    actions = np.array([r["probe_actions"] for r in evals])  # (evaluations, probes, action dims)
    states = header.get("probe_states", [])
    traces, crowded = [], actions.size and actions.shape[1] * actions.shape[2] > 12  # Ant: 5 probes x 8 dims
    if actions.size:
        for i in range(actions.shape[1]):
            for j in range(actions.shape[2]):
                state = short(states[i]) if i < len(states) else "?"
                traces.append({"type": "scatter", "x": steps, "y": actions[:, i, j].tolist(), "mode": "lines+markers",
                               "name": f"probe {i} a[{j}], s=({state})", "visible": "legendonly" if crowded and i else True,
                               "line": {"color": COLORS[i % len(COLORS)], "dash": ["solid", "dot", "dash"][j % 3]}})
    notes = ([f"run {name} only: each seed draws its own probe states"] if len(runs) > 1 else []) + (
        ["probe 0 shown; click the legend for the others"] if crowded else [])
    probes = figure(traces, "Policy on fixed probe states: mu(s) at each evaluation"
                    + (f"<br><sup>{'; '.join(notes)}</sup>" if notes else ""), ytitle="action")
    saturated = figure(lines("action_at_bound", "share of mu(s) at a bound", COLORS[4]),
                        "Actor saturation: minibatch actions within 1% of the range from a bound" + plural,
                        ytitle="share of action components", yaxis={"range": [0, 1], "title": {"text": "share"}})
    return {"learning": learning, "q": q_panel, "overestimation": overestimation, "probes": probes,
            "saturation": saturated, "diagram": loop_diagram()}


def loop_diagram():
    """E1-E8 as a picture: who feeds whom in one DDPG step."""
    boxes = {"environment": (1.2, 4.0), "actor μ<sub>θ</sub> (E1)": (5, 5.5), "critic Q<sub>φ</sub> (E2)": (8.8, 4.0),
             "replay buffer D (E4)": (5, 2.5), "targets μ<sub>θ'</sub>, Q<sub>φ'</sub> (E3)": (8.8, 1.0)}
    shapes = [{"type": "rect", "x0": x - 1.15, "x1": x + 1.15, "y0": y - 0.45, "y1": y + 0.45,
               "line": {"color": "#444"}, "fillcolor": "#eef3fb"} for x, y in boxes.values()]
    notes = [{"x": x, "y": y, "text": f"<b>{name}</b>", "showarrow": False} for name, (x, y) in boxes.items()]
    arrows = [  # tail, head, label, where the label goes
        ((1.0, 4.45), (3.85, 5.6), "s", (2.2, 5.3)),
        ((3.85, 5.3), (1.5, 4.45), "a = μ(s) + ε (E5)", (3.0, 4.6)),
        ((1.2, 3.55), (3.85, 2.5), "(s, a, r, s', terminated)", (2.1, 2.75)),
        ((6.15, 2.7), (7.65, 3.8), "minibatch s, a", (6.6, 3.5)),
        ((6.15, 2.3), (7.65, 1.2), "r, s', terminated", (6.6, 1.5)),
        ((8.8, 1.45), (8.8, 3.55), "TD target y (E6)", (8.05, 2.5)),
        ((7.65, 4.3), (6.15, 5.3), "∇<sub>a</sub>Q(s, μ(s)) (E8)", (6.65, 4.55)),
        ((6.15, 5.65), (8.4, 4.45), "μ(s)", (7.6, 5.3)),
        ((9.95, 3.8), (9.95, 1.2), "soft update τ (E3)", (10.55, 2.5)),
    ]
    for (x0, y0), (x1, y1), text, (tx, ty) in arrows:
        notes.append({"x": x1, "y": y1, "ax": x0, "ay": y0, "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
                      "showarrow": True, "arrowhead": 3, "arrowwidth": 1.5, "text": ""})
        notes.append({"x": tx, "y": ty, "text": text, "showarrow": False, "font": {"size": 12}})
    notes.append({"x": 5.6, "y": -0.05, "showarrow": False, "font": {"size": 12},
                  "text": "critic loss (Q(s, a) - y)² (E7) trains Q<sub>φ</sub>;  "
                          "actor loss -Q(s, μ(s)) (E8) trains μ<sub>θ</sub>"})
    hide = {"visible": False, "range": [-0.2, 11.4]}
    return {"data": [], "layout": {"title": {"text": "The actor-critic loop"}, "height": 440, "shapes": shapes,
                                   "annotations": notes, "xaxis": hide, "yaxis": {**hide, "range": [-0.3, 6.1]},
                                   "margin": {"t": 50, "b": 10, "l": 10, "r": 10}}}


PANELS = {  # each panel's title and the note under it
    "learning": ("1. Learning curve", "Return per training episode (with exploration noise) and the mean return of the deterministic "
                "policy at each evaluation; the star marks the best one, kept in best.pt."),
    "q": ("2. Q-values and TD targets", "Left: the critic's mean Q(s, a) on the sampled minibatch against the mean TD target y (dotted). Q tracking y "
         "means the critic fits its targets; both drifting away from real returns shows up in the next panel. "
         "Middle and right: the losses of E7 and E8."),
    "overestimation": ("3. Overestimation check", "The critic's estimate at the start state of each evaluation episode against what the "
                      "policy really collected from there. A critic above the collected return overestimates: "
                      "the bias that motivated TD3 (Fujimoto et al., 2018, Figure 1)."),
    "probes": ("4. Policy evolution on probe states", "The deterministic action on a few fixed start states, at each evaluation. Lines that settle mean "
              "the policy has converged on those states; lines that keep swinging mean it has not."),
    "saturation": ("5. Actor saturation", "How much of the actor's output sits at the edge of the action box, where tanh is flat and the "
                  "actor's gradient all but vanishes. Near 0 is healthy; a share that climbs towards 1 is a policy "
                  "stuck at bang-bang actions that the critic's gradient can no longer pull back."),
    "diagram": ("6. The actor-critic loop", "What feeds what in one step of DDPG, with the equations' numbers."),
}


def write_report(run_dirs, path) -> tuple:
    """Write one self-contained HTML page (plotly.js inlined: it opens offline) for the runs. Returns
    (problems, left_out): a message for each unreadable line or run, and the run folders that could not be
    drawn at all. Raises ConfigError if none could be."""
    pio = load_plotly().io
    runs, problems, left_out = [], [], []
    for d in run_dirs:
        try:
            records, bad = read_metrics(d)
            why = "no readable records"
        except OSError as e:
            records, bad, why = [], [], f"cannot read {Path(d) / 'metrics.jsonl'} ({e.strerror or e})"
        problems += bad
        if records:
            runs.append((str(d), records))
        else:
            left_out.append(d)
            problems.append(f"{d}: {why}; left out of the report")
    if not runs:
        raise ConfigError("nothing to report: " + "; ".join(problems or ["no records"]))
    names = [Path(d).name for d, _ in runs]  # a folder's own name, unless two runs share it (seed0, seed0)
    if len(set(names)) == len(names):
        runs = [(name, records) for name, (_, records) in zip(names, runs)]
    body = [f"<h1>DDPG report</h1><p>{len(runs)} run(s): {', '.join(name for name, _ in runs)}</p>"]
    pendulum = {r["env"] for _, records in runs for r in records if "env" in r} == {"Pendulum-v1"}
    for key, fig in report_figures(runs).items():
        title, note = PANELS[key]
        note += " (On Pendulum-v1, -200 and above counts as solved.)" if key == "learning" and pendulum else ""
        body.append(f"<h2>{title}</h2><p class='note'>{note}</p>")
        body.append(pio.to_html(fig, full_html=False, include_plotlyjs=False, validate=False,
                                config={"displaylogo": False}))
    head = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>DDPG report</title><style>body{font-family:"
            "sans-serif;max-width:1150px;margin:auto;padding:0 1em} .note{color:#444}</style><script>")

    def write(f):  # in pieces: no second copy of the 5 MB plotly.js per write
        f.write(head.encode())
        f.write(plotly_js())
        f.write(("</script></head><body>" + "\n".join(body) + "</body></html>").encode())

    try:  # a browser reloading mid-write never sees half a page
        write_atomically(Path(path), write)
    except OSError as e:  # a folder it cannot write, a full disk: the previous page, if any, is intact
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return problems, left_out


@functools.cache  # read once per process: the report is rewritten at every evaluation
def plotly_js() -> bytes:
    """plotly.js as bytes: what plotly.offline.get_plotlyjs() reads, without its decode to str."""
    return pkgutil.get_data("plotly", "package_data/plotly.min.js")


# --- Command line ------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, instead of the usage block
        print(f"ddpg.py: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_env_kwarg(text: str) -> tuple:
    """--env-kwargs KEY:VALUE -> (KEY, VALUE), the value a Python literal (False, 0.5, 'x') or else a string."""
    key, sep, value = text.partition(":")
    if not (sep and key.isidentifier()):
        raise argparse.ArgumentTypeError(f"--env-kwargs wants KEY:VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def as_typed(value) -> str:
    """A value as a user would type it: 64 64, not (64, 64); KEY:VALUE pairs for a dict, or none."""
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items()) or "none"
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def build_parser() -> argparse.ArgumentParser:
    """One flag per Config field. Defaults are left out of the namespace (SUPPRESS), so that
    main() knows which flags were given: those override the environment's preset."""
    parser = Parser(prog="ddpg.py", allow_abbrev=False, argument_default=argparse.SUPPRESS,
                    description="Train DDPG on a Gymnasium environment with a bounded Box action space. "
                                "MuJoCo tasks start from their own settings (PRESETS); any flag overrides them.")
    for f in fields(Config):
        options = {k: v for k, v in f.metadata.items() if k not in ("flag", "shown_default")}
        if "action" not in options:
            options.setdefault("type", parse_env_kwarg if f.type is dict else f.type)
            if f.type in (int, float):
                options.setdefault("metavar", "N" if f.type is int else "X")
        if not isinstance(f.default, bool) and f.default != "":  # flags without a value need no default
            # (env_kwargs has a default_factory: its f.default is MISSING, its shown_default says "none")
            preset = PRESETS["mujoco"].get(f.name)
            options["help"] += f" (default: {f.metadata.get('shown_default', as_typed(f.default))}" + (
                f"; MuJoCo: {as_typed(preset)})" if preset is not None else ")")
        parser.add_argument(f.metadata.get("flag", "--" + f.name.replace("_", "-")), dest=f.name, **options)
    parser.add_argument("--td3", action="store_true",
                        help="TD3 (Fujimoto et al. 2018): --twin-critics --target-noise 0.2 --target-noise-clip 0.5 "
                             "--policy-delay 2; a switch given explicitly wins over it")
    parser.add_argument("--export", metavar="FILE",
                        help="with --load: write the checkpoint's actor as a torch.export program; "
                             "torch.export.load(FILE).module() maps a (batch, obs_dim) float32 tensor of "
                             "observations to actions without ddpg.py (one observation: obs[None])")
    parser.add_argument("--report", nargs="+", metavar="RUN_DIR", dest="report_dirs",
                        help="train nothing: rebuild report.html from these run folders' metrics.jsonl; several "
                             "folders are drawn as mean and min-max band, into --out (default: the one folder, "
                             "else the current folder)")
    return parser


def rebuild_report(run_dirs, out: str) -> int:
    """--report: a report from files alone, for a finished run, a killed one, or several."""
    folder = Path(out) if out else Path(run_dirs[0]) if len(run_dirs) == 1 else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    problems, left_out = write_report(run_dirs, folder / "report.html")
    for problem in problems:
        print(f"ddpg.py: {problem}", file=sys.stderr)
    print(f"wrote {folder / 'report.html'}")
    return 2 if left_out else 0  # a run asked for is missing: say so in the exit status too


def main(argv=None) -> int:
    """The command line. Exit status: 0 done, 2 bad input, 1 the run diverged, or its metrics or
    last checkpoint could not be written, 128 + N stopped by signal N (130 for Ctrl-C)."""
    given = vars(build_parser().parse_args(argv))  # only the flags on the command line
    report_dirs, export = given.pop("report_dirs", None), given.pop("export", None)
    try:
        if report_dirs:
            return rebuild_report(report_dirs, given.get("out", ""))
        if given.get("resume"):
            cfg = resume_config(given.pop("resume"), **given)
        else:
            td3 = given.pop("td3", False)
            if given.get("load"):  # flags given still win, and --td3 over the checkpoint's switches
                given = {**load_defaults(given["load"], given), **(TD3 if td3 else {}), **given}
            cfg = config_for(td3=td3, **given)
        if export:
            if not cfg.load:
                raise ConfigError("--export needs --load CHECKPOINT")
            print(f"wrote {export_policy(cfg.load, export)}: load it with torch.export.load(path).module()")
            return 0
        if cfg.eval_only:  # load, evaluate, print; writes nothing
            env, eval_env, agent, data, _ = setup(cfg)
            with contextlib.closing(env), contextlib.closing(eval_env):
                result = evaluate(agent, eval_env, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET, cfg.gamma)
            print(f"{cfg.load} (step {data['step']:,}): mean return {result['eval_return']:.1f} "
                  f"over {cfg.eval_episodes} episodes")
            return 0
        result = train(cfg)
    except (ConfigError, RunStopped) as e:  # bad input; or diverged, or metrics.jsonl cannot be written
        print(f"ddpg.py: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    if result["signal"]:
        return 128 + result["signal"]
    return 0 if result["saved"] else 1


if __name__ == "__main__":
    sys.exit(main())
