"""One runner for every agent: train it (or load it), play it on a suite split, write one line per episode.

    llm-repair-gym run --agents all --suite LLMRepair-Suite-v0 --split test --seeds 10

A *job* is one agent and one run seed. Agents are found through the ``llm_repair_gym.agents`` entry-point group
(:mod:`llm_repair_gym.bench.registry`; the runner imports no agent by name). A reference policy (no-op, random,
the observation-only heuristic, the privileged oracle) is built by its spec; a trained agent is first trained
by its spec's ``train`` function on the suite's train split only (``--env-kwargs suite=<name>``), then loaded
with its ``load``; a carried agent is loaded from its checkpoint folder. The policy then plays every
entry of the split (:class:`~llm_repair_gym.envs.suites.Suite`), entry ``k`` of run ``s`` from the seed
``suite.episode_seeds(split, s)[k]``, and the job writes ``<out>/episodes/<agent>/seed<s>.jsonl`` in the
format of :mod:`llm_repair_gym.bench.results` (atomically: a job is done or absent). Jobs whose file exists, from
the same agent configuration, are skipped, so an interrupted run resumes where it stopped (``--rerun`` plays
them again).

Jobs run in ``--workers`` local processes (one torch thread each); ``--ray ADDRESS`` sends the same jobs to
a Ray cluster instead (``pip install "llm-repair-gym[ray]"``; ``--ray local`` starts one on this machine).
Every job is deterministic on the CPU: the same job gives the same file, wherever it runs. Every line names
the commit its jobs were planned at (HEAD when ``run`` started, so a commit made while jobs run does not
relabel them), marked ``+dirty`` when the played sources had uncommitted changes; ``run`` warns then.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from llm_repair_gym._version import __version__
from llm_repair_gym.bench.registry import agent_spec, agents_for, registered_agents
from llm_repair_gym.bench.results import RESULTS_FORMAT, write_results
from llm_repair_gym.envs.suites import load_suite

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the package: a clone's root, whose git commit results name."""


@dataclass(frozen=True)
class Job:
    """One agent played over one suite split in one run."""

    agent: str
    seed: int
    suite: str
    split: str
    out_dir: str
    total_steps: int = 4_000
    train_envs: int = 16
    eval_envs: int = 8
    limit: int | None = None  # play only the split's first entries (smoke tests)
    git_commit: str | None = None  # the source the job plays, fixed when it is planned (:func:`source_revision`)

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / "episodes" / self.agent / f"seed{self.seed}.jsonl"

    @property
    def train_dir(self) -> Path:
        return Path(self.out_dir) / "train" / f"{self.agent}_seed{self.seed}"


def agent_config(job: Job) -> dict:
    """What determines the agent a job plays (stored on every line; its hash names the configuration)."""
    spec = agent_spec(job.agent)
    config = {"kind": spec.kind, "description": spec.description}
    if spec.env_kwargs:
        config["env_kwargs"] = dict(spec.env_kwargs)
    if spec.kind == "trained":
        config |= {"script": list(spec.script), "total_steps": job.total_steps, "num_envs": job.train_envs,
                   "train_split": "train"}
    if spec.kind == "checkpoint":
        config |= {"checkpoint": spec.checkpoint, "sha256": _folder_digest(spec.checkpoint_dir)}
    return config


def config_hash(job: Job, suite_hash: str) -> str:
    """The hash that names a job's agent configuration on its results lines (a file with another is replayed)."""
    return record_hash(job.agent, agent_config(job), job.suite, suite_hash, job.split)


def record_hash(agent: str, config: dict, suite: str, suite_hash: str, split: str) -> str:
    """:func:`config_hash` from the fields a results line records."""
    body = {"agent": agent, "config": config, "suite": suite, "suite_hash": suite_hash, "split": split}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def run_job(job: Job) -> str:
    """Play ``job`` and write its results file; return the file's path. Runs in a worker (or Ray task)."""
    import gymnasium as gym
    import torch

    from llm_repair_gym.rl.episodes import env_names, run_episodes

    torch.set_num_threads(1)
    suite = load_suite(job.suite)
    entries = suite.entries(job.split)[:job.limit]
    names = env_names(suite.env_id, **suite.env_kwargs)  # the suite's preset, not the env's default one
    policy = _policy(job, suite, *names)
    env = gym.make_vec(suite.env_id, num_envs=min(job.eval_envs, len(entries)), autoreset_mode="Disabled",
                       progress=False, **suite.make_kwargs(job.split), **agent_env_kwargs(job.agent))
    try:
        seeds = suite.episode_seeds(job.split, job.seed)[:len(entries)]
        records = run_episodes(env, policy, seeds, progress=False, instances=[e.instance for e in entries],
                               option=suite.reset_option)
    finally:
        env.close()
    by_seed = {r.seed: r for r in records}
    common = {"format": RESULTS_FORMAT, "agent": job.agent, "agent_config": agent_config(job),
              "config_hash": config_hash(job, suite.content_hash), "suite": suite.name,
              "suite_version": suite.version, "suite_hash": suite.content_hash, "split": job.split,
              "env_id": suite.env_id, "package_version": __version__, "git_commit": job.git_commit,
              "threads": torch.get_num_threads(), "seed": job.seed}
    lines = []
    for entry, episode_seed in zip(entries, seeds):
        r = by_seed[episode_seed]
        lines.append({**common, "index": entry.index, "instance": entry.instance, "episode_seed": episode_seed,
                      "fault": r.fault, "return": r.episode_return, "steps": r.steps,
                      "final_accuracy": r.final_accuracy, "flops": r.flops, "safety_cost": r.episode_cost,
                      "crashed": r.crashed, "actions": r.actions})
    return str(write_results(job.path, lines))


