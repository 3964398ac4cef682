"""The leaderboard chain on the real tiny suite: suites, the runner, results files, verify, the ranked outputs."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import scipy.stats
from rliable import metrics

from llm_repair_gym.bench import verify as verify_module
from llm_repair_gym.bench.leaderboard import write_leaderboard
from llm_repair_gym.bench.plots import agent_colors
from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.bench.results import MAX_LINE_BYTES, read_many, read_results, write_results
from llm_repair_gym.bench.runner import plan_jobs, run_job, run_jobs, source_revision
from llm_repair_gym.bench.scores import aggregate, run_mean_interval, score_matrices
from llm_repair_gym.bench.verify import verify_results
from llm_repair_gym.cli import main
from llm_repair_gym.envs import suites
from llm_repair_gym.meta.tasks import meta_tasks

SUITE = "LLMRepair-Suite-v0"
CARRIED = Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard"


@pytest.fixture(scope="module")
def results(tiny_zoo, tmp_path_factory):
    """Two runs of the references and the heuristic over the test split's first 4 entries."""
    out = tmp_path_factory.mktemp("run")
    todo, done = plan_jobs(["noop", "heuristic", "oracle"], [1, 2], SUITE, "test", out, limit=4)
    assert len(todo) == 6 and not done
    run_jobs(todo, workers=2, progress=False)
    return out


def test_the_runner_command_line_defaults_to_the_repair_suite():
    from llm_repair_gym.cli import build_parser

    args = build_parser().parse_args(["run"])
    assert (args.suite, args.split, args.seeds, args.agents) == (SUITE, "test", 10, ["all"])


def test_suite_is_frozen_hashed_and_holds_a_zoo_model_out():
    suite = suites.load_suite(SUITE)
    train_models = {e.zoo_model for e in suite.entries("train")}
    test_models = {e.zoo_model for e in suite.entries("test")}
    assert test_models == {7} and 7 not in train_models and len(train_models) == 7
    assert {e.fault for e in suite.entries("test")} == {"none", "weight_noise", "label_noise", "fact_overwrite",
                                                        "forgetting", "bad_hparams"}
    assert suite.content_hash == suites.content_hash(json.loads(suites.suite_path(SUITE).read_text()))
    assert suite.episode_seeds("test", 3)[:2] == [2**40 + 3 * 10**6, 2**40 + 3 * 10**6 + 1]
    with pytest.raises(ValueError, match="splits"):
        suite.entries("validation")


def test_an_edited_suite_file_is_refused(tmp_path, monkeypatch):
    payload = json.loads(suites.suite_path(SUITE).read_text())
    payload["splits"]["test"][0]["instance"] += 1
    (tmp_path / f"{SUITE}.json").write_text(json.dumps(payload))
    monkeypatch.setattr(suites, "SUITE_DIR", tmp_path)
    monkeypatch.setattr(suites, "_LOADED", {})
    with pytest.raises(ValueError, match="content hash"):
        suites.load_suite(SUITE)


def test_training_on_a_suite_draws_only_its_train_instances(tiny_zoo):
    suite = suites.load_suite(SUITE)
    env = gym.make_vec("LLMRepair-v0", num_envs=12, suite=SUITE, progress=False)
    try:
        _, info = env.reset(seed=0)
        seen = set(info["instance"].tolist())
        for _ in range(2):
            _, _, _, _, info = env.step(np.full(12, env.unwrapped.action_names.index("stop")))
            seen |= set(info["instance"].tolist())
        assert seen <= set(suite.instance_ids("train")) and len(seen) > 12
        assert 7 not in set(info["zoo_model"].tolist())
        wrong = suites.Suite(**{**suite.__dict__, "splits": {"train": (suites.SuiteEntry(
            0, 0, 3, "none", None, 0.0),)}})
        with pytest.raises(ValueError, match="differs from the one"):
            suites.check_bank(wrong, "train", env.unwrapped)
    finally:
        env.close()
    with pytest.raises(ValueError, match="instance bank"):
        gym.make_vec("LLMRepair-v0", num_envs=1, suite=SUITE, instances="live", progress=False)


