"""Stable-Baselines3 baselines on LLMRepair: PPO, A2C, DQN and QR-DQN (sb3-contrib) with RL Zoo hyperparameters.

Hyperparameters live in ``agents/hyperparams/<algo>.yml`` in RL Zoo's format, so the same files drive
``rl_zoo3.train -conf`` and :func:`build_model`. Of RL Zoo's keys this reads ``n_envs``, ``n_timesteps``,
``policy``, ``normalize`` (observation normalisation by running statistics: SB3's ``VecNormalize``) and
``policy_kwargs`` (RL Zoo's ``"dict(...)"`` string, parsed without ``eval``) and ``lin_<x>`` schedules for
``learning_rate`` and ``clip_range``; every other key goes to the algorithm's constructor.

A trained model is saved as ``policy.safetensors`` (the policy network's weights and the observation
statistics) with ``policy.json`` (algorithm, policy kwargs, feature names), which ``agents.load_policy``
reads back without unpickling anything, plus SB3's own ``model.zip`` for those who want to train on
(``PPO.load``; a pickle, so only from a trusted source).
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"
ALGOS = ("ppo", "a2c", "dqn", "qrdqn")
AGENT_NAMES = {algo: f"sb3_{algo}" for algo in ALGOS}
"""The name of each algorithm's runs and leaderboard row (``sb3_dqn`` is not our hand-written ``dqn``)."""
WEIGHTS_FILE = "policy.safetensors"
_RL_ZOO_KEYS = ("n_envs", "n_timesteps", "policy", "normalize")
_SCHEDULES = ("learning_rate", "clip_range")
"""The keys RL Zoo reads ``lin_<x>`` schedules for."""
_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU")


def algorithm_class(algo: str) -> type:
    """The SB3 (or sb3-contrib) class of ``algo``."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {ALGOS}")
    if algo == "qrdqn":
        from sb3_contrib import QRDQN

        return QRDQN
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def parse_policy_kwargs(text: str | dict | None) -> dict[str, Any]:
    """RL Zoo's ``policy_kwargs`` string (``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``) as a dict.

    Only literal values and ``nn.<activation>`` are accepted; nothing is evaluated.
    """
    if text is None:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        call = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"policy_kwargs {text!r} is not a dict(...) expression: {err}") from err
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"
            and not call.args and all(k.arg for k in call.keywords)):
        raise ValueError(f"policy_kwargs must read dict(key=value, ...), got {text!r}")
    out = {}
    for keyword in call.keywords:
        node = keyword.value
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "nn":
            if node.attr not in _ACTIVATIONS:
                raise ValueError(f"policy_kwargs: nn.{node.attr} is not one of {_ACTIVATIONS}")
            out[keyword.arg] = getattr(torch.nn, node.attr)
        else:
            try:
                out[keyword.arg] = ast.literal_eval(node)
            except ValueError as err:
                raise ValueError(f"policy_kwargs: {keyword.arg} must be a literal or nn.<activation>") from err
    return out


def load_hyperparams(algo: str, env_id: str = "LLMRepair-v0", path: str | Path | None = None) -> dict[str, Any]:
    """The hyperparameters of ``algo`` for ``env_id`` from an RL Zoo file (default: ours)."""
    algorithm_class(algo)  # validates the name
    path = Path(path) if path is not None else HYPERPARAMS_DIR / f"{algo}.yml"
    table = yaml.safe_load(path.read_text())
    if not isinstance(table, dict) or env_id not in table:
        raise ValueError(f"{path} has no hyperparameters for {env_id} (it has {sorted(table or {})})")
    params = dict(table[env_id])
    if params.get("policy", "MlpPolicy") != "MlpPolicy":
        raise ValueError(f"{path}: only policy 'MlpPolicy' is supported, got {params['policy']!r}")
    return params


def normalize_kwargs(hyperparams: dict) -> dict | None:
    """``VecNormalize`` kwargs from RL Zoo's ``normalize`` entry (``None``: no normalisation)."""
    value = hyperparams.get("normalize", False)
    if isinstance(value, str):
        value = ast.literal_eval(value)
    if value is True:
        return {}
    if not value:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"normalize must be a bool or a dict of VecNormalize kwargs, got {value!r}")
    return value


def _linear(initial: float, progress_remaining: float) -> float:
    return progress_remaining * initial


