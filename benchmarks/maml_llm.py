"""Few-shot adaptation of the language model to unseen task variants: the MAML initialization against the zoo
model, a model pretrained on the union of the meta-train variants, and a random initialization.

    python -m benchmarks.maml_llm --seed 0

Every meta-test variant (``llm_repair_gym.meta.tasks``, 32 of them, none seen in meta-training) gets K
examples per family (``--shots``, default 8 and 32) drawn from its train split, the same draw for every
initialization. Each initialization is adapted with plain gradient steps on them and scored by exact-match
accuracy on the variant's whole test split (mean over the three families) after 0-10 and 20 steps: mean
over the variants with a 95% Student-t interval. Beside it, whether the steps stay stable: each variant's
answer-token loss on its test split and on its own K examples (the loss the steps descend) at every step
count, the variants whose loss is non-finite, and those whose loss at 20 steps is above its lowest.
``--rates-only`` runs just the diagnosis of MAML's meta-learned rates: its support loss over 20 steps at the
rates as learned, with the negative ones set to zero, and halved.

Step sizes: the MAML initialization takes plain gradient steps at the per-parameter rates it meta-learned
(Meta-SGD); every other initialization gets the best of ``STEP_GRID`` for it (plain gradient steps or Adam,
several rates), chosen on 16 meta-train variants (accuracy after 5 steps at K = 8), so no baseline is held
back by a step rule picked for MAML. The MAML initialization comes from the
cache (``load_meta_init``: built on first use, about 10 minutes on 2 cores); the union model is trained on the
same draws with the same number of updates. Writes ``maml-llm-seed<s>.{json,md,png}`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import torch
from tqdm.auto import tqdm

from benchmarks.held_out_study import t_interval
from llm_repair_gym.lm.metrics import evaluate
from llm_repair_gym.lm.model import ParamLayout
from llm_repair_gym.lm.presets import get_preset
from llm_repair_gym.lm.tasks import FAMILIES, TaskSuite
from llm_repair_gym.lm.zoo import load_zoo
from llm_repair_gym.meta.initialization import MetaInitConfig, gpt2_start, lm_loss, load_meta_init, train_union
from llm_repair_gym.meta.maml import adapt_steps, losses_after
from llm_repair_gym.meta.tasks import meta_tasks, task_tables

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVAL_STEPS = (*range(11), 20)
TABLE_STEPS = (0, 1, 5, 10, 20)
BAR_STEPS = (1, 5)
STEP_GRID = tuple(("sgd", lr) for lr in (0.01, 0.03, 0.1, 0.3, 1.0)) + \
    tuple(("adam", lr) for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2))
"""(rule, rate) pairs a baseline's fine-tuning is tuned over."""
TUNE_TASKS = 16
INITS = ("maml", "zoo", "union", "random")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of the MAML and union training and of the draws")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--shots", type=int, nargs="+", default=[8, 32], help="K: examples per family")
    p.add_argument("--iterations", type=int, default=MetaInitConfig.iterations,
                   help="meta-updates of the MAML initialization (and updates of the union model)")
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=Path("results/maml_llm"))
    p.add_argument("--rates-only", action="store_true",
                   help="only the diagnosis of MAML's learned rates (support loss over 20 steps; a few minutes)")
    args = p.parse_args(argv)
    if min(args.shots) < 1 or args.iterations < 1 or args.threads < 1:
        p.error("--shots, --iterations and --threads must be >= 1")
    return args


class Adaptation:
    """The variants of one split with their tables, and accuracy after adapting on K-shot support sets."""

    def __init__(self, preset, split: str, count: int | None = None) -> None:
        self.preset, self.suite = preset, TaskSuite(preset.tasks)
        self.tasks = meta_tasks(split)[:count]
        self.facts, self.maps = task_tables(self.tasks, self.suite)
        self.layout = ParamLayout.of(preset.model)
        self.loss = lm_loss(preset.model)

    def support(self, shots: int, seed: int) -> list:
        gen = torch.Generator().manual_seed(seed)
        return [self.suite.sample(f, "train", self.facts, shots, gen, token_maps=self.maps) for f in FAMILIES]

    def measure(self, flat: torch.Tensor, support: list) -> dict[str, torch.Tensor]:
        """Every variant's exact match and answer-token loss on its whole test split ``[T, F]``, and its loss on
        its own ``support`` examples ``[T]``."""
        with torch.no_grad():
            scores = evaluate(self.layout.views(flat), self.preset.model, self.suite, "test", self.facts, self.maps)
            return {"accuracy": torch.stack([scores[f].accuracy for f in FAMILIES], 1),
                    "loss": torch.stack([scores[f].loss for f in FAMILIES], 1),
                    "support_loss": self.loss(flat, support)}

    def run(self, start: torch.Tensor, step: tuple, shots: int, seed: int,
            steps=EVAL_STEPS) -> dict[int, dict[str, torch.Tensor]]:
        """``{steps: measure(...)}`` for ``start`` (``[P]`` shared, or ``[T, P]``) adapted on each variant's
        support with ``step = (rule, rate)``: one adaptation run serves every step count."""
        start = start.expand(len(self.tasks), -1) if start.dim() == 1 else start
        rule, lr = step
        support = self.support(shots, seed)
        out = {0: self.measure(start, support)} if 0 in steps else {}
        for k, adapted in enumerate(adapt_steps(self.loss, start, support, lr, max(steps), rule=rule), start=1):
            if k in steps:
                out[k] = self.measure(adapted.detach(), support)
        return out