def test_runner_writes_one_complete_line_per_episode_and_resumes(results):
    records = read_results(results / "episodes" / "heuristic" / "seed2.jsonl")
    suite = suites.load_suite(SUITE)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["episode_seed"] for r in records] == suite.episode_seeds("test", 2)[:4]
    assert [r["instance"] for r in records] == suite.instance_ids("test")[:4]
    first = records[0]
    assert first["agent"] == "heuristic" and first["env_id"] == "LLMRepair-v0" and first["threads"] == 1
    assert first["git_commit"] == source_revision()
    assert first["actions"][-1] == "stop" and first["flops"] > 0 and set(first["final_accuracy"]) == {
        "syntax", "logic", "fact"}
    todo, done = plan_jobs(["heuristic", "oracle"], [1, 2], SUITE, "test", results, limit=4)
    assert not todo and len(done) == 4
    again = Path(run_job(done[0]))  # a job is deterministic: the same bytes again
    assert again.read_bytes() == (results / "episodes" / "heuristic" / "seed1.jsonl").read_bytes()


def test_a_trained_agent_gets_its_recipe_flags_once(tmp_path, monkeypatch):
    """The runner hands `llm-repair-gym train` the flags after the recipe; the command adds the recipe."""
    from llm_repair_gym.bench import runner
    from llm_repair_gym.cli import build_parser

    calls = []
    monkeypatch.setattr(runner.subprocess, "run",
                        lambda argv, **kw: calls.append(argv) or SimpleNamespace(returncode=0))
    job = runner.Job("sb3_ppo", 1, SUITE, "test", str(tmp_path))
    runner._train(job, suites.load_suite(SUITE))
    (argv,) = calls
    args = build_parser().parse_args(argv[argv.index("train"):])
    spec = registered_agents()["sb3_ppo"]
    trained_with = [*spec.script[1:], *args.arguments]
    assert trained_with.count("--algo") == 1 and trained_with[:2] == ["--algo", "ppo"]
    assert trained_with[trained_with.index("--out-dir") + 1] == str(job.train_dir)


def test_verify_replays_each_job_in_its_own_env_as_the_runner_played_it(results, monkeypatch):
    """The env batches the model work of envs that take the same action, and rounding can depend on the batch:
    an honest file must replay with the neighbours it was played with, whatever else is verified with it."""
    played = []

    def replay(suite, split, env_kwargs, records, num_envs, progress):
        played.append(sorted({(r["agent"], r["seed"]) for r in records}))
        return []

    monkeypatch.setattr(verify_module, "_replay", replay)
    assert verify_results([results / "episodes"], progress=False).ok
    assert sorted(played) == [[(agent, seed)] for agent in ("heuristic", "noop", "oracle") for seed in (1, 2)]


def test_verify_accepts_honest_results_and_names_every_forged_episode(results, tmp_path):
    assert verify_results([results / "episodes" / "heuristic" / "seed1.jsonl"], progress=False).ok
    lines = (results / "episodes" / "heuristic" / "seed1.jsonl").read_text().splitlines()
    forged = [json.loads(line) for line in lines]
    forged[0]["return"] += 0.01
    forged[1]["actions"] = forged[1]["actions"][:-1]
    forged[2]["episode_seed"] += 1
    forged[3]["package_version"] = "0.0.1"
    forged.append(json.loads(lines[3]))  # an episode twice
    hostile = json.loads(lines[0])
    hostile["seed"], hostile["agent_config"]["env_kwargs"] = 3, {"cache_dir": "/etc"}
    forged.append(hostile)
    path = tmp_path / "forged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in forged))
    report = verify_results([path], progress=False)
    text = report.text()
    assert not report.ok and len(report.failures) == 6, text
    for needle in ("entry 0 (test): return", "entry 1 (test): the replayed episode did not end",
                   "entry 2 (test): instance", "entry 3 (test): made with package 0.0.1", "appears twice",
                   "seed 3 entry 0 (test): env settings {'cache_dir': '/etc'}; agent 'heuristic' plays with {}"):
        assert needle in text
    assert main(["verify", str(path)]) == 1
    assert main(["verify", str(results / "episodes" / "noop")]) == 0


