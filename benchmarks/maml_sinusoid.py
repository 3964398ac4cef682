"""MAML against a pretrained network on the MAML paper's sinusoid regression (its Figure 3), fine-tuned for
up to ten plain gradient steps, and the curvature that decides whether those steps stay stable.

    python -m benchmarks.maml_sinusoid --seeds 1 2 3 --jobs 2

Per seed, meta-trains :class:`llm_repair_gym.meta.maml.MAML` with the paper's settings (1-40-40-1 ReLU MLP
initialised as in its code, alpha = 0.01 on K = 10 points, meta-batch 25, Adam 1e-3, second order) once per
entry of ``--inner-steps``: 1 is the paper's, 5 meta-trains through five inner steps. It also pretrains the
paper's baseline, one network fitted with Adam to the pooled points of as many tasks. Every initialization is
then fine-tuned on the same ``--eval-tasks`` held-out sinusoids at every K of ``--shots`` (one meta-trained
model serves every K, as in the paper): plain gradient steps of alpha on the K points, scored by the MSE on
100 fresh points after each of 0-10 steps. Reported per step: the mean with a 95% interval, the median, the
tasks whose MSE is non-finite and those that ended worse than they started.

Why one inner step is not enough: the one-step objective pays only for the first step, and meta-training
raises the curvature along the inner-loop directions until that step goes far. The benchmark measures it
as the *sharpness* of each task's support loss, the top eigenvalue of ``alpha * Hessian``
(:func:`llm_repair_gym.meta.maml.sharpness`): plain gradient descent at alpha is stable near a minimum only where
it is below 2. It is measured at each initialization on every held-out task, and during meta-training on a
fixed probe of 200 tasks every ``--probe-every`` updates.

The default is 30,000 meta-updates, not the paper's 70,000 (``--iterations``). Writes per seed
``maml-sinusoid-seed<s>.{json,safetensors}`` (the numbers and the trained networks) and, over all seeds,
``maml-sinusoid.{md,json,png}`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from llm_repair_gym.meta.maml import MAML, MAMLConfig, losses_after, sharpness
from llm_repair_gym.meta.sinusoid import init_mlp, mse, num_params, sample_points, sample_tasks

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVAL_STEPS = tuple(range(11))
TABLE_STEPS = (0, 1, 2, 5, 10)
QUERY_POINTS = 100
PROBE_TASKS, PROBE_SHOTS, PROBE_SEED = 200, 10, 99
STABLE = 2.0
"""Sharpness above which plain gradient descent overshoots."""
BAR = {"maml_10_at_k10": 0.35, "pretrained_over_maml_10": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10], help="K: points per held-out task")
    p.add_argument("--inner-steps", type=int, nargs="+", default=[1, 5],
                   help="one MAML per entry, meta-trained through this many inner steps (the paper: 1)")
    p.add_argument("--iterations", type=int, default=30_000,
                   help="meta-updates (and pretraining updates); the paper ran 70,000")
    p.add_argument("--meta-batch", type=int, default=25)
    p.add_argument("--train-shots", type=int, default=10, help="K during meta-training (support and query)")
    p.add_argument("--inner-lr", type=float, default=0.01, help="alpha, in meta-training and fine-tuning")
    p.add_argument("--outer-lr", type=float, default=1e-3)
    p.add_argument("--first-order", action="store_true")
    p.add_argument("--meta-sgd", action="store_true", help="learn per-parameter inner rates (fine-tuning uses them)")
    p.add_argument("--eval-tasks", type=int, default=600)
    p.add_argument("--probe-every", type=int, default=2500, help="meta-updates between sharpness probes")
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once, one torch thread each")
    p.add_argument("--out-dir", type=Path, default=Path("results/maml_sinusoid"))
    args = p.parse_args(argv)
    numbers = ("seeds", "shots", "inner_steps")
    for name in ("iterations", "meta_batch", "train_shots", "eval_tasks", "probe_every", "jobs", *numbers):
        values = getattr(args, name)
        if min(values if name in numbers else [values]) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.inner_lr > 0 or not args.outer_lr > 0:
        p.error("--inner-lr and --outer-lr must be > 0")
    for name in numbers:
        setattr(args, name, sorted(set(getattr(args, name))))
    return args


def maml_name(inner_steps: int) -> str:
    return f"maml-{inner_steps}step"


def probe_set() -> tuple:
    """The fixed tasks and support sets every meta-training run's sharpness is followed on."""
    gen = torch.Generator().manual_seed(PROBE_SEED)
    amplitude, phase = sample_tasks(PROBE_TASKS, gen)
    return sample_points(amplitude, phase, PROBE_SHOTS, gen)


