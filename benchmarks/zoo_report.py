"""Build a preset's zoo from scratch and report per-model test accuracy, build time and the bar.

    python benchmarks/zoo_report.py --preset tiny --seed 0

The bar (issue: core): every tiny-preset model (at least 8) reaches >= 0.95 exact-match accuracy on the
test split of each family, and the whole zoo builds in under 5 minutes on a 2-core CPU. The zoo is built
into a fresh temporary cache (or ``--cache-dir``) so the time is a real build, never a cache hit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from llm_repair_gym.lm.presets import PRESETS
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.lm.zoo import load_zoo

ACCURACY_BAR = 0.95
TIME_BAR_SECONDS = 300.0
MIN_MODELS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        zoo = load_zoo(args.preset, seed=args.seed, cache_dir=args.cache_dir or scratch, device=args.device,
                       rebuild=True)
        wall = time.perf_counter() - start
    print(zoo.report())
    acc = zoo.accuracy("test")
    f1 = {f: zoo.manifest["metrics"]["test"][f]["macro_f1"] for f in FAMILIES}
    worst = {f: min(acc[f]) for f in FAMILIES}
    print(f"\nthreads={args.threads} device={args.device} wall={wall:.1f}s (training + evaluation + write)")
    print("family   min-acc  mean-acc  min-macroF1")
    for f in FAMILIES:
        print(f"{f:<7}  {worst[f]:7.4f}  {sum(acc[f]) / len(acc[f]):8.4f}  {min(f1[f]):11.4f}")
    accuracy_ok = zoo.num_models >= MIN_MODELS and min(worst.values()) >= ACCURACY_BAR
    print(f"bar: >= {MIN_MODELS} models with test accuracy >= {ACCURACY_BAR} on every family: "
          f"{'PASS' if accuracy_ok else 'FAIL'}; build < {TIME_BAR_SECONDS:.0f}s: "
          f"{'PASS' if wall < TIME_BAR_SECONDS else 'FAIL'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"preset": args.preset, "seed": args.seed, "threads": args.threads,
                                         "wall_seconds": wall, "test_accuracy": acc, "test_macro_f1": f1},
                                        indent=1))


if __name__ == "__main__":
    main()