def _policy(job: Job, suite, action_names: list[str], feature_names: list[str]):
    spec = agent_spec(job.agent)
    if spec.kind == "reference":
        return spec.policy(action_names, feature_names, job.seed)
    if spec.kind == "checkpoint":
        return spec.load(spec.checkpoint_dir)
    _train(job, suite)
    return spec.load(job.train_dir)


def _train(job: Job, suite) -> None:
    """Train a ``trained`` agent on the suite's train split through its ``train`` function, in a fresh process
    (``llm-repair-gym train``) on one torch thread; its own held-out check is cut to one episode, since the
    runner's play on the suite is what counts. A finished training run with the same command
    (``train_dir/command.json``) is reused."""
    spec = agent_spec(job.agent)
    env_kwargs = [f"{k}={v}" for k, v in {**suite.train_kwargs(), **spec.env_kwargs}.items()]
    arguments = [*spec.script, "--env-id", suite.env_id, "--seed", str(job.seed), "--num-envs", str(job.train_envs),
                 "--total-steps", str(job.total_steps), "--eval-episodes", "1", "--threads", "1",
                 "--env-kwargs", *env_kwargs]
    record = job.train_dir / "command.json"
    if (job.train_dir / "policy.json").exists() and record.exists() and json.loads(record.read_text()) == arguments:
        return
    job.train_dir.mkdir(parents=True, exist_ok=True)
    log = job.train_dir / "train.log"
    with log.open("w") as handle:
        done = subprocess.run([sys.executable, "-m", "llm_repair_gym.cli", "train", job.agent,  # adds the recipe
                               *arguments[len(spec.script):], "--out-dir", str(job.train_dir)], stdout=handle,
                              stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"training {job.agent} seed {job.seed} failed (exit {done.returncode}); see {log}")
    record.write_text(json.dumps(arguments) + "\n")


def plan_jobs(agents: list[str], seeds: list[int], suite: str, split: str, out_dir: str | Path,
              rerun: bool = False, **settings) -> tuple[list[Job], list[Job]]:
    """``(to_run, done)``: a job per agent and seed; those whose results file exists are done unless ``rerun``."""
    known = registered_agents()
    unknown = sorted(set(agents) - set(known))
    if unknown:
        raise ValueError(f"unknown agents {unknown}; known: {sorted(known)} (or 'all')")
    env_id = load_suite(suite).env_id
    load_suite(suite).entries(split)
    foreign = [a for a in agents if env_id not in known[a].env_ids]
    if foreign:
        raise ValueError(f"{foreign} do not play {env_id} (the env of {suite}); its agents: {agents_for(env_id)}")
    revision = source_revision()
    jobs = [Job(agent, seed, suite, split, str(out_dir), git_commit=revision, **settings)
            for agent in agents for seed in seeds]
    suite_hash = load_suite(suite).content_hash
    done = [] if rerun else [j for j in jobs if _finished(j, config_hash(j, suite_hash))]
    return [j for j in jobs if j not in done], done


def _finished(job: Job, expected_hash: str) -> bool:
    """Whether ``job``'s results file exists and was written by the same agent configuration (a file left by
    another configuration, say another ``--total-steps``, is played again and replaced)."""
    if not job.path.exists():
        return False
    with job.path.open() as handle:
        first = handle.readline()
    try:
        return json.loads(first).get("config_hash") == expected_hash
    except (json.JSONDecodeError, AttributeError):
        return False


def agent_env_kwargs(agent: str) -> dict:
    """The env settings ``agent`` plays with: its spec's, none for an agent that is not registered here."""
    known = registered_agents()
    return dict(known[agent].env_kwargs) if agent in known else {}


def run_jobs(jobs: list[Job], workers: int = 2, ray_address: str | None = None, progress: bool = True) -> list[str]:
    """Run ``jobs`` in local worker processes (spawned, so each starts clean) or on Ray; return the files."""
    if not jobs:
        return []
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)
    paths: list[str] = []
    try:
        if ray_address is not None:
            paths = _run_ray(jobs, ray_address, bar)
        elif workers == 1:
            for job in jobs:
                paths.append(run_job(job))
                bar.update(1)
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(run_job, job): job for job in jobs}
                for future in as_completed(futures):
                    paths.append(future.result())
                    bar.set_postfix_str(f"{futures[future].agent} seed {futures[future].seed}")
                    bar.update(1)
    finally:
        bar.close()
    return sorted(paths)


def _run_ray(jobs: list[Job], address: str, bar) -> list[str]:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError('--ray needs Ray: pip install "llm-repair-gym[ray]"') from err
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    remote = ray.remote(num_cpus=1)(run_job)
    pending = [remote.remote(job) for job in jobs]
    paths = []
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        paths += ray.get(finished)
        bar.update(len(finished))
    return paths


PLAYED_SOURCES = ("llm_repair_gym", "agents", "scripts", "pyproject.toml")
"""The tracked paths that decide what a job plays: the package, the agents and their checkpoints, the training
scripts and the dependency pins (results written into ``benchmarks/`` do not count)."""


def source_revision(root: str | Path = REPO_ROOT) -> str | None:
    """The commit a run plays: ``HEAD``'s hash, with ``+dirty`` appended when a tracked file under
    :data:`PLAYED_SOURCES` differs from it (results that no commit reproduces); None outside a git checkout."""
    def git(*arguments: str) -> str | None:
        try:
            out = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *PLAYED_SOURCES)
    return f"{commit}+dirty" if changed else commit


def _folder_digest(folder: Path) -> str:
    """sha256 over a folder's files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()