def tune_step(tuning: Adaptation, start: torch.Tensor, seed: int) -> tuple[tuple, dict[str, float]]:
    """The (rule, rate) of ``STEP_GRID`` with the best mean accuracy after 5 steps at K = 8 on meta-train
    variants, and every pair's score."""
    scores = {step: float(tuning.run(start, step, 8, seed, (5,))[5]["accuracy"].mean()) for step in STEP_GRID}
    best = max(scores, key=scores.get)
    return best, {f"{rule} {lr:g}": v for (rule, lr), v in scores.items()}


def starts(args: argparse.Namespace, preset, num_test: int) -> dict[str, torch.Tensor]:
    """Every initialization's flat parameters (the zoo: model ``i mod M`` for variant ``i``)."""
    meta = load_meta_init(preset, seed=args.seed, config=MetaInitConfig(iterations=args.iterations))
    zoo = load_zoo(preset, seed=args.zoo_seed)
    union = train_union(preset, seed=args.seed, config=MetaInitConfig(iterations=args.iterations))
    random = gpt2_start(preset, args.seed)
    zoo_rows = zoo.flat[torch.arange(num_test) % zoo.num_models]
    return {"maml": meta.theta, "zoo": zoo_rows, "union": union, "random": random}, meta


RISE = 1.01
"""A variant's loss "rises" when its value after the last step is above RISE x its lowest over the steps."""


def summarize(results: dict) -> dict:
    """``{init: {shots: {steps: figures}}}`` over the variants: accuracy ``(mean, half-width, per-family
    means)``, the mean test and support losses, and the variants whose loss is non-finite at that step; and
    per ``{init: {shots: ...}}`` the variants whose test or support loss rises by the last step."""
    out: dict = {}
    for name, by_shots in results.items():
        out[name] = {}
        for shots, by_steps in by_shots.items():
            row = {k: {"accuracy": (*t_interval(m["accuracy"].mean(1).tolist()), m["accuracy"].mean(0).tolist()),
                       "loss": float(m["loss"].mean()), "support_loss": float(m["support_loss"].mean()),
                       "non_finite": int((~torch.isfinite(m["loss"]).all(1) | ~torch.isfinite(m["support_loss"]))
                                         .sum())}
                   for k, m in by_steps.items()}
            for key in ("loss", "support_loss"):
                path = torch.stack([by_steps[k][key].reshape(len(by_steps[k][key]), -1).mean(1)
                                    for k in sorted(by_steps)])  # [steps, variants]
                row[f"rising_{key}"] = [i for i in range(path.shape[1])
                                        if not path[-1, i] <= RISE * path[:, i].min()]
            out[name][shots] = row
    return out


def bar_checks(summary: dict, shots_list: list[int]) -> dict[str, bool]:
    """MAML above every other initialization, intervals apart, at 1 and 5 steps for every K."""
    checks = {}
    for shots in shots_list:
        for k in BAR_STEPS:
            m, h, _ = summary["maml"][shots][k]["accuracy"]
            best_other = max(INITS[1:], key=lambda n: summary[n][shots][k]["accuracy"][0])
            o, oh, _ = summary[best_other][shots][k]["accuracy"]
            checks[f"K={shots}, {k} step(s): MAML {m:.3f} +- {h:.3f} vs {best_other} {o:.3f} +- {oh:.3f}"] = \
                m - h > o + oh
    return checks


