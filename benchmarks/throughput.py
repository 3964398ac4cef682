"""Throughput of LLMRepair: env-steps/s over N, reset cost, ops and syncs per step, FLOP/s against the
machine's own matmul peak, and memory per env. One run prints a table and writes JSON, markdown and a PNG.

    python -m benchmarks.throughput                       # the CPU run (about 6 minutes on 2 cores)
    python -m benchmarks.throughput --device cuda --precision bf16 --sizes 1 64 512 1024 4096
    python -m benchmarks.throughput --env-id LLMRepair-v1 --sizes 64 --sync-sizes   # v1 beside v0's row

Every configuration runs in a fresh subprocess (spawn), so its peak memory is its own and one run's
threads or caches do not slow the next. Sections:

* **sweep**: env-steps/s of the native vector env for every N in ``--sizes``, for the ``train_all`` mix
  (every env trains every step: the dearest step there is) and the ``random`` mix (uniform actions,
  autoresets included); of ``gymnasium.vector.SyncVectorEnv`` over N single envs (``--sync-sizes``); and of
  the single env of ``gym.make``.
* **reset**: seconds of ``reset()`` of N envs against one ``train_all`` step of the same N envs.
* **ops**: per ``train_all`` step: torch operator calls (on a GPU also kernel launches) and host
  synchronisations (GPU: stream or device synchronisations and device-to-host copies, plus the warnings of
  ``torch.cuda.set_sync_debug_mode``; CPU: ``.item()`` calls, leaving out ``one_hot``'s CPU-only range
  checks of its indices).
* **flops**: the model FLOPs of the ``train_all`` mix (its training steps plus the measurement every step
  runs, counted as the action table counts them) per second, against a large square matmul timed on the
  same device and precision.
* **memory**: peak memory (CUDA: allocated; CPU: resident set) per env, as the marginal cost between the
  smallest and the largest N of the sweep.
* **training run**: env-steps/s of a whole Stable-Baselines3 PPO run (``--train-steps`` env steps over
  ``--train-num-envs`` envs through ``SB3VecEnv``, the env's hyperparameters from ``agents/hyperparams``), the
  learner's rollouts, normalisation and updates included, and the share of its wall time spent in the env.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

MIXES = ("train_all", "random")


def _make_env(env_id: str, num_envs: int | None, device: str, precision: str, threads: int, sync: bool = False):
    import gymnasium as gym

    import llm_repair_gym  # noqa: F401  (registers the ids)

    # num_threads: the configuration runs in a multiprocessing worker, where an env would take one thread
    kwargs = {"device": device, "precision": precision, "progress": False, "num_threads": threads}
    if num_envs is None:  # the single env of gym.make
        return gym.make(env_id, **kwargs)
    if sync:
        return gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return gym.make_vec(env_id, num_envs=num_envs, **kwargs)


def _sync_device(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory(device: str) -> float:
    """Peak bytes: CUDA memory allocated, or the process's peak resident set."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated())
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def run_config(spec: dict) -> dict:
    """One configuration, in its own process: steps/s for both mixes, reset cost, ops, memory."""
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    device, steps, single = spec["device"], spec["steps"], spec["num_envs"] is None
    n = 1 if single else spec["num_envs"]
    env = _make_env(spec["env_id"], spec["num_envs"], device, spec["precision"], spec["threads"], spec["sync"])
    names = env.envs[0].unwrapped.action_names if spec["sync"] else env.unwrapped.action_names
    rng = np.random.default_rng(spec["seed"])
    out: dict = {**spec}
    for mix in MIXES:
        def actions(mix=mix):
            a = np.full(n, names.index("train_all")) if mix == "train_all" else rng.integers(len(names), size=n)
            return int(a[0]) if single else a

        env.reset(seed=spec["seed"])
        env.step(actions())  # warm-up
        _sync_device(device)
        start = time.perf_counter()
        for _ in range(steps):
            if single and env.step(actions())[2:4] != (False, False):
                env.reset()
            elif not single:
                env.step(actions())
        _sync_device(device)
        out[f"{mix}_steps_per_s"] = steps * n / (time.perf_counter() - start)
    if not spec["sync"] and not single:
        out |= _reset_and_ops(env, names, spec)
    out["peak_memory_bytes"] = _peak_memory(device)
    env.close()
    return out


