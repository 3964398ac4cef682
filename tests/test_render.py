"""Render modes of every env (ansi, rgb_array, Gymnasium's video and human wrappers) and explain_episode."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.bench.explain import explain_episode
from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.testing import micro_env_kwargs as micro_env_kwargs_for

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def micro(micro_env_kwargs):
    return micro_env_kwargs


def test_ansi_has_the_start_line_then_one_line_per_step(micro):
    env = gym.make("LLMRepair-v0", render_mode="ansi", max_episode_steps=3, **micro)
    assert env.unwrapped.render_mode == "ansi" and env.spec.max_episode_steps == 3
    _, info = env.reset(seed=4)
    taken = ["train_all", "lr_down", "train_fact"]
    for name in taken:
        _, _, terminated, truncated, _ = env.step(env.unwrapped.action_names.index(name))
    assert truncated and not terminated  # make's TimeLimit, from max_episode_steps
    lines = env.render().splitlines()
    assert len(lines) == 1 + len(taken)
    assert "reset" in lines[0] and f"instance {info['instance']}" in lines[0] and "fault" not in lines[0]
    for line, name in zip(lines[1:], taken):
        assert name in line and "cost" in line and "reward" in line
    assert all(f in line for f in FAMILIES for line in lines)


@pytest.mark.parametrize("env_id", ["LLMRepair-v0", "LLMMetaRepair-v0"])
def test_rgb_array_frames_keep_shape_and_dtype_across_steps_and_episodes(micro, env_id):
    kwargs = micro if env_id == "LLMRepair-v0" else micro_env_kwargs_for(micro["cache_dir"], env_id)
    env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=2, **kwargs)
    frames = []
    for seed in (0, 1):
        env.reset(seed=seed)
        frames.append(env.render())
        for action in (0, 1):
            env.step(action)
            frames.append(env.render())
    assert {(f.shape, f.dtype) for f in frames} == {((480, 640, 3), np.dtype(np.uint8))}
    assert not np.array_equal(frames[0], frames[2])  # the plot grows with the episode


def test_checker_passes_with_a_render_mode(micro):
    env = gym.make("LLMRepair-v0", render_mode="rgb_array", **micro)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # renders this env, and a new env in every declared render mode
    assert not [str(w.message) for w in caught if "render" in str(w.message).lower()]


def test_vector_render_gives_one_frame_per_env_and_autoresets_start_fresh_traces(micro):
    env = gym.make_vec("LLMRepair-v0", num_envs=3, render_mode="ansi", max_episode_steps=2, **micro)
    env.reset(seed=0)
    stop = env.action_names.index("stop")
    env.step(np.array([0, stop, 1]))  # env 1 ends: SAME_STEP resets it in this step
    frames = env.render()
    assert isinstance(frames, tuple) and [len(f.splitlines()) for f in frames] == [2, 1, 2]
    _, reward, _, truncated, _ = env.step(np.array([0, 0, 0]))  # envs 0 and 2 are truncated
    assert [len(f.splitlines()) for f in env.render()] == [1, 2, 1] and truncated[0] and reward[0] != 0
    start = env._traces[0].steps[0]  # the ended episode's last reward and cost are not the new one's
    assert (start.action, start.reward, start.cost) == (None, 0.0, 0.0)
    images = gym.make_vec("LLMRepair-v0", num_envs=2, render_mode="rgb_array", **micro)
    images.reset(seed=0)
    assert [f.shape for f in images.render()] == [(480, 640, 3)] * 2


def test_reset_mask_fork_and_set_state_trace(micro):
    env = LLMRepairVectorEnv(num_envs=2, autoreset_mode="Disabled", render_mode="ansi", max_episode_steps=2, **micro)
    env.reset(seed=0)
    env.step(np.array([0, 1]))
    state, fork = env.get_state(), env.fork()
    env.step(np.array([1, 0]))  # both truncated
    env.reset(options={"reset_mask": np.array([True, False])})
    frames = env.render()
    assert [len(f.splitlines()) for f in frames] == [1, 3] and "train_syntax" in frames[1]
    assert [len(f.splitlines()) for f in fork.render()] == [2, 2]  # the fork kept its own traces
    env.set_state(state)
    assert all(f.splitlines()[0].split()[2] == "restored" and len(f.splitlines()) == 1 for f in env.render())


def test_bad_render_mode_is_refused_with_the_allowed_values(micro):
    for make in (lambda: LLMRepairEnv(render_mode="video", **micro),
                 lambda: gym.make_vec("LLMRepair-v0", num_envs=2, render_mode="rgb", **micro)):
        with pytest.raises(ValueError, match=r"render_mode must be None or one of \['ansi', 'rgb_array'\]"):
            make()


def test_record_video_writes_a_video(micro, tmp_path):
    pytest.importorskip("moviepy")
    env = gym.wrappers.RecordVideo(gym.make("LLMRepair-v0", render_mode="rgb_array", max_episode_steps=3, **micro),
                                   str(tmp_path / "videos"), episode_trigger=lambda episode: True)
    env.reset(seed=0)
    truncated = False
    while not truncated:
        _, _, _, truncated, _ = env.step(0)
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert videos and all(v.stat().st_size > 0 for v in videos)


@pytest.mark.filterwarnings("ignore:.*The HumanRendering wrapper is being applied")
def test_human_rendering_steps_on_a_dummy_display(micro, monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make("LLMRepair-v0", render_mode="human", max_episode_steps=2, **micro)  # HumanRendering wraps it
    assert isinstance(env, gym.wrappers.HumanRendering) and env.render_mode == "human"
    env.reset(seed=0)
    env.step(0)
    env.step(1)
    env.close()


def test_explain_episode_writes_the_trace_the_env_gives(micro, tmp_path):
    actions = ["train_all", "lr_down", "stop"]
    out = explain_episode("LLMRepair-v0", micro, seed=5, instance=-1, actions=actions, out_dir=tmp_path / "ex")
    assert json.loads((tmp_path / "ex" / "trace.json").read_text()) == out
    assert (tmp_path / "ex" / "trace.png").stat().st_size > 0
    env = gym.make_vec("LLMRepair-v0", num_envs=1, autoreset_mode="Disabled", **micro)
    _, info = env.reset(seed=[5])
    assert out["instance"] == info["instance"][0] and out["env_id"] == "LLMRepair-v0" and out["seed"] == 5
    expected, rewards = [info], []
    for name in actions:
        _, reward, _, _, info = env.step(np.array([env.action_names.index(name)]))
        expected.append(info)
        rewards.append(float(reward[0]))
    assert [s["action"] for s in out["steps"]] == [None, *actions]
    for step, info in zip(out["steps"], expected):
        assert step["accuracy"] == {f: float(info["accuracy"][f][0]) for f in FAMILIES}
        assert set(step["layer_features"]) == set(env.group_names)
        assert set(step["layer_features"]["block0"]) == {"log_grad_norm", "log_weight_rms"}
    costs = [float(i["cost"][0]) for i in expected[1:]]
    # rewards, return and costs against the fresh env's own (the trace's return is also the sum of the trace's
    # rewards, so comparing those two checks nothing)
    assert [s["cost"] for s in out["steps"][1:]] == costs
    assert [s["reward"] for s in out["steps"]] == [0.0, *rewards] and any(r != 0 for r in rewards)
    assert out["return"] == pytest.approx(sum(rewards), abs=1e-12)
    assert [s["cumulative_cost"] for s in out["steps"]] == pytest.approx(np.cumsum([0.0, *costs]), abs=1e-12)
    assert out["terminated"]


@pytest.mark.parametrize("actions, message", [
    (["train_all", "mend_it", "stop"], "step 2: unknown action 'mend_it'"),
    (["train_all", "stop", "train_all"], r"step 3 \('train_all'\): the episode already ended at step 2"),
    (["train_all"], "step 2: the actions ran out"),
])
def test_explain_episode_refuses_actions_that_do_not_fit_the_episode(micro, tmp_path, actions, message):
    with pytest.raises(ValueError, match=message):
        explain_episode("LLMRepair-v0", micro, seed=0, instance=2, actions=actions, out_dir=tmp_path / "ex")
    assert not (tmp_path / "ex").exists()