def report(args, summary: dict, lrs: dict, checks: dict, minutes: float, meta) -> str:
    lines = [f"# Few-shot adaptation to unseen task variants ({args.preset}, seed {args.seed})", "",
             f"{len(meta_tasks('test'))} meta-test variants; exact-match accuracy on each variant's test split "
             f"(mean of the 3 families), mean +- 95% t-interval over the variants. MAML: "
             f"{meta.manifest['config']['iterations']} meta-updates (cached build "
             f"{meta.manifest['build_seconds'] / 60:.1f} min); fine-tuning: " +
             ", ".join(f"{n} {v}" for n, v in lrs.items()) + f". This run: {minutes:.1f} min.", ""]
    for shots in args.shots:
        lines += [f"## K = {shots} examples per family", "",
                  "| init | " + " | ".join(f"{k} steps" for k in TABLE_STEPS) + " | per family after 5 steps |",
                  "|---|" + "---|" * (len(TABLE_STEPS) + 1)]
        for name in INITS:
            row = summary[name][shots]
            fam = " / ".join(f"{v:.2f}" for v in row[5]["accuracy"][2])
            lines.append(f"| {name} | " + " | ".join("{:.3f} +- {:.3f}".format(*row[k]["accuracy"][:2])
                                                      for k in TABLE_STEPS) + f" | {fam} |")
        lines += ["", f"Loss per step (test split / own {shots} examples, mean over variants; `nf`: variants "
                  "with a non-finite loss):", "",
                  "| init | " + " | ".join(f"{k}" for k in EVAL_STEPS) + " | rising test / support loss |",
                  "|---|" + "---|" * (len(EVAL_STEPS) + 1)]
        for name in INITS:
            row = summary[name][shots]
            cells = [f"{row[k]['loss']:.3f} / {row[k]['support_loss']:.3f}"
                     + (f" (nf {row[k]['non_finite']})" if row[k]["non_finite"] else "") for k in EVAL_STEPS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(row['rising_loss'])} / "
                         f"{len(row['rising_support_loss'])} |")
        lines.append("")
    rates = meta.inner_lr
    lines += ["Per family: " + " / ".join(FAMILIES) + f". A loss rises when its value after {max(EVAL_STEPS)} "
              f"steps is above {RISE} x its lowest over the steps. MAML's meta-learned rates: "
              f"{int((rates < 0).sum())} of {rates.numel()} negative (those parameters step up their gradient), "
              f"from {float(rates.min()):.3g} to {float(rates.max()):.3g}.", "",
              "Bar (MAML above every other initialization, intervals apart):", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks.items()]
    return "\n".join(lines) + "\n"


def plot(args, summary: dict, path: Path) -> None:
    """Accuracy (top) and test loss (bottom) over the steps, one column per K."""
    fig, axes = plt.subplots(2, len(args.shots), figsize=(5 * len(args.shots), 6.6), squeeze=False)
    for column, shots in enumerate(args.shots):
        top, bottom = axes[0][column], axes[1][column]
        for name in INITS:
            row = summary[name][shots]
            top.errorbar(EVAL_STEPS, [row[k]["accuracy"][0] for k in EVAL_STEPS],
                         yerr=[row[k]["accuracy"][1] for k in EVAL_STEPS], marker="o", capsize=3, label=name)
            bottom.plot(EVAL_STEPS, [row[k]["loss"] for k in EVAL_STEPS], marker="o", label=name)
        top.set_title(f"K = {shots} per family")
        top.set_ylabel("test exact match (mean of families)")
        bottom.set_xlabel("gradient steps")
        bottom.set_ylabel("test answer-token loss")
        bottom.set_yscale("log")
        top.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


RATE_VARIANTS = {"as learned": lambda rates: rates, "negative rates set to 0": lambda rates: rates.clamp_min(0),
                 "halved": lambda rates: rates / 2}
DIAGNOSIS_STEPS = 20


def diagnose_rates(test: Adaptation, meta, shots: int, seed: int) -> dict[str, dict]:
    """MAML's support loss ``[steps + 1, T]`` over ``DIAGNOSIS_STEPS`` plain steps from its initialization on the
    same support sets as the main run, at its meta-learned rates, with the negative ones set to zero, and
    halved: which part of the rates makes the loss rise after the first step. Per variant of the rates: the
    mean by step, the variants whose loss at step 2 is above step 1, those whose loss goes up at any step
    after the first, and those that end above RISE x their lowest."""
    support = test.support(shots, seed)
    start = meta.theta.expand(len(test.tasks), -1)
    out = {}
    for name, rule in RATE_VARIANTS.items():
        by_step = losses_after(test.loss, start, support, support, rule(meta.inner_lr), range(DIAGNOSIS_STEPS + 1))
        losses = torch.stack([by_step[k] for k in range(DIAGNOSIS_STEPS + 1)])
        out[name] = {"mean": losses.mean(1).tolist(), "up_at_step_2": int((losses[2] > losses[1]).sum()),
                     "up_at_any_step": int((losses[2:] > losses[1:-1]).any(0).sum()),
                     "rising": int((~(losses[-1] <= RISE * losses.min(0).values)).sum()),
                     "non_finite": int((~torch.isfinite(losses)).any(0).sum())}
    return out


