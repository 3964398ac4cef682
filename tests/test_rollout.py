"""The one rollout loop every learner uses (:mod:`llm_repair_gym.rl.rollout`), against envs whose episodes are
known in advance: a scripted env written here (episode lengths, rewards and observations fixed), CartPole
replayed by hand, and the micro LLMRepair env (numpy and device-tensor outputs).

The scripted env's observation is ``(env index, episode, t)``, so a transition says where it comes from: an
episode's true last observation has ``t`` equal to its length, the next episode's first has ``t = 0``.
"""

import csv

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.rl.rollout import Rollout, as_vector_env, autoreset_mode, final_observations

LENGTHS = {0: (3, 1, 2), 1: (2, 4)}
"""Episode ``e`` of scripted env ``i`` lasts ``LENGTHS[i][e % len(LENGTHS[i])]`` steps."""

MODES = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP)


class Scripted(gym.Env):
    """Episodes of known lengths; step ``t -> t + 1`` with action ``a`` of episode ``e`` pays
    ``100 i + 10 e + (t + 1) + a / 2``; even episodes end terminated, odd ones truncated."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, index: int = 0) -> None:
        self.index, self.episode, self.t = index, -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.index, self.episode, self.t], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action):
        reward = 100 * self.index + 10 * self.episode + self.t + 1 + int(action) / 2
        self.t += 1
        lengths = LENGTHS[self.index]
        end = self.t == lengths[self.episode % len(lengths)]
        return self._obs(), reward, end and self.episode % 2 == 0, end and self.episode % 2 == 1, {}


def act(obs, info):
    """Action ``t mod 2``: actions vary within an episode, so a misplaced transition shows in its reward."""
    return (np.asarray(obs)[:, 2] % 2).astype(np.int64)


def expected_transitions(index: int, count: int) -> list[tuple]:
    """Scripted env ``index``'s first ``count`` transitions ``(obs, action, reward, next_obs, terminated,
    truncated)``, written out from the script."""
    out, episode = [], 0
    lengths = LENGTHS[index]
    while len(out) < count:
        length = lengths[episode % len(lengths)]
        for t in range(length):
            end = t + 1 == length
            out.append(((index, episode, t), t % 2, 100 * index + 10 * episode + t + 1 + (t % 2) / 2,
                        (index, episode, t + 1), end and episode % 2 == 0, end and episode % 2 == 1))
        episode += 1
    return out[:count]


def vector_env(mode: AutoresetMode, num_envs: int = 2) -> SyncVectorEnv:
    return SyncVectorEnv([lambda i=i: Scripted(i) for i in range(num_envs)], autoreset_mode=mode)


def play(rollout: Rollout, policy=act) -> tuple[list, dict[int, list[tuple]]]:
    """Every step the rollout yields, and each env's real transitions as plain tuples."""
    steps, seen = [], {i: [] for i in range(rollout.env.num_envs)}
    with rollout:
        for step in rollout.play(policy):
            steps.append(step)
            for i in np.flatnonzero(step.real):
                seen[i].append((tuple(step.obs[i].tolist()), int(step.actions[i]), float(step.rewards[i]),
                                tuple(step.next_obs[i].tolist()), bool(step.terminated[i]),
                                bool(step.truncated[i])))
    return steps, seen


def test_a_single_env_is_played_as_a_one_env_same_step_vector_env():
    rollout = Rollout(Scripted(0), total_steps=9)
    assert isinstance(rollout.env, gym.vector.VectorEnv) and rollout.env.num_envs == 1
    assert autoreset_mode(rollout.env) is AutoresetMode.SAME_STEP
    vec = vector_env(AutoresetMode.NEXT_STEP)
    assert as_vector_env(vec) is vec
    steps, seen = play(rollout)
    assert len(steps) == 9 and rollout.steps == 9
    assert seen[0] == expected_transitions(0, 9)
    assert rollout.episode_returns == [6.5, 11.0, 43.5, 96.5]