def sharpness_summary(values: torch.Tensor) -> dict[str, float]:
    return {"median": float(values.median()), "p90": float(values.quantile(0.9)),
            "share_above_2": float((values > STABLE).float().mean())}


def train(args: argparse.Namespace, seed: int, kind: str, inner_steps: int = 1, progress: bool = True) -> dict:
    """One initialization of ``seed``: ``kind`` is ``"maml"`` (through ``inner_steps`` inner steps) or
    ``"pretrained"``. Returns its ``theta``, fine-tuning rate, minutes and sharpness curve."""
    torch.set_num_threads(1)
    init = init_mlp(torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    probe, curve = probe_set(), []
    start = time.perf_counter()
    if kind == "maml":
        name = maml_name(inner_steps)
        config = MAMLConfig(inner_lr=args.inner_lr, inner_steps=inner_steps, outer_lr=args.outer_lr,
                            first_order=args.first_order, meta_sgd=args.meta_sgd)
        model = MAML(mse, init, config)
        params, rate = model.theta, model.inner_lr.detach()  # Meta-SGD's rates are updated in place

        def update(support: tuple, query: tuple) -> float:
            return model.step(support, query, args.meta_batch)
    else:  # the paper's code pretrains on the support points of the same task draws
        name, params, rate = kind, torch.nn.Parameter(init.clone()), args.inner_lr
        optimizer = torch.optim.Adam([params], lr=args.outer_lr)

        def update(support: tuple, query: tuple) -> float:
            loss = mse(params[None], tuple(t.reshape(1, -1, 1) for t in support)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.item()
    bar = tqdm(range(args.iterations + 1), desc=f"{name} seed {seed}", disable=not progress, mininterval=2)
    for it in bar:
        if it % args.probe_every == 0 or it == args.iterations:
            probed = sharpness(mse, params.detach().expand(PROBE_TASKS, -1), probe, rate)
            curve.append({"iteration": it, **sharpness_summary(probed)})
        if it == args.iterations:
            break
        amplitude, phase = sample_tasks(args.meta_batch, gen)
        support = sample_points(amplitude, phase, args.train_shots, gen)
        query = sample_points(amplitude, phase, args.train_shots, gen)
        loss = update(support, query)
        if it % 500 == 0:
            bar.set_postfix(loss=f"{loss:.3f}", sharpness=f"{curve[-1]['median']:.2f}", refresh=False)
    return {"seed": seed, "name": name, "theta": params.detach().clone(),
            "lr": rate.clone() if isinstance(rate, torch.Tensor) else rate,
            "minutes": (time.perf_counter() - start) / 60, "sharpness_curve": curve}


def held_out(args: argparse.Namespace, seed: int) -> tuple[torch.Tensor, torch.Tensor, tuple, dict[int, tuple]]:
    """The held-out tasks of ``seed``, their query points and one support set per K (the same tasks for
    every K; each K's support from its own generator, so adding a K changes no other)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    amplitude, phase = sample_tasks(args.eval_tasks, gen)
    query = sample_points(amplitude, phase, QUERY_POINTS, gen)
    supports = {k: sample_points(amplitude, phase, k, torch.Generator().manual_seed(20_000 + 100 * seed + k))
                for k in args.shots}
    return amplitude, phase, query, supports


def evaluate(args: argparse.Namespace, trained: dict) -> dict:
    """``{K: figures}`` of one initialization fine-tuned on its seed's held-out tasks."""
    torch.set_num_threads(1)
    amplitude, phase, query, supports = held_out(args, trained["seed"])
    start = trained["theta"].expand(args.eval_tasks, -1)
    out = {}
    for k, support in supports.items():
        losses = losses_after(mse, start, support, query, trained["lr"], EVAL_STEPS)
        matrix = torch.stack([losses[s] for s in EVAL_STEPS]).double()  # [steps, tasks]
        finite = torch.isfinite(matrix)
        mean = matrix.mean(1)
        half = 1.96 * matrix.std(1) / math.sqrt(args.eval_tasks)
        task_sharpness = sharpness(mse, start, support, trained["lr"])
        blew_up = ~finite.all(0)
        out[k] = {
            "mean": mean.tolist(), "ci95": half.tolist(), "median": matrix.median(1).values.tolist(),
            "non_finite": (~finite).sum(1).tolist(), "worse_than_start": (matrix > matrix[0]).sum(1).tolist(),
            "sharpness": sharpness_summary(task_sharpness),
            "blown_up": [{"task": i, "amplitude": float(amplitude[i]), "phase": float(phase[i]),
                          "support_x": support[0][i, :, 0].tolist(), "sharpness": float(task_sharpness[i]),
                          "mse_by_step": matrix[:, i].tolist()}
                         for i in blew_up.nonzero().flatten().tolist()],
        }
    return out


def checks(figures: dict, shots: list[int]) -> dict[str, dict[str, bool]]:
    """The bar, per MAML row of one seed: every mean finite, no non-finite task, the mean non-increasing from
    1 to 10 steps (each K); MAML <= 0.35 after 10 steps at K = 10; pretrained >= 3x MAML after 10 steps."""
    out = {}
    for name, by_k in figures.items():
        if not name.startswith("maml"):
            continue
        row = {}
        for k in shots:
            mean = by_k[k]["mean"]
            row[f"K={k}: every mean finite, no non-finite task"] = (
                all(math.isfinite(m) for m in mean) and sum(by_k[k]["non_finite"]) == 0)
            row[f"K={k}: mean non-increasing from 1 to 10 steps"] = all(b <= a for a, b in zip(mean[1:], mean[2:]))
            row[f"K={k}: pretrained >= {BAR['pretrained_over_maml_10']}x after 10 steps"] = (
                figures["pretrained"][k]["mean"][10] >= BAR["pretrained_over_maml_10"] * mean[10])
            if k == 10:
                row[f"K=10: <= {BAR['maml_10_at_k10']} after 10 steps"] = mean[10] <= BAR["maml_10_at_k10"]
        out[name] = row
    return out


def run_job(job: tuple) -> dict:
    args, seed, kind, inner_steps, progress = job
    trained = train(args, seed, kind, inner_steps, progress)
    trained["figures"] = evaluate(args, trained)
    return trained


def _cell(mean: float, half: float, non_finite: int) -> str:
    text = f"{mean:.3f} +- {half:.3f}" if math.isfinite(mean) else f"**{mean}**"
    return text + (f" [{non_finite} non-finite]" if non_finite else "")


def report(args: argparse.Namespace, runs: dict, bar: dict) -> str:
    """``runs[seed][name]``: the trained record with its figures."""
    names = list(next(iter(runs.values())).keys())
    lines = [f"# MAML vs pretrained, sinusoid regression, fine-tuned for up to 10 steps of {args.inner_lr}", "",
             f"{args.iterations} meta-updates, meta-batch {args.meta_batch}, K = {args.train_shots} in "
             f"meta-training, {'first' if args.first_order else 'second'}-order"
             f"{', Meta-SGD' if args.meta_sgd else ''}; `maml-Nstep` is meta-trained through N inner steps. "
             f"MSE on {QUERY_POINTS} points of {args.eval_tasks} held-out tasks per seed, mean +- 95% CI "
             f"[tasks whose MSE is inf or NaN at that step, where any]; sharpness: top eigenvalue of "
             f"alpha * Hessian of the support loss at the initialization (gradient descent at alpha overshoots "
             f"above 2), median and share of tasks above 2.", ""]
    for k in args.shots:
        lines += [f"## K = {k}", "",
                  "| init | seed | " + " | ".join(f"{s} step{'s' if s != 1 else ''}" for s in TABLE_STEPS)
                  + " | non-finite (most at any step) | worse than start at 10 | sharpness (share > 2) |",
                  "|---|---|" + "---|" * (len(TABLE_STEPS) + 3)]
        for name in names:
            for seed, by_name in runs.items():
                f = by_name[name]["figures"][k]
                sharp = f["sharpness"]
                cells = " | ".join(_cell(f["mean"][s], f["ci95"][s], f["non_finite"][s]) for s in TABLE_STEPS)
                lines.append(f"| {name} | {seed} | {cells} | {max(f['non_finite'][1:])} | "
                             f"{f['worse_than_start'][10]} | {sharp['median']:.2f} ({sharp['share_above_2']:.0%}) |")
        lines.append("")
    lines += ["## Sharpness during meta-training (probe: 200 tasks, K = 10; median)", "",
              "| init | seed | " + " | ".join(str(p["iteration"]) for p in
                                            next(iter(runs.values()))[names[0]]["sharpness_curve"]) + " |",
              "|---|---|" + "---|" * len(next(iter(runs.values()))[names[0]]["sharpness_curve"])]
    for name in names:
        for seed, by_name in runs.items():
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{p['median']:.2f}"
                                                            for p in by_name[name]["sharpness_curve"]) + " |")
    lines += ["", "## Tasks whose fine-tuning went non-finite", ""]
    for name in names:
        for seed, by_name in runs.items():
            for k in args.shots:
                for task in by_name[name]["figures"][k]["blown_up"]:
                    path = ", ".join(f"{v:.3g}" for v in task["mse_by_step"])
                    support = ", ".join(f"{x:.1f}" for x in sorted(task["support_x"]))
                    lines.append(f"- {name}, seed {seed}, K = {k}, task {task['task']}: amplitude "
                                 f"{task['amplitude']:.2f}, phase {task['phase']:.2f}, support x [{support}], "
                                 f"sharpness {task['sharpness']:.2f}; MSE by step: {path}")
    lines += ["", "## Bar", ""]
    for seed, by_name in bar.items():
        for name, row in by_name.items():
            lines.append(f"- seed {seed}, {name}: " + "; ".join(f"{text}: {'PASS' if ok else 'FAIL'}"
                                                                 for text, ok in row.items()))
    return "\n".join(lines) + "\n"