def rates_report(args, diagnosis: dict, meta) -> str:
    shown = (0, 1, 2, 3, 5, 10, DIAGNOSIS_STEPS)
    rates = meta.inner_lr
    lines = [f"# MAML's meta-learned rates over {DIAGNOSIS_STEPS} steps ({args.preset}, seed {args.seed})", "",
             f"Support loss (answer tokens, each variant's own K examples per family), mean over the "
             f"{len(meta_tasks('test'))} meta-test variants, plain steps from the MAML initialization; "
             f"{int((rates < 0).sum())} of {rates.numel()} learned rates are negative.", ""]
    for shots, by_rule in diagnosis.items():
        lines += [f"## K = {shots}", "", "| rates | " + " | ".join(str(k) for k in shown)
                  + " | up at step 2 | up at any step after 1 | rising by the end | non-finite |",
                  "|---|" + "---|" * (len(shown) + 4)]
        for name, row in by_rule.items():
            counts = (row["up_at_step_2"], row["up_at_any_step"], row["rising"], row["non_finite"])
            lines.append(f"| {name} | " + " | ".join(f"{row['mean'][k]:.3f}" for k in shown) + " | "
                         + " | ".join(str(c) for c in counts) + " |")
        lines.append("")
    return "\n".join(lines)


def main_rates(args: argparse.Namespace, preset, test: Adaptation) -> dict:
    meta = load_meta_init(preset, seed=args.seed, config=MetaInitConfig(iterations=args.iterations))
    diagnosis = {shots: diagnose_rates(test, meta, shots, seed=10_000 + args.seed + shots)
                 for shots in tqdm(args.shots, desc="rates")}
    text = rates_report(args, diagnosis, meta)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"maml-llm-rates-seed{args.seed}"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({str(k): v for k, v in diagnosis.items()}, indent=2))
    print(f"wrote {stem}.{{md,json}}")
    return diagnosis


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start_time = time.perf_counter()
    preset = get_preset(args.preset)
    test = Adaptation(preset, "test")
    if args.rates_only:
        return main_rates(args, preset, test)
    inits, meta = starts(args, preset, len(test.tasks))
    tuning = Adaptation(preset, "train", TUNE_TASKS)
    steps_of: dict[str, tuple] = {"maml": ("sgd", meta.inner_lr)}
    grid_scores = {}
    for name in tqdm(INITS[1:], desc="step-rule grid"):
        start = inits[name][:TUNE_TASKS] if inits[name].dim() == 2 else inits[name]
        steps_of[name], grid_scores[name] = tune_step(tuning, start, seed=args.seed + 7)
    lrs = {"maml": "sgd at the meta-learned rates", **{n: f"{r} {lr:g}" for n, (r, lr) in steps_of.items()
                                                       if n != "maml"}}
    results = {name: {} for name in INITS}
    for shots in args.shots:
        for name in tqdm(INITS, desc=f"K={shots}"):
            results[name][shots] = test.run(inits[name], steps_of[name], shots, seed=10_000 + args.seed + shots)
    summary = summarize(results)
    checks = bar_checks(summary, args.shots)
    text = report(args, summary, lrs, checks, (time.perf_counter() - start_time) / 60, meta)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"maml-llm-seed{args.seed}"
    stem.with_suffix(".md").write_text(text)
    payload = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "step_sizes": lrs, "grid": grid_scores, "checks": checks, "meta_init": meta.manifest,
               "per_variant": {n: {str(s): {str(k): {key: v.tolist() for key, v in m.items()} for k, m in by.items()}
                                   for s, by in r.items()} for n, r in results.items()},
               "summary": {n: {str(s): {str(k): v for k, v in by.items()} for s, by in r.items()}
                           for n, r in summary.items()}}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=float))
    plot(args, summary, stem.with_suffix(".png"))
    print(f"wrote {stem}.{{md,json,png}}")
    return payload


if __name__ == "__main__":
    main()