def test_an_env_with_autoreset_disabled_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="autoreset DISABLED are not supported; use NEXT_STEP or SAME_STEP"):
        Rollout(vector_env(AutoresetMode.DISABLED), total_steps=4)
    with pytest.raises(RuntimeError, match="inside `with rollout:`"):
        next(Rollout(vector_env(AutoresetMode.SAME_STEP), total_steps=4).play(act))


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_the_learner_sees_the_envs_real_transitions_and_reset_only_steps_are_not_real(mode):
    steps, seen = play(Rollout(vector_env(mode), total_steps=10))
    # Both modes: env 0 plays 3 + 1 + 1 steps; env 1 plays 2 + 3 (SAME_STEP) or 2 + 4 (NEXT_STEP, one more
    # vector step, as its reset-only steps are not counted).
    assert seen[0] == expected_transitions(0, 5)
    assert seen[1] == expected_transitions(1, 5 if mode is AutoresetMode.SAME_STEP else 6)
    real = np.array([s.real for s in steps])
    if mode is AutoresetMode.SAME_STEP:
        assert real.all() and len(steps) == 5
    else:  # the step after each episode end only resets that env: env 1 at vector step 3, env 0 at 4 and 6
        np.testing.assert_array_equal(np.argwhere(~real), [[2, 1], [3, 0], [5, 0]])
        assert len(steps) == 7
    for step in steps:
        assert step.count == step.real.sum()
        np.testing.assert_array_equal(step.done, step.terminated | step.truncated)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_next_obs_at_an_episode_end_is_its_true_last_observation(mode):
    steps, _ = play(Rollout(vector_env(mode), total_steps=10))
    ends = []
    for k, step in enumerate(steps):
        for i in np.flatnonzero(step.real & step.done):
            ends.append((k + 1, i))
            index, episode, t = step.next_obs[i]
            lengths = LENGTHS[i]
            assert (index, t) == (i, lengths[int(episode) % len(lengths)]), "a reset obs in place of the last"
    assert ends == ([(2, 1), (3, 0), (4, 0)] if mode is AutoresetMode.SAME_STEP else
                    [(2, 1), (3, 0), (5, 0), (7, 1)])
    for step, after in zip(steps, steps[1:]):
        for i in range(2):
            # The next action starts a new episode exactly where the env says so (its obs has t = 0 and is real),
            # and is chosen on the new episode's first obs (SAME_STEP) or on the last one, only to reset.
            assert step.new_episodes[i] == (after.obs[i][2] == 0 and after.real[i])
            if step.done[i]:
                episode = step.next_obs[i][1]
                assert after.obs[i][1] == episode + (mode is AutoresetMode.SAME_STEP)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_episode_returns_and_lengths_are_the_envs_own(mode, tmp_path):
    rollout = Rollout(vector_env(mode), total_steps=10, log_path=tmp_path / "train.csv")
    play(rollout)
    # Returns written out from the script: env 1's episode 0 (2 steps), env 0's episodes 0 and 1 (3 and 1
    # steps), and under NEXT_STEP also env 1's episode 1 (4 steps).
    if mode is AutoresetMode.SAME_STEP:
        returns, lengths = [203.5, 6.5, 11.0], [2, 3, 1]
    else:
        returns, lengths = [203.5, 6.5, 11.0, 451.0], [2, 3, 1, 4]
    assert rollout.episode_returns == returns
    rows = list(csv.reader((tmp_path / "train.csv").open()))
    assert [int(r[2]) for r in rows if r[1] == "episodic_length"] == lengths


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_the_step_count_honours_total_steps(mode):
    for total_steps in (1, 2, 7, 10):
        rollout = Rollout(vector_env(mode), total_steps=total_steps)
        steps, seen = play(rollout)
        # Environment steps are real transitions; a vector step plays up to num_envs of them, so the rollout
        # stops at the first count that reaches total_steps.
        assert rollout.steps == sum(len(t) for t in seen.values()) == sum(s.count for s in steps)
        assert total_steps <= rollout.steps < total_steps + 2
        assert sum(s.count for s in steps[:-1]) < total_steps
    one = Rollout(SyncVectorEnv([Scripted], autoreset_mode=mode), total_steps=9)
    play(one)
    assert one.steps == 9
    stopped = Rollout(vector_env(mode), total_steps=100)
    with stopped:
        for k, _ in enumerate(stopped.play(act)):  # the learner stops after 3 vector steps
            if k == 2:
                break
    played = 6 if mode is AutoresetMode.SAME_STEP else 5  # NEXT_STEP: env 1 only resets on vector step 3
    assert stopped.steps == played and stopped.global_step == played


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_the_training_log_holds_each_return_at_the_global_step_it_finished_on(mode, tmp_path):
    path = tmp_path / "train.csv"
    rollout = Rollout(vector_env(mode), total_steps=10, log_path=path, first_step=100)
    with rollout:
        for _ in rollout.play(act):
            rollout.log.scalar(rollout.global_step, "loss", 0.25)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["global_step", "metric", "value"]
    returns = [(int(r[0]), float(r[2])) for r in rows if r[1] == "episodic_return"]
    lengths = [int(r[0]) for r in rows if r[1] == "episodic_length"]
    if mode is AutoresetMode.SAME_STEP:  # vector steps 2, 3, 4 of two real transitions each
        assert returns == [(104, 203.5), (106, 6.5), (108, 11.0)]
    else:  # vector steps 3, 4, 6 play one real transition: steps 2, 4, 5, 6, 8, 9, 11
        assert returns == [(104, 203.5), (105, 6.5), (108, 11.0), (111, 451.0)]
    assert lengths == [s for s, _ in returns]
    assert rollout.global_step == 100 + rollout.steps
    assert [int(r[0]) for r in rows if r[1] == "loss"][-1] == rollout.global_step


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_cartpole_transitions_are_those_of_cartpole_played_by_hand(mode):
    def lean(obs, info):
        return (np.asarray(obs)[:, 2] > 0).astype(np.int64)

    env = SyncVectorEnv([lambda: gym.make("CartPole-v1", max_episode_steps=12)], autoreset_mode=mode)
    rollout = Rollout(env, total_steps=60, seed=7)
    _, seen = play(rollout, lean)
    twin = gym.make("CartPole-v1", max_episode_steps=12)
    obs, _ = twin.reset(seed=7)
    expected, returns, episode_return = [], [], 0.0
    while len(expected) < 60:
        action = int(obs[2] > 0)
        next_obs, reward, terminated, truncated, _ = twin.step(action)
        expected.append((tuple(obs.tolist()), action, float(reward), tuple(next_obs.tolist()), terminated, truncated))
        episode_return += reward
        obs = next_obs
        if terminated or truncated:
            returns.append(episode_return)
            obs, episode_return = twin.reset()[0], 0.0
    assert seen[0] == expected
    assert rollout.episode_returns == returns and len(returns) >= 4