def plot(args: argparse.Namespace, runs: dict, path: Path) -> None:
    """One panel per K (mean MSE over steps, a line per init and seed; non-finite means marked at the top)
    and one panel of the median sharpness during meta-training."""
    names = list(next(iter(runs.values())).keys())
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(args.shots) + 1, figsize=(4.6 * (len(args.shots) + 1), 3.6))
    for ax, k in zip(axes, args.shots):
        ceiling = 3 * max(rec["figures"][k]["mean"][0] for by_name in runs.values() for rec in by_name.values())
        for name in names:
            for i, by_name in enumerate(runs.values()):
                mean = np.array(by_name[name]["figures"][k]["mean"])
                ok = np.isfinite(mean) & (mean <= ceiling)
                ax.plot(np.array(EVAL_STEPS)[ok], mean[ok], color=colors[name], marker=".", alpha=0.8,
                        label=name if i == 0 else None)
                if not ok.all():
                    ax.scatter(np.array(EVAL_STEPS)[~ok], [ceiling] * int((~ok).sum()), color=colors[name],
                               marker="x", label=f"{name}: mean off the scale or non-finite")
        ax.set_yscale("log")
        ax.set_ylim(top=ceiling * 1.5)
        ax.set_xlabel(f"gradient steps of {args.inner_lr} on the K points")
        ax.set_ylabel(f"mean MSE on {QUERY_POINTS} held-out points")
        ax.set_title(f"K = {k} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.legend(fontsize=7)
    ax = axes[-1]
    for name in names:
        for i, by_name in enumerate(runs.values()):
            curve = by_name[name]["sharpness_curve"]
            ax.plot([p["iteration"] for p in curve], [p["median"] for p in curve], color=colors[name],
                    label=name if i == 0 else None)
    ax.axhline(STABLE, color="black", linestyle=":", label="2: gradient descent overshoots")
    ax.set_xlabel("meta-updates")
    ax.set_ylabel("median sharpness (alpha x top eigenvalue)")
    ax.set_title("curvature the fine-tuning meets")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    jobs = [(args, seed, "maml", steps, args.jobs == 1) for seed in args.seeds for steps in args.inner_steps]
    jobs += [(args, seed, "pretrained", 1, args.jobs == 1) for seed in args.seeds]
    jobs.sort(key=lambda job: -job[3])  # the longest trainings first, so the workers finish together
    if args.jobs == 1:
        done = [run_job(job) for job in jobs]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(tqdm(pool.map(run_job, jobs), total=len(jobs), desc="trainings"))
    order = [maml_name(s) for s in args.inner_steps] + ["pretrained"]
    runs = {seed: {name: next(r for r in done if r["seed"] == seed and r["name"] == name) for name in order}
            for seed in args.seeds}
    bar = {seed: checks({name: rec["figures"] for name, rec in by_name.items()}, args.shots)
           for seed, by_name in runs.items()}
    text = report(args, runs, bar)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / "maml-sinusoid"
    stem.with_suffix(".md").write_text(text)
    plot(args, runs, stem.with_suffix(".png"))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    for seed, by_name in runs.items():
        record = {"args": settings, "seed": seed, "params": num_params(), "bar": bar[seed],
                  "inits": {name: {"minutes": rec["minutes"], "sharpness_curve": rec["sharpness_curve"],
                                   "figures": {str(k): f for k, f in rec["figures"].items()}}
                            for name, rec in by_name.items()}}
        (args.out_dir / f"maml-sinusoid-seed{seed}.json").write_text(json.dumps(record, indent=2))
        tensors = {name: rec["theta"].contiguous() for name, rec in by_name.items()}
        tensors |= {f"{name}_inner_lr": rec["lr"].contiguous() for name, rec in by_name.items()
                    if isinstance(rec["lr"], torch.Tensor)}
        save_file(tensors, str(args.out_dir / f"maml-sinusoid-seed{seed}.safetensors"))
    summary = {"args": settings, "bar": {str(s): b for s, b in bar.items()},
               "passed": {name: all(all(b[name].values()) for b in bar.values()) for name in order if name in
                          next(iter(bar.values()))}}
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {stem}.{{md,json,png}} and maml-sinusoid-seed<s>.{{json,safetensors}}")
    return {"runs": runs, "bar": bar}


if __name__ == "__main__":
    main()