def test_explain_replays_a_results_episode_step_by_step(results, tmp_path, capsys):
    path = results / "episodes" / "heuristic" / "seed1.jsonl"
    record = read_results(path)[1]
    assert main(["explain", str(path), "--episode", "1", "--out-dir", str(tmp_path)]) == 0
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert abs(trace["return"] - record["return"]) < 1e-6 and trace["instance"] == record["instance"]
    assert [step["action"] for step in trace["steps"][1:]] == record["actions"]
    assert (tmp_path / "trace.png").stat().st_size > 0
    assert main(["explain", str(path), "--episode", "9"]) == 2
    assert "--episode must lie in [0, 4)" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"{not json\n", "line 1: not a JSON line"),
    (b"[1, 2]\n", "a record is a JSON object"),
    (b"{}\n", "missing fields"),
    (b'{"x": NaN}\n', "not a JSON line"),
    (b"", "holds no results"),
    (b" " * (MAX_LINE_BYTES + 1) + b"\n", "a line may hold at most"),
])
def test_malformed_results_files_are_refused_whole(tmp_path, content, message, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_results(path)
    assert main(["verify", str(path)]) == 2
    assert message.split(":")[-1].strip() in capsys.readouterr().err


def test_wrong_types_and_paths_are_refused(results, tmp_path):
    record = read_results(results / "episodes" / "noop" / "seed1.jsonl")[0]
    for field, value, message in (("return", "0.5", "'return' must be int or float"),
                                  ("crashed", 0, "'crashed' must be bool"), ("seed", True, "'seed' must be int"),
                                  ("actions", [], "1..1024 action names")):
        path = tmp_path / f"{field}.jsonl"
        path.write_text(json.dumps({**record, field: value}) + "\n")
        with pytest.raises(ValueError, match=message):
            read_results(path)
    with pytest.raises(ValueError, match="not a file"):
        read_results(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no \*.jsonl"):
        verify_results([empty], progress=False)


def test_leaderboard_normalizes_per_entry_and_ranks_with_intervals(results, tmp_path):
    scores, facts = score_matrices(read_many([results / "episodes"]))
    assert facts["entries"] == 4 and facts["agents"]["oracle"]["runs"] == 2
    # every agent's score, from the results files: (return - no-op's mean) / (oracle's mean - no-op's mean) per
    # entry, over the entries where the oracle gains at least 0.02 (the references' own 0 and 1 follow from any
    # such formula; the heuristic's runs and the references' run-to-run spread do not)
    raw = {agent: np.array([[r["return"] for r in sorted(read_results(results / "episodes" / agent / f"seed{s}.jsonl"),
                                                          key=lambda r: r["index"])] for s in (1, 2)])
           for agent in ("noop", "heuristic", "oracle")}
    low, high = raw["noop"].mean(0), raw["oracle"].mean(0)
    kept = high - low >= 0.02
    assert facts["normalized_entries"] == kept.sum() >= 2
    for agent, returns in raw.items():
        np.testing.assert_allclose(scores[agent], (returns[:, kept] - low[kept]) / (high - low)[kept], rtol=1e-12)
    assert not np.array_equal(scores["heuristic"][0], scores["heuristic"][1])  # two runs, two rows
    assert all(u["faults"] == ["none"] for u in facts["unscaled_entries"])
    board = write_leaderboard([results / "episodes"], tmp_path)
    assert board["ranking"][-1] == "noop" and set(board["ranking"]) == {"noop", "heuristic", "oracle"}
    iqm, mean = board["metrics"]["heuristic"]["IQM"], board["metrics"]["heuristic"]["mean"]
    assert iqm["point"] == pytest.approx(scipy.stats.trim_mean(scores["heuristic"], 0.25, axis=None), abs=1e-12)
    assert mean["point"] == pytest.approx(scores["heuristic"].mean(), abs=1e-12) != iqm["point"]
    assert iqm["ci95"][0] < iqm["point"] < iqm["ci95"][1]  # the runs differ: a proper interval around it
    assert len(board["probability_of_improvement"]) == 2
    for name in ("leaderboard.md", "leaderboard.json", "leaderboard.html", "intervals.png", "profiles.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert f"| 1 | {board['ranking'][0]} |" in (tmp_path / "leaderboard.md").read_text()
    assert board["agents_without_runs"][:2] == ["random", "tabular_q"] and "dqn_maml" not in board[
        "agents_without_runs"]  # the runner's other agents for LLMRepair-v0, named under the table
    assert "hold no runs of them): random, tabular_q, dqn," in (tmp_path / "leaderboard.md").read_text()


def test_the_html_page_renders_its_table_and_every_image_in_headless_chromium(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        why = "chromium is not installed (Debian's package: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):  # in CI the page must be rendered: a missing browser fails, never skips
            pytest.fail(f"{why}, and CI={os.environ['CI']!r} is set")
        pytest.skip(why)
    write_leaderboard([results / "episodes"], tmp_path)
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", (tmp_path / "leaderboard.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-images-loaded="2/2"' in dom
    assert dom.count("<tr>") == 4 and "<td>heuristic</td>" in dom


def test_runner_trains_an_agent_on_the_suite_and_plays_it(tiny_zoo, tmp_path):
    todo, _ = plan_jobs(["dqn"], [1], SUITE, "test", tmp_path, limit=2, total_steps=24, train_envs=2)
    run_jobs(todo, workers=1, progress=False)
    meta = json.loads((tmp_path / "train" / "dqn_seed1" / "policy.json").read_text())
    assert meta["kind"] == "dqn"
    eval_kwargs = json.loads((tmp_path / "train" / "dqn_seed1" / "eval.json").read_text())["summary"]["env_kwargs"]
    assert eval_kwargs == {"suite": SUITE}
    records = read_results(tmp_path / "episodes" / "dqn" / "seed1.jsonl")
    assert len(records) == 2 and records[0]["agent_config"]["total_steps"] == 24
    for steps, finished in ((24, 1), (32, 0)):  # another configuration is not a finished job
        assert len(plan_jobs(["dqn"], [1], SUITE, "test", tmp_path, limit=2, total_steps=steps, train_envs=2)[1]) == \
            finished
    todo, _ = plan_jobs(["noop", "oracle"], [1], SUITE, "test", tmp_path, limit=2)  # the board's references
    run_jobs(todo, workers=1, progress=False)
    board = write_leaderboard([tmp_path / "episodes"], tmp_path / "board")  # the run's train.csv gives a curve
    assert "curves.png" in board["plots"] and (tmp_path / "board" / "curves.png").stat().st_size > 0


def test_ray_runs_the_same_job_as_a_local_worker(results, tmp_path):
    pytest.importorskip("ray")
    todo, _ = plan_jobs(["heuristic"], [1], SUITE, "test", tmp_path, limit=1)
    run_jobs(todo, ray_address="local", progress=False)
    import ray

    ray.shutdown()
    local = (results / "episodes" / "heuristic" / "seed1.jsonl").read_text().splitlines()[0]  # entry 0 of 4
    assert (tmp_path / "episodes" / "heuristic" / "seed1.jsonl").read_text() == local + "\n"


def test_the_meta_suite_runs_verifies_and_ranks_against_the_heuristic(tiny_zoo, tmp_path):
    suite = suites.load_suite("LLMMetaRepair-Suite-v0")
    assert [e.task for e in suite.entries("test")] == [t["id"] for t in meta_tasks("test")]
    assert suite.make_kwargs("test") == {"preset": "tiny", "split": "test"} and suite.references == ("noop",
                                                                                                   "heuristic")
    todo, _ = plan_jobs(["noop", "heuristic", "sb3_a2c"], [1], suite.name, "test", tmp_path, limit=1, total_steps=16,
                        train_envs=2)  # an SB3 agent trains on the meta-train tasks too (one 2 x 8-step update)
    run_jobs(todo, workers=1, progress=False)
    trained = json.loads((tmp_path / "train" / "sb3_a2c_seed1" / "eval.json").read_text())["summary"]
    assert trained["agent"] == "sb3_a2c" and trained["env_kwargs"] == suite.train_kwargs() == {"split": "train"}
    records = read_results(tmp_path / "episodes" / "heuristic" / "seed1.jsonl")
    assert [r["instance"] for r in records] == [0]
    assert {r["fault"] for r in records} <= {"none", "weight_noise", "bad_hparams"}
    assert verify_results([tmp_path / "episodes"], progress=False).ok
    assert write_leaderboard([tmp_path / "episodes"], tmp_path / "board")["references"] == ["noop", "heuristic"]
    with pytest.raises(ValueError, match="do not play LLMMetaRepair-v0"):
        plan_jobs(["oracle"], [1], suite.name, "test", tmp_path)


def _first_episodes(folder: str) -> list[dict]:
    """The first episode of each agent's run 1 on a carried board."""
    sample = []
    for path in sorted((CARRIED.parent / folder / "episodes").glob("*/seed1.jsonl")):
        sample += read_results(path)[:1]
    return sample


def _needs_maml_init(record: dict) -> bool:
    """Whether replaying `record` builds the MAML initialization (about 20 minutes on one core, the first time)."""
    return record["agent_config"].get("env_kwargs", {}).get("init") == "maml"


def _assert_replays(tmp_path, records: list[dict]) -> None:
    report = verify_results([write_results(tmp_path / "sample.jsonl", records)], progress=False)
    assert report.ok, report.text()


@pytest.mark.parametrize("folder", ["leaderboard", "leaderboard-meta"])
def test_carried_leaderboards_are_what_their_results_give_and_replay(tmp_path, folder):
    """A carried leaderboard: every agent has >= 10 runs, its figures are the ones its results give, and a
    sample of its episodes (the first of each agent's run 1; the quickstart verifies a whole run) replays.
    Agents that repair from the MAML initialization are replayed by the slow test below, so that a machine
    without it cached does not build it in the default run."""
    carried = CARRIED.parent / folder
    board = json.loads((carried / "leaderboard.json").read_text())
    assert min(a["runs"] for a in board["agents"].values()) >= 10
    scores, facts = score_matrices(read_many([carried / "episodes"]))  # the figures the board was built from
    assert json.loads(json.dumps(facts["agents"])) == board["agents"]
    for agent, x in scores.items():  # the bootstrap intervals are left to the leaderboard's own test
        assert np.isclose(metrics.aggregate_iqm(x), board["metrics"][agent]["IQM"]["point"], rtol=1e-12)
        assert np.isclose(x.mean(), board["metrics"][agent]["mean"]["point"], rtol=1e-12)
    sample = _first_episodes(folder)
    assert {r["agent"] for r in sample} == set(board["agents"])
    _assert_replays(tmp_path, [r for r in sample if not _needs_maml_init(r)])
    commits = {c for a in board["agents"].values() for c in a["git_commits"]}
    assert all(len(c) == 40 and set(c) <= set("0123456789abcdef") for c in commits), commits  # none dirty


@pytest.mark.slow
def test_carried_meta_board_replays_its_maml_agents(tmp_path):
    """The meta board's agents that repair from the MAML initialization replay too (builds it if not cached)."""
    sample = [r for r in _first_episodes("leaderboard-meta") if _needs_maml_init(r)]
    assert {r["agent"] for r in sample} == {"dqn_maml"}
    _assert_replays(tmp_path, sample)


def test_results_name_the_commit_planned_and_mark_uncommitted_sources(tmp_path):
    def git(*arguments):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=tmp_path, check=True,
                       capture_output=True)

    assert source_revision(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "policy.py").write_text("A = 1\n")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "board.md").write_text("| rank |\n")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "benchmarks" / "board.md").write_text("| rank | agent |\n")  # results are not played sources
    (tmp_path / "agents" / "new.py").write_text("B = 2\n")  # nor is an untracked file
    assert source_revision(tmp_path) == head
    (tmp_path / "agents" / "policy.py").write_text("A = 2\n")
    assert source_revision(tmp_path) == f"{head}+dirty"
    todo, _ = plan_jobs(["noop"], [1, 2], SUITE, "test", tmp_path, limit=1)
    assert {j.git_commit for j in todo} == {source_revision()}  # fixed at planning, then written by run_job


def test_the_whole_run_interval_keeps_a_bad_seed_bad_on_every_entry():
    """Two runs, one perfect and one failed on all 10 entries: drawn whole, the runs' mean is 0, 0.5 or 1; rliable's
    stratified bootstrap mixes the two runs entry by entry and reports a narrower interval."""
    scores = np.vstack([np.ones(10), np.zeros(10)])
    whole = run_mean_interval(scores)
    assert whole == {"point": 0.5, "ci95": [0.0, 1.0]}
    stratified = aggregate({"agent": scores})["metrics"]["agent"]["mean"]["ci95"]
    assert 0.0 < stratified[0] < 0.5 < stratified[1] < 1.0
    # 50 runs whose run effects dominate: the whole-run bootstrap's interval is the run means' normal interval
    # (half-width 1.96 sd / sqrt(50), here 0.049; seeds 0-9 land within 0.004 of it); resampling
    # entries within runs instead would give an eighth of it. Seeded: the same seed the same interval, another
    # seed another.
    rng = np.random.default_rng(1)
    runs = rng.normal(0.5, 0.2, (50, 1)) + rng.normal(0.0, 0.05, (50, 12))
    per_run = runs.mean(1)
    half = 1.96 * per_run.std() / np.sqrt(len(per_run))
    interval = run_mean_interval(runs, seed=3)
    assert interval["point"] == pytest.approx(runs.mean(), abs=1e-12)
    assert interval["ci95"] == pytest.approx([per_run.mean() - half, per_run.mean() + half], abs=0.01)
    assert run_mean_interval(runs, seed=3) == interval != run_mean_interval(runs, seed=4)


def test_an_agent_keeps_its_colour_whatever_the_board_holds():
    every = agent_colors([*registered_agents(), "someone_else"])
    assert len(set(every.values())) == len(every)  # the runner's agents and an unknown one: all distinct
    few = agent_colors(["sb3_qrdqn", "someone_else", "noop"])  # another board, another order
    assert few == {agent: every[agent] for agent in few}


def test_an_agents_intervals_do_not_move_when_another_agent_joins():
    rng = np.random.default_rng(0)
    scores = {agent: rng.normal(mean, 0.3, (10, 12)) for agent, mean in (("a", 0.2), ("b", 0.5), ("c", 0.9))}
    alone = aggregate({"b": scores["b"]})["metrics"]["b"]
    assert aggregate(scores)["metrics"]["b"] == alone
