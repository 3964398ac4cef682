"""The package's layout: imports point down the layers, the public API and the old paths, agents from outside."""

import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import llm_repair_gym
from llm_repair_gym import _aliases

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_layers  # noqa: E402

sys.path.pop(0)


def test_every_import_points_down_the_layers():
    assert check_layers.violations(ROOT) == []
    assert check_layers.main([str(ROOT)]) == 0


@pytest.mark.parametrize("module, line, reason", [
    ("llm_repair_gym/lm/zoo.py", "from llm_repair_gym.envs.repair import LLMRepairVectorEnv", "a layer above"),
    ("llm_repair_gym/repair/faults.py", "import llm_repair_gym.meta.maml", "independent rooms"),
    ("llm_repair_gym/bench/runner.py", "from agents.heuristic import HeuristicPolicy", "entry points"),
    ("llm_repair_gym/envs/suites.py", "import llm_repair_gym", "a layer above"),
    ("agents/dqn.py", "from llm_repair_gym.bench import verify", "independent rooms"),
])
def test_the_layer_check_fails_on_an_import_that_points_up(tmp_path, module, line, reason):
    for package in check_layers.PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    broken = tmp_path / module
    broken.write_text(broken.read_text() + f"\n\ndef _late():\n    {line}\n")  # imports inside functions count
    problems = check_layers.violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(module) and reason in problems[0], problems
    assert check_layers.main([str(tmp_path)]) == 1


def test_old_flat_paths_import_the_moved_module_with_a_deprecation_warning():
    for old, new in _aliases.MOVED.items():
        sys.modules.pop(f"llm_repair_gym.{old}", None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(f"llm_repair_gym.{old}")
        real = importlib.import_module(f"llm_repair_gym.{new}")
        public = [n for n in vars(real) if not n.startswith("_")]
        assert public and all(getattr(module, n) is getattr(real, n) for n in public)  # the same objects
        assert set(public) <= set(dir(module))
        messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
        assert messages == [f"llm_repair_gym.{old} moved to llm_repair_gym.{new}; the old path stops working in 0.8"]
        assert caught[0].filename == __file__  # the warning points at the importer, not at importlib
        with pytest.raises(AttributeError):
            module.no_such_name  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("llm_repair_gym.no_such_module")


def test_names_that_moved_to_a_third_module_still_import_from_their_old_path():
    from llm_repair_gym.bench.registry import registered_agents
    from llm_repair_gym.lm import hf
    from llm_repair_gym.repair.dynamics import RepairContext

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from llm_repair_gym.dynamics import Context
        from llm_repair_gym.leaderboard import agent_colors, entry_bounds, run_mean_interval
        from llm_repair_gym.model import export_hf, from_hf, to_hf
        from llm_repair_gym.runner import AGENTS

    assert (export_hf, from_hf, to_hf) == (hf.export_hf, hf.from_hf, hf.to_hf) and Context is RepairContext
    assert agent_colors.__module__ == "llm_repair_gym.bench.plots"
    assert {entry_bounds.__module__, run_mean_interval.__module__} == {"llm_repair_gym.bench.scores"}
    assert registered_agents() == AGENTS
    for old, names in _aliases.MOVED_NAMES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(f"llm_repair_gym.{old}")
        assert all(getattr(module, name) is not None for name in names), old


def test_the_public_api_names_what_the_readme_uses():
    assert sorted(llm_repair_gym.__all__) == sorted(set(llm_repair_gym.__all__))
    for name in llm_repair_gym.__all__:
        assert getattr(llm_repair_gym, name) is not None, name
    assert (ROOT / "llm_repair_gym" / "py.typed").exists()
    from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv

    assert LLMRepairVectorEnv.step.__annotations__["return"] == "VectorStepReturn"
    assert LLMRepairEnv.step.__annotations__["return"] == "StepReturn"


def test_no_module_of_the_package_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "llm_repair_gym").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_an_agent_registered_only_by_an_installed_outside_package_plays_through_the_runner(tiny_zoo, tmp_path):
    site, source = tmp_path / "site", tmp_path / "outside_agent"  # built from a copy: the build leaves files
    shutil.copytree(ROOT / "tests" / "outside_agent", source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(source)], check=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "results"
    cli = [sys.executable, "-m", "llm_repair_gym.cli"]
    done = subprocess.run([*cli, "run", "--agents", "train_once", "--seeds", "1", "--limit", "3", "--workers", "1",
                           "--out-dir", str(out)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (out / "episodes" / "train_once" / "seed1.jsonl").read_text().splitlines()]
    assert [r["index"] for r in lines] == [0, 1, 2]
    assert all(r["actions"] == ["train_all", "stop"] and r["steps"] == 2 for r in lines)
    assert lines[0]["agent_config"]["description"] == "one train_all, then stop"
    verified = subprocess.run([*cli, "verify", str(out / "episodes")], env=env, capture_output=True, text=True)
    assert verified.returncode == 0 and "verified: all 3 episodes" in verified.stdout, verified.stdout
    unknown = subprocess.run([*cli, "run", "--agents", "train_once", "--limit", "1"], capture_output=True, text=True,
                             cwd=tmp_path)  # without the outside package on the path, the name is unknown
    assert unknown.returncode != 0 and "train_once" in unknown.stderr


def test_the_cli_shows_suites_and_trains_only_trained_agents(capsys):
    from llm_repair_gym.cli import main
    from llm_repair_gym.envs.suites import load_suite

    assert main(["suite", "show", "LLMRepair-Suite-v0"]) == 0
    assert f"hash {load_suite('LLMRepair-Suite-v0').content_hash[:16]}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # argparse refuses a reference agent before anything runs
        main(["train", "noop"])
    assert refused.value.code == 2 and "invalid choice: 'noop'" in capsys.readouterr().err