def _reset_and_ops(env, names: list[str], spec: dict) -> dict:
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    n, device = spec["num_envs"], spec["device"]
    train_all = np.full(n, names.index("train_all"))
    timings = {"reset": [], "step": []}
    for repeat in range(spec["reset_repeats"]):
        for what, call in (("reset", lambda r=repeat: env.reset(seed=1000 + r)), ("step", lambda: env.step(train_all))):
            _sync_device(device)
            start = time.perf_counter()
            call()
            _sync_device(device)
            timings[what].append(time.perf_counter() - start)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        env.step(train_all)
        _sync_device(device)
    events = prof.events()
    ops = sum(1 for e in events if e.name.startswith("aten::") and
              (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    if device.startswith("cuda"):
        launches = sum(1 for e in events if e.name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        syncs = sum(1 for e in events if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize")
                    or e.name.startswith("Memcpy DtoH"))
        with torch.cuda.device(device):
            torch.cuda.set_sync_debug_mode("warn")
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                env.step(train_all)
            torch.cuda.set_sync_debug_mode("default")
        sync_warnings = sum(1 for w in caught if "synchroniz" in str(w.message))
    else:
        launches = None  # on the CPU, one_hot checks its indices with .item(); CUDA leaves that check out
        syncs = sum(1 for e in events if e.name == "aten::item" and (e.cpu_parent is None or
                                                                      e.cpu_parent.name != "aten::one_hot"))
        sync_warnings = None
    return {"reset_s": float(np.median(timings["reset"])), "train_all_step_s": float(np.median(timings["step"])),
            "ops_per_step": ops, "kernel_launches_per_step": launches, "host_syncs_per_step": syncs,
            "sync_debug_warnings_per_step": sync_warnings}


def matmul_peak(spec: dict) -> dict:
    """FLOP/s of a large square matmul at the run's device and precision (the machine's own peak)."""
    import torch

    torch.set_num_threads(spec["threads"])
    device, size = spec["device"], spec["matmul_size"]
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else torch.float32
    if spec["precision"] == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync_device(device)
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        a @ b
        repeats += 1
        _sync_device(device)
    return {"matmul_flops_per_s": 2 * size**3 * repeats / (time.perf_counter() - start), "matmul_size": size}


def model_flops_per_step(env_id: str) -> float:
    """Model FLOPs of one train_all env-step: the action's training plus the measurement every step runs."""
    import gymnasium as gym

    from llm_repair_gym.lm.tasks import FAMILIES
    from llm_repair_gym.repair.actions import forward_flops_per_token

    env = gym.make_vec(env_id, num_envs=1, progress=False)
    dyn, preset = env.ctx.dynamics, env.preset
    lengths, fwd = preset.tasks.family_lengths, forward_flops_per_token(preset)
    grad_size = 0 if hasattr(env.unwrapped, "probes") else dyn.grad_size  # v1's gradients are a paid probe
    measure = sum(((dyn.eval_size + dyn.spread_size) + 3 * grad_size) * lengths[f] * fwd for f in FAMILIES)
    return env.actions[0].flops + measure


def training_run(spec: dict) -> dict:
    """Env-steps/s of an SB3 PPO run on the native vector env, learner included, and the env's share of it."""
    import torch
    from stable_baselines3.common.vec_env import VecEnvWrapper, VecMonitor, VecNormalize

    from agents.sb3_baselines import build_model, load_hyperparams, normalize_kwargs
    from llm_repair_gym.integrations.sb3 import make_sb3_vec_env

    class EnvClock(VecEnvWrapper):
        """Adds up the wall time spent inside the env's steps."""

        seconds = 0.0

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            start = time.perf_counter()
            out = self.venv.step_wait()
            EnvClock.seconds += time.perf_counter() - start
            return out

    torch.set_num_threads(spec["threads"])
    hyperparams = load_hyperparams("ppo", spec["env_id"])
    venv = EnvClock(VecMonitor(make_sb3_vec_env(spec["env_id"], spec["num_envs"], seed=spec["seed"],
                                                device=spec["device"], precision=spec["precision"], progress=False,
                                                num_threads=spec["threads"])))
    norm = normalize_kwargs(hyperparams)
    if norm is not None:
        venv = VecNormalize(venv, **{"norm_reward": False, **norm})
    model = build_model("ppo", venv, hyperparams, seed=spec["seed"], device="cpu")
    start = time.perf_counter()
    model.learn(spec["steps"])
    wall = time.perf_counter() - start
    venv.close()
    return {"algo": "ppo", "num_envs": spec["num_envs"], "steps": int(model.num_timesteps),
            "steps_per_s": model.num_timesteps / wall, "env_share": EnvClock.seconds / wall, "wall_s": wall}


def _in_subprocess(fn, spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (spec,))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N of the native sweep")
    parser.add_argument("--sync-sizes", type=int, nargs="*", default=None,
                        help="N of SyncVectorEnv over single envs (default: 8 64 on the CPU, none on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed vector steps per mix and N (at least)")
    parser.add_argument("--min-env-steps", type=int, default=256, help="timed env-steps per mix and N (at least)")
    parser.add_argument("--reset-repeats", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=8192, help="env steps of the PPO training run (0: none)")
    parser.add_argument("--train-num-envs", type=int, default=64, help="envs of the PPO training run")
    parser.add_argument("--out-dir", type=Path, default=Path("results/throughput"))
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    sizes = args.sizes or ([1, 64, 512, 1024, 4096] if gpu else [1, 8, 16, 64])
    sync_sizes = args.sync_sizes if args.sync_sizes is not None else ([] if gpu else [8, 64])
    steps = args.steps or (20 if gpu else 6)
    import torch

    base = {"env_id": args.env_id, "device": args.device, "precision": args.precision,
            "threads": args.threads or torch.get_num_threads(),
            "seed": args.seed, "reset_repeats": args.reset_repeats, "matmul_size": args.matmul_size or
            (8192 if gpu else 2048)}
    from tqdm.auto import tqdm

    jobs = [(None, False)] + [(n, False) for n in sizes] + [(n, True) for n in sync_sizes]
    rows = []
    for n, sync in tqdm(jobs, desc="configurations"):  # each times at least --min-env-steps env-steps per mix
        timed = max(steps, -(-args.min_env_steps // (n or 1)))
        rows.append(_in_subprocess(run_config, {**base, "num_envs": n, "sync": sync,
                                                "steps": max(2, timed // 2) if sync else timed}))
    peak = _in_subprocess(matmul_peak, base)
    run = None
    if args.train_steps > 0:
        run = _in_subprocess(training_run, {**base, "num_envs": args.train_num_envs, "steps": args.train_steps})
    flops = model_flops_per_step(args.env_id)
    report = _report(rows, peak, flops, base, run)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "" if args.env_id == "LLMRepair-v0" else f"{args.env_id}-"  # v0's files keep their names
    stem = f"throughput-{prefix}{args.device.replace(':', '')}-{args.precision}"
    (args.out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (args.out_dir / f"{stem}.md").write_text(report["markdown"])
    _plot(report, args.out_dir / f"{stem}.png")
    print(report["markdown"])
    print(f"-> {args.out_dir / stem}.{{json,md,png}}")
    return report


def _report(rows: list[dict], peak: dict, flops_per_step: float, base: dict, run: dict | None = None) -> dict:
    native = sorted((r for r in rows if not r["sync"] and r["num_envs"]), key=lambda r: r["num_envs"])
    sync = {r["num_envs"]: r for r in rows if r["sync"]}
    single = next(r for r in rows if r["num_envs"] is None)
    import torch

    lines = [f"device {base['device']} ({platform.processor() or platform.machine()}), precision {base['precision']}, "
             f"torch {torch.__version__}, threads {base['threads']}", "",
             "| N | train_all env-steps/s | random env-steps/s | random / train_all | reset / train_all step | "
             "ops per step | kernel launches | host syncs | model TFLOP/s (share of matmul peak) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in native:
        model = r["train_all_steps_per_s"] * flops_per_step
        r["model_flops_per_s"] = model
        r["share_of_peak"] = model / peak["matmul_flops_per_s"]
        launches = "-" if r["kernel_launches_per_step"] is None else r["kernel_launches_per_step"]
        lines.append(f"| {r['num_envs']} | {r['train_all_steps_per_s']:.1f} | {r['random_steps_per_s']:.1f} | "
                     f"{r['random_steps_per_s'] / r['train_all_steps_per_s']:.2f} | "
                     f"{r['reset_s'] / r['train_all_step_s']:.2f} | {r['ops_per_step']} | {launches} | "
                     f"{r['host_syncs_per_step']} | {model / 1e12:.3f} ({r['share_of_peak']:.0%}) |")
    lines += ["", f"single env (gym.make): {single['train_all_steps_per_s']:.1f} steps/s train_all, "
              f"{single['random_steps_per_s']:.1f} random",
              "", f"matmul peak: {peak['matmul_flops_per_s'] / 1e12:.3f} TFLOP/s ({peak['matmul_size']}^2, "
              f"{base['precision']}); model FLOPs per train_all env-step: {flops_per_step / 1e9:.2f} GFLOP"]
    if sync:
        lines += ["", "| N | mix | native env-steps/s | SyncVectorEnv env-steps/s | native / sync |",
                  "|---|---|---|---|---|"]
        by_n = {r["num_envs"]: r for r in native}
        for n, s in sorted(sync.items()):
            if n not in by_n:
                continue
            for mix in MIXES:
                a, b = by_n[n][f"{mix}_steps_per_s"], s[f"{mix}_steps_per_s"]
                lines.append(f"| {n} | {mix} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    if len(native) >= 2:
        low, high = native[0], native[-1]
        per_env = (high["peak_memory_bytes"] - low["peak_memory_bytes"]) / (high["num_envs"] - low["num_envs"])
        lines += ["", f"memory per env (marginal, N={low['num_envs']} to {high['num_envs']}): "
                  f"{per_env / 2**20:.1f} MiB; peak at N={high['num_envs']}: "
                  f"{high['peak_memory_bytes'] / 2**30:.2f} GiB"]
    else:
        per_env = None
    if run is not None:
        lines += ["", f"training run (SB3 PPO, N={run['num_envs']}, {run['steps']} env steps, learner included): "
                  f"{run['steps_per_s']:.1f} env-steps/s; the env takes {run['env_share']:.0%} of its wall time "
                  f"(100k steps: {1e5 / run['steps_per_s'] / 60:.1f} min)"]
    return {"rows": rows, "matmul": peak, "model_flops_per_train_all_step": flops_per_step,
            "memory_per_env_bytes": per_env, "training_run": run, "markdown": "\n".join(lines) + "\n"}


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    native = sorted((r for r in report["rows"] if not r["sync"] and r["num_envs"]), key=lambda r: r["num_envs"])
    sync = sorted((r for r in report["rows"] if r["sync"]), key=lambda r: r["num_envs"])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for mix, color in zip(MIXES, ("tab:blue", "tab:green")):
        ax.plot([r["num_envs"] for r in native], [r[f"{mix}_steps_per_s"] for r in native], "o-", color=color,
                label=f"native vector env, {mix}")
        if sync:
            ax.plot([r["num_envs"] for r in sync], [r[f"{mix}_steps_per_s"] for r in sync], "s--", color=color,
                    alpha=0.6, label=f"SyncVectorEnv of single envs, {mix}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("N (envs)")
    ax.set_ylabel("env-steps / s")
    ax.set_title(f"{native[0]['env_id']} throughput ({native[0]['device']}, {native[0]['precision']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