def test_final_observations_replaces_only_the_done_envs_observations():
    torch = pytest.importorskip("torch")
    next_obs, done = np.arange(6.0).reshape(3, 2), np.array([False, True, False])
    info = {"final_obs": np.array([None, np.array([-1.0, -2.0]), None], dtype=object),
            "_final_obs": done}
    np.testing.assert_array_equal(final_observations(next_obs, done, info), [[0, 1], [-1, -2], [4, 5]])
    assert next_obs[1, 0] == 2.0  # the env's own array is left alone
    tensor_info = {"final_obs": torch.full((3, 2), -9.0), "_final_obs": done}
    out = final_observations(torch.as_tensor(next_obs), done, tensor_info)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), [[0, 1], [-9, -9], [4, 5]])


def test_micro_llmrepair_episodes_end_on_their_true_last_observation_with_numpy_and_torch_outputs(
        micro_env_kwargs, single_torch_thread):
    """LLMRepair's SAME_STEP vector env: env 0 trains until truncated at 3 steps, env 1 stops on its second."""
    with pytest.raises(ValueError, match="DISABLED"):
        Rollout(LLMRepairVectorEnv(num_envs=2, autoreset_mode="Disabled", **micro_env_kwargs), total_steps=4)
    plays = {}
    for output in ("numpy", "torch"):
        env = LLMRepairVectorEnv(num_envs=2, max_episode_steps=3, output=output, **micro_env_kwargs)
        used = env.feature_names.index("steps_used")
        train, stop = env.action_names.index("train_all"), env.action_names.index("stop")

        def policy(obs, info, used=used, train=train, stop=stop):
            return np.array([train, stop if float(obs[1, used]) > 0 else train])

        rollout = Rollout(env, total_steps=12, seed=3)
        steps, _ = play(rollout, policy)
        obs = np.array([np.asarray(s.obs.cpu() if output == "torch" else s.obs) for s in steps])
        next_obs = np.array([np.asarray(s.next_obs.cpu() if output == "torch" else s.next_obs) for s in steps])
        rewards, done = np.array([s.rewards for s in steps]), np.array([s.done for s in steps])
        terminated = np.array([s.terminated for s in steps])
        assert len(steps) == 6 and rollout.steps == 12 and np.array([s.real for s in steps]).all()
        # Env 0 is truncated at vector steps 3 and 6, env 1 stops (terminates) at 2, 4 and 6.
        np.testing.assert_array_equal(np.argwhere(done), [[1, 1], [2, 0], [3, 1], [5, 0], [5, 1]])
        np.testing.assert_array_equal(terminated[:, 1], done[:, 1])
        assert not terminated[:, 0].any()
        # At an end, next_obs is the episode's last observation (its step budget used 3/3 or 2/3); the next
        # action is chosen on the new episode's first (none used); elsewhere next_obs is the next obs.
        for k in range(5):
            for i in range(2):
                if done[k, i]:
                    assert next_obs[k, i, used] == pytest.approx((3, 2)[i] / 3)
                    assert obs[k + 1, i, used] == 0
                else:
                    np.testing.assert_array_equal(next_obs[k, i], obs[k + 1, i])
        sums = [rewards[0:2, 1].sum(), rewards[0:3, 0].sum(), rewards[2:4, 1].sum(), rewards[3:6, 0].sum(),
                rewards[4:6, 1].sum()]  # episodes in order of finishing (env 0 before env 1 on a shared step)
        assert rollout.episode_returns == pytest.approx(sums, abs=1e-6)
        plays[output] = obs, next_obs, rewards
    for numpy_out, torch_out in zip(plays["numpy"], plays["torch"]):
        np.testing.assert_allclose(torch_out, numpy_out, rtol=0, atol=1e-6)