def schedule(value: Any) -> Any:
    """RL Zoo's ``"lin_<x>"`` (linear decay from x to 0 over training) as SB3's schedule; other values as they are."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return functools.partial(_linear, float(value.removeprefix("lin_")))
        except ValueError as err:
            raise ValueError(f"a linear schedule reads lin_<number>, got {value!r}") from err
    return value


def build_model(algo: str, venv, hyperparams: dict, seed: int, device: str = "cpu", **extra):
    """An untrained SB3 model of ``algo`` on ``venv`` with the RL Zoo ``hyperparams`` (plus ``extra``)."""
    kwargs = {k: schedule(v) if k in _SCHEDULES else v for k, v in hyperparams.items() if k not in _RL_ZOO_KEYS}
    kwargs["policy_kwargs"] = parse_policy_kwargs(kwargs.get("policy_kwargs"))
    return algorithm_class(algo)("MlpPolicy", venv, seed=seed, device=device, verbose=0, **kwargs, **extra)


def save_policy(model, folder: str | Path, algo: str, hyperparams: dict, feature_names: list[str], env_id: str,
                vec_normalize=None, **facts) -> Path:
    """Write ``policy.safetensors`` and ``policy.json`` (what :func:`load_sb3_policy` reads) and ``model.zip``;
    ``vec_normalize``: the ``VecNormalize`` the model trained behind, whose observation statistics go along."""
    from llm_repair_gym._version import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    normalized = vec_normalize is not None
    tensors = {f"policy.{k}": v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    if normalized:
        tensors["obs_rms.mean"] = torch.as_tensor(vec_normalize.obs_rms.mean, dtype=torch.float64)
        tensors["obs_rms.var"] = torch.as_tensor(vec_normalize.obs_rms.var, dtype=torch.float64)
    save_file(tensors, str(folder / WEIGHTS_FILE))
    model.save(folder / "model.zip")
    meta = {"kind": "sb3", "algo": algo, "env_id": env_id, "package_version": __version__,
            "feature_names": list(feature_names), "n_actions": int(model.action_space.n),
            "policy_kwargs": str(hyperparams.get("policy_kwargs", "dict()")), "normalize_obs": normalized,
            "clip_obs": vec_normalize.clip_obs if normalized else None,
            "epsilon": vec_normalize.epsilon if normalized else None,
            "hyperparams": {k: str(v) for k, v in hyperparams.items()}, **facts}
    (folder / "policy.json").write_text(json.dumps(meta, indent=1))
    return folder


class SB3Policy:
    """The greedy (deterministic) policy of a saved SB3 model, with its observation normalisation."""

    def __init__(self, policy, meta: dict, obs_mean: np.ndarray | None, obs_var: np.ndarray | None) -> None:
        self.policy, self.meta = policy, meta
        self.feature_names: list[str] = list(meta["feature_names"])
        self.obs_mean, self.obs_var = obs_mean, obs_var

    def reset(self, env_mask: np.ndarray) -> None:
        """Stateless: nothing to forget."""

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """What ``VecNormalize`` (frozen) hands the network."""
        if self.obs_mean is None:
            return obs
        clip = self.meta["clip_obs"]
        return np.clip((obs - self.obs_mean) / np.sqrt(self.obs_var + self.meta["epsilon"]), -clip, clip
                       ).astype(np.float32)

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[-1] != len(self.feature_names):
            raise ValueError(f"this policy reads batches of {len(self.feature_names)} features "
                             f"({self.meta['env_id']}, package {self.meta['package_version']}), got {obs.shape}")
        actions, _ = self.policy.predict(self.normalize(obs), deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(len(obs))


def load_sb3_policy(folder: str | Path, meta: dict, device: str | None = None) -> SB3Policy:
    """The policy saved in ``folder`` by :func:`save_policy` (``meta``: its ``policy.json``)."""
    from gymnasium import spaces

    folder = Path(folder)
    tensors = load_file(str(folder / WEIGHTS_FILE))
    n_features = len(meta["feature_names"])
    observation_space = spaces.Box(-np.inf, np.inf, (n_features,), np.float32)
    policy_class = algorithm_class(meta["algo"]).policy_aliases["MlpPolicy"]
    policy = policy_class(observation_space, spaces.Discrete(int(meta["n_actions"])), lambda _: 0.0,
                          **parse_policy_kwargs(meta["policy_kwargs"]))
    state = {k.removeprefix("policy."): v for k, v in tensors.items() if k.startswith("policy.")}
    policy.load_state_dict(state)
    policy.to(device or "cpu").set_training_mode(False)
    mean = tensors["obs_rms.mean"].numpy() if meta["normalize_obs"] else None
    var = tensors["obs_rms.var"].numpy() if meta["normalize_obs"] else None
    return SB3Policy(policy, meta, mean, var)
