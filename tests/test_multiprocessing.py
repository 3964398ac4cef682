"""Workers in other processes: Gymnasium's AsyncVectorEnv (fork, spawn, forkserver) and SB3's SubprocVecEnv
run LLMRepair-v0 with 2 and 4 workers on the micro settings without hanging. Each case runs in a fresh
interpreter under a timeout, so a hang fails the test instead of stalling the suite."""

import subprocess
import sys

import pytest

# The parent builds and steps an env first, which starts torch's OpenMP pool: the state that used to make
# forked workers hang.
_PARENT = """
import functools, sys
import gymnasium as gym
import numpy as np
import llm_repair_gym
from llm_repair_gym.testing import micro_env_kwargs
kw = micro_env_kwargs(sys.argv[1])
if __name__ == "__main__":
    env = gym.make("LLMRepair-v0", **kw)
    env.reset(seed=0)
    env.step(0)
    env.close()
"""

_GYMNASIUM = _PARENT + """
    for workers in (2, 4):
        fns = [functools.partial(gym.make, "llm_repair_gym:LLMRepair-v0", **kw)] * workers
        if sys.argv[2] == "fork":
            fns = [lambda: gym.make("LLMRepair-v0", **kw)] * workers  # closures are fine when forking
        envs = gym.vector.AsyncVectorEnv(fns, context=None if sys.argv[2] == "fork" else sys.argv[2])
        obs, _ = envs.reset(seed=1)
        for _ in range(3):
            obs, reward, *_ = envs.step(envs.action_space.sample())
        assert obs.shape == (workers, envs.single_observation_space.shape[0]) and np.isfinite(reward).all()
        envs.close()
    print("ok")
"""

_SB3 = _PARENT + """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv
    for workers in (2, 4):
        envs = make_vec_env("llm_repair_gym:LLMRepair-v0", n_envs=workers, seed=1, env_kwargs=kw,
                            vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": sys.argv[2]})
        envs.reset()
        for _ in range(3):
            obs, reward, dones, infos = envs.step(np.array([envs.action_space.sample() for _ in range(workers)]))
        assert obs.shape[0] == workers and np.isfinite(reward).all()
        envs.close()
    print("ok")
"""


@pytest.mark.parametrize("script, context", [
    (_GYMNASIUM, "fork"), (_GYMNASIUM, "spawn"), (_GYMNASIUM, "forkserver"), (_SB3, "forkserver"), (_SB3, "fork"),
], ids=["gymnasium-fork", "gymnasium-spawn", "gymnasium-forkserver", "sb3-forkserver", "sb3-fork"])
def test_workers_do_not_hang(micro_env_kwargs, script, context):
    pytest.importorskip("stable_baselines3")
    try:
        run = subprocess.run([sys.executable, "-c", script, micro_env_kwargs["cache_dir"], context],
                             capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{context} workers hung for 240 s")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
