"""Verify a results file: replay every episode on the CPU from its seed, instance and actions, and compare.

    llm-repair-gym verify results/run/episodes            # a file, or every *.jsonl under a folder

A submission is a results file in the runner's format (:mod:`llm_repair_gym.bench.results`). ``verify`` reads it
defensively (malformed or oversized files are refused before anything is replayed), then refuses it, naming
each failing episode, when

* it was made with another package version than the installed one (the env's dynamics may differ), or
  with another suite version or hash, or for another env;
* an episode is not one of the suite's: an entry index outside the split, an instance or an episode seed
  that is not the one the suite gives that entry in that run, or the same (agent, run, entry) twice;
* an action is not one of the env's, or the replayed episode does not end where the recorded one did;
* its return, final accuracy per family or safety cost differs by more than :data:`TOLERANCE`, its FLOP
  count by more than :data:`FLOP_TOLERANCE` relative, or its crash flag differs.

With ``--policy`` (``verify_results(..., policy=True)``) a job whose agent can be rebuilt without training is
replayed as a *policy*: a reference agent from its registered spec and run seed, a carried checkpoint from its
folder. The job's recorded configuration hash must be the agent's now (the spec, and for a checkpoint the
folder's sha256); the policy then plays the job's episodes as the runner did, and any step where it chooses
another action than the recorded one is reported, besides every check above. A trained agent's policy exists
only in the run that trained it; its episodes are replayed by their actions and counted as such.

Replays run on one torch thread; the runner records its thread count, and returns agree to far below the
tolerance across thread counts (``benchmarks/thread_reproducibility.py``). Each job's episodes (one agent
configuration, one run) are replayed together in their own env, as the runner played them: the env batches
the model work of the envs that take the same action, float rounding can depend on that batch, and a
repair's training steps can grow a rounding difference into a different answer on a validation example
(replaying the meta board's ten agents in one env moved three of sb3_qrdqn's episodes by 0.01-0.07).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm_repair_gym._version import __version__
from llm_repair_gym.bench.results import read_many
from llm_repair_gym.bench.runner import agent_env_kwargs
from llm_repair_gym.envs.suites import load_suite, suite_names

TOLERANCE = 1e-6
FLOP_TOLERANCE = 1e-9


@dataclass
class VerifyReport:
    """What :func:`verify_results` found: episodes replayed and, per failing episode, why."""

    episodes: int = 0
    failures: list[str] = field(default_factory=list)
    policy_episodes: int = 0  # replayed as a policy (``policy=True``); the rest by their actions

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self, limit: int = 50) -> str:
        if self.ok:
            policies = f" ({self.policy_episodes} of them by their agent's policy)" if self.policy_episodes else ""
            return f"verified: all {self.episodes} episodes replay within tolerance{policies}"
        shown = "\n".join(f"  {f}" for f in self.failures[:limit])
        more = f"\n  ... and {len(self.failures) - limit} more" if len(self.failures) > limit else ""
        return f"REJECTED: {len(self.failures)} problems in {self.episodes} episodes\n{shown}{more}"


class ReplayPolicy:
    """Plays recorded action sequences, in the order ``run_episodes`` hands episodes to env slots (slots
    ``0..n-1`` first, then each freed slot, lowest index first, takes the next). A slot whose actions run out
    before its episode ends plays ``stop``; the record then differs from the replay and is reported."""

    def __init__(self, sequences: list[list[int]], stop: int) -> None:
        self.sequences, self.stop = sequences, stop
        self.next = 0
        self.slot: list[int | None] = []
        self.position: list[int] = []

    def reset(self, env_mask: np.ndarray) -> None:
        if not self.slot:
            self.slot, self.position = [None] * len(env_mask), [0] * len(env_mask)
        for i in np.flatnonzero(env_mask):
            self.slot[i] = self.next if self.next < len(self.sequences) else None
            self.next += 1
            self.position[i] = 0

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        out = np.full(len(obs), self.stop, dtype=np.int64)
        for i, episode in enumerate(self.slot):
            if episode is not None and self.position[i] < len(self.sequences[episode]):
                out[i] = self.sequences[episode][self.position[i]]
            self.position[i] += 1
        return out


def verify_results(paths: list[str | Path], num_envs: int = 8, progress: bool = True,
                   policy: bool = False) -> VerifyReport:
    """Check and replay every episode of the results files (or folders) ``paths``; with ``policy``, replay the
    jobs of reference and carried agents as policies (see the module docstring)."""

    records = read_many(paths)
    report = VerifyReport(episodes=len(records))
    seen: set[tuple] = set()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        name = _name(r)
        problems = []
        if r["package_version"] != __version__:
            problems.append(f"made with package {r['package_version']}, this is {__version__}")
        if r["suite"] not in suite_names():
            problems.append(f"unknown suite {r['suite']!r} (known: {suite_names()})")
        else:
            problems += _suite_problems(r)
        key = (r["agent"], r["config_hash"], r["seed"], r["split"], r["index"])
        if key in seen:
            problems.append("appears twice")
        seen.add(key)
        report.failures += [f"{name}: {p}" for p in problems]
        if not problems:
            # one env per job (agent configuration and run), as the runner played it; the env settings come from
            # the agent's registered spec, never from the file
            groups[(r["suite"], r["split"], json.dumps(agent_env_kwargs(r["agent"]), sort_keys=True), r["agent"],
                    r["config_hash"], r["seed"])].append(r)
    for (suite_name, split, env_kwargs, agent, _, seed), group in groups.items():
        suite = load_suite(suite_name)
        if policy and _rebuildable(agent):
            report.failures += _replay_policy(suite, split, json.loads(env_kwargs), agent, seed, group, num_envs,
                                              progress)
            report.policy_episodes += len(group)
        else:
            report.failures += _replay(suite, split, json.loads(env_kwargs), group, num_envs, progress)
    return report


def _rebuildable(agent: str) -> bool:
    """Whether ``agent`` is registered here as a reference or a carried checkpoint (a policy without training)."""
    from llm_repair_gym.bench.registry import registered_agents

    spec = registered_agents().get(agent)
    return spec is not None and spec.kind in ("reference", "checkpoint")


def _replay_policy(suite, split: str, env_kwargs: dict, agent: str, seed: int, records: list[dict], num_envs: int,
                   progress: bool) -> list[str]:
    """Rebuild ``agent``'s policy and play the job's episodes with it, as the runner played them (entry order,
    ``num_envs`` envs); report changed configurations, other choices and other outcomes."""
    import gymnasium as gym
    import torch

    from llm_repair_gym.bench.registry import agent_spec
    from llm_repair_gym.bench.runner import Job, config_hash
    from llm_repair_gym.rl.episodes import run_episodes

    records = sorted(records, key=lambda r: r["index"])
    now = config_hash(Job(agent, seed, suite.name, split, ""), suite.content_hash)
    if records[0]["config_hash"] != now:
        return [f"{_name(r)}: configuration {r['config_hash']} recorded; {agent!r} here is {now} (its spec or "
                "its checkpoint changed since it played)" for r in records]
    torch.set_num_threads(1)
    spec = agent_spec(agent)
    env = gym.make_vec(suite.env_id, num_envs=min(num_envs, len(records)), autoreset_mode="Disabled",
                       progress=progress, **suite.make_kwargs(split), **env_kwargs)
    try:
        actions, features = env.unwrapped.action_names, env.unwrapped.feature_names
        chooser = spec.policy(actions, features, seed) if spec.kind == "reference" else spec.load(spec.checkpoint_dir)
        played = run_episodes(env, chooser, [r["episode_seed"] for r in records], progress=progress,
                              desc=f"policy {agent}", instances=[r["instance"] for r in records],
                              option=suite.reset_option)
    finally:
        env.close()
    by_seed = {e.seed: e for e in played}
    failures = []
    for r in records:
        e = by_seed[r["episode_seed"]]
        if e.actions != r["actions"]:
            step = next((t for t, (a, b) in enumerate(zip(r["actions"], e.actions)) if a != b),
                        min(len(r["actions"]), len(e.actions)))
            failures.append(f"{_name(r)}: the policy chooses {e.actions[step:step + 1]} at step {step}, the record "
                            f"{r['actions'][step:step + 1]}")
            continue
        failures += [f"{_name(r)}: {p}" for p in _compare(r, e)]
    return failures


def _suite_problems(r: dict) -> list[str]:
    suite = load_suite(r["suite"])
    if (r["suite_version"], r["suite_hash"]) != (suite.version, suite.content_hash):
        return [f"suite version {r['suite_version']} hash {r['suite_hash'][:16]}; this suite is version "
                f"{suite.version} hash {suite.content_hash[:16]}"]
    if r["env_id"] != suite.env_id:
        return [f"env {r['env_id']!r}; {suite.name} is played on {suite.env_id!r}"]
    if r["agent_config"].get("env_kwargs", {}) != agent_env_kwargs(r["agent"]):
        return [f"env settings {r['agent_config'].get('env_kwargs')!r}; agent {r['agent']!r} plays with "
                f"{agent_env_kwargs(r['agent'])}"]
    if r["split"] not in suite.splits:
        return [f"split {r['split']!r} is not one of {sorted(suite.splits)}"]
    entries = suite.entries(r["split"])
    if not 0 <= r["index"] < len(entries):
        return [f"entry {r['index']} is outside the {r['split']} split's {len(entries)}"]
    if r["seed"] < 0 or r["seed"] * 10**6 >= 2**62:
        return [f"run seed {r['seed']} is out of range"]
    expected = (entries[r["index"]].instance, suite.episode_seeds(r["split"], r["seed"])[r["index"]])
    if (r["instance"], r["episode_seed"]) != expected:
        return [f"instance {r['instance']} / episode seed {r['episode_seed']} are not the suite's "
                f"{expected[0]} / {expected[1]} for this entry and run"]
    return []


def _replay(suite, split: str, env_kwargs: dict, records: list[dict], num_envs: int, progress: bool) -> list[str]:
    import gymnasium as gym
    import torch

    from llm_repair_gym.rl.episodes import run_episodes

    torch.set_num_threads(1)
    env = gym.make_vec(suite.env_id, num_envs=min(num_envs, len(records)), autoreset_mode="Disabled",
                       progress=progress, **suite.make_kwargs(split), **env_kwargs)
    failures, playable = [], []
    try:
        index = {name: i for i, name in enumerate(env.unwrapped.action_names)}
        for r in records:
            unknown = sorted({a for a in r["actions"] if a not in index})
            if unknown:
                failures.append(f"{_name(r)}: unknown actions {unknown}")
            else:
                playable.append(r)
        if not playable:
            return failures
        policy = ReplayPolicy([[index[a] for a in r["actions"]] for r in playable], index["stop"])
        replays = run_episodes(env, policy, [r["episode_seed"] for r in playable], progress=progress,
                               desc="replay", instances=[r["instance"] for r in playable], option=suite.reset_option)
    finally:
        env.close()
    found = defaultdict(list)  # an episode seed names one suite entry of one run, so it names the instance too
    for e in replays:
        found[(e.seed, tuple(e.actions))].append(e)
    for r in playable:
        matches = found.get((r["episode_seed"], tuple(r["actions"])))
        if not matches:
            failures.append(f"{_name(r)}: the replayed episode did not end exactly after the recorded "
                            f"{len(r['actions'])} actions")
            continue
        failures += [f"{_name(r)}: {p}" for p in _compare(r, matches[0])]
    return failures


def _compare(r: dict, e) -> list[str]:
    problems = []
    for label, recorded, replayed in (("return", r["return"], e.episode_return),
                                      ("safety cost", r["safety_cost"], e.episode_cost)):
        if abs(recorded - replayed) > TOLERANCE:
            problems.append(f"{label} {recorded:.9g} recorded, {replayed:.9g} replayed")
    if set(r["final_accuracy"]) != set(e.final_accuracy):
        problems.append(f"final accuracy names {sorted(r['final_accuracy'])}, the env has {sorted(e.final_accuracy)}")
    else:
        problems += [f"final {f} accuracy {r['final_accuracy'][f]:.6f} recorded, {e.final_accuracy[f]:.6f} replayed"
                     for f in e.final_accuracy if abs(r["final_accuracy"][f] - e.final_accuracy[f]) > TOLERANCE]
    if abs(r["flops"] - e.flops) > FLOP_TOLERANCE * max(abs(e.flops), 1.0):
        problems.append(f"FLOPs {r['flops']:.6g} recorded, {e.flops:.6g} replayed")
    if r["crashed"] != e.crashed or r["steps"] != e.steps or r["fault"] != e.fault:
        problems.append(f"crashed/steps/fault {r['crashed']}/{r['steps']}/{r['fault']} recorded, "
                        f"{e.crashed}/{e.steps}/{e.fault} replayed")
    return problems


def _name(r: dict) -> str:
    return f"{r.get('agent')} seed {r.get('seed')} entry {r.get('index')} ({r.get('split')})"
