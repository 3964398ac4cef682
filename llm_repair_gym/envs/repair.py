"""LLMRepair-v0: repair a small language model that has something wrong with it.

``LLMRepairVectorEnv`` is the implementation: N envs are N models updated in one batched operation.
``LLMRepairEnv`` is the same env with N = 1 behind Gymnasium's single-env API.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from llm_repair_gym import optim
from llm_repair_gym.actions import CATEGORIES, build_actions
from llm_repair_gym.dynamics import (
    Context,
    DynamicsConfig,
    Measurement,
    filter_pool,
    lr_of_level,
    measure,
    prune,
    reinit_block,
    reset_optimizer,
    restore_pool,
    rollback,
    train,
    validation_accuracy,
)
from llm_repair_gym.faults import FAULTS, describe, fault_indices, sample_and_inject
from llm_repair_gym.features import assemble, build_features, columns
from llm_repair_gym.model import group_names
from llm_repair_gym.presets import Preset, get_preset
from llm_repair_gym.rng import BatchedRNG
from llm_repair_gym.state import RepairState
from llm_repair_gym.tasks import FAMILIES, TaskSuite
from llm_repair_gym.zoo import load_zoo

HEALTHY_MARGIN = 0.05  # a family within this of its healthy accuracy at reset counts as working
_AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)


class LLMRepairVectorEnv(VectorEnv):
    """{manual}"""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, preset: str | Preset = "tiny", faults: list[str] | None = None,
                 cost_weight: float = 0.002, crash_penalty: float = 1.0, cost_limit: float | None = None,
                 max_episode_steps: int = 32, device: str | torch.device = "cpu", zoo_seed: int = 0,
                 zoo_cache_dir: str | None = None, dynamics: DynamicsConfig | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, progress: bool = True) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        for name, value in (("cost_weight", cost_weight), ("crash_penalty", crash_penalty)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if cost_limit is not None and not (np.isfinite(cost_limit) and cost_limit >= 0):
            raise ValueError(f"cost_limit must be None or finite and >= 0, got {cost_limit!r}")
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in _AUTORESET_MODES:
            raise ValueError(f"autoreset_mode must be one of {[m.value for m in _AUTORESET_MODES]}")
        self.preset = get_preset(preset)
        self.device = torch.device(device)
        self.fault_ids = torch.tensor(fault_indices(faults), device=self.device)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.cost_weight, self.crash_penalty, self.cost_limit = cost_weight, crash_penalty, cost_limit
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.autoreset_mode = autoreset_mode

        dyn = dynamics or DynamicsConfig()
        zoo = load_zoo(self.preset, seed=zoo_seed, cache_dir=zoo_cache_dir, device=self.device, progress=progress)
        suite = TaskSuite(self.preset.tasks, self.device)
        eval_ids = {f: suite.split_ids[f]["val"][:dyn.eval_size] for f in FAMILIES}
        if min(ids.numel() for ids in eval_ids.values()) < dyn.eval_size:
            raise ValueError(f"eval_size {dyn.eval_size} exceeds a validation split")
        trusted_ids = {f: suite.split_ids[f]["train"][-dyn.trusted_size:] for f in FAMILIES}
        if min(ids.numel() for ids in trusted_ids.values()) < dyn.trusted_size:
            raise ValueError(f"trusted_size {dyn.trusted_size} exceeds a training split")
        self.ctx = Context(self.preset, suite, zoo.params, zoo.fact_tables, dyn, eval_ids, trusted_ids)
        self._zoo_accuracy = validation_accuracy(self.ctx, zoo.params, zoo.fact_tables)  # healthy, per zoo model
        self.group_names = group_names(self.preset.model)
        self.actions = build_actions(self.preset, dyn)
        self.features = build_features(self.group_names)
        self.action_names = [a.name for a in self.actions]
        self.feature_names = [f.name for f in self.features]
        self._action_flops = torch.tensor([a.flops for a in self.actions], dtype=torch.float64, device=self.device)
        self.flops_ref = self.actions[0].flops  # train_all

        low = np.array([f.low for f in self.features], dtype=np.float32)
        high = np.array([f.high for f in self.features], dtype=np.float32)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(len(self.actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state: RepairState | None = None
        self._needs_reset = np.ones(num_envs, dtype=bool)
        self._last_obs = np.zeros((num_envs, len(self.features)), dtype=np.float32)

    # --- reset ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs (or those in ``options["reset_mask"]``); env ``i`` is seeded with ``seed + i``."""
        super().reset(seed=seed if isinstance(seed, int) else None)
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},)")
            if self.state is None and not mask.all():
                raise ValueError("the first reset must reset every env (no reset_mask)")
        if seed is None:
            seeds = self.np_random.integers(0, 2**62, size=self.num_envs)
        elif isinstance(seed, int):
            seeds = np.arange(self.num_envs, dtype=np.int64) + seed
        else:
            seeds = np.asarray(seed, dtype=np.int64)
            if seeds.shape != (self.num_envs,):
                raise ValueError(f"seed must be an int or {self.num_envs} ints, got {seed!r}")
        if self.state is None:
            self.state = self._empty_state()
        env_ids = torch.as_tensor(np.flatnonzero(mask), device=self.device)
        fresh = self._reset_envs(env_ids, torch.as_tensor(seeds[mask], device=self.device))
        self._needs_reset[mask] = False
        self._last_obs[mask] = self._observe(fresh, self.state.accuracy[env_ids], env_ids)
        return self._last_obs.copy(), self._info(actions=None, flops=None, cost=None, mask=mask)

    @property
    def _all(self) -> torch.Tensor:
        return torch.arange(self.num_envs, device=self.device)

    def _empty_state(self) -> RepairState:
        n, dev, cfg, dyn = self.num_envs, self.device, self.preset.model, self.ctx.dynamics
        params = {k: torch.zeros((n, *v.shape[1:]), device=dev) for k, v in self.ctx.zoo_params.items()}
        pool = {f: torch.zeros(n, dyn.pool_size, dtype=torch.long, device=dev) for f in FAMILIES}
        zeros_f = torch.zeros(n, len(FAMILIES), device=dev)
        long0 = torch.zeros(n, dtype=torch.long, device=dev)
        return RepairState(
            params=params, opt=optim.init_state(params, cfg.n_groups, "adamw", dyn.base_lr),
            lr_level=long0.clone(), fact_tables=torch.zeros_like(self.ctx.zoo_fact_tables[:1]).expand(n, -1).clone(),
            pool_ids=pool, corrupt={f: torch.zeros_like(v, dtype=torch.bool) for f, v in pool.items()},
            keep={f: torch.ones_like(v, dtype=torch.bool) for f, v in pool.items()},
            snapshot={k: v.clone() for k, v in params.items()}, snapshot_score=torch.zeros(n, device=dev),
            rng=BatchedRNG(long0), steps=long0.clone(), flops=torch.zeros(n, dtype=torch.float64, device=dev),
            episode_cost=torch.zeros(n, device=dev), accuracy=zeros_f.clone(), reset_accuracy=zeros_f.clone(),
            healthy_accuracy=zeros_f.clone(), crashed=torch.zeros(n, dtype=torch.bool, device=dev),
            fault_type=long0.clone(), fault_target=long0.clone(), fault_severity=torch.zeros(n, device=dev),
            zoo_model=long0.clone(),
        )

    def _reset_envs(self, env_ids: torch.Tensor, seeds: torch.Tensor) -> Measurement:
        """Fresh episodes for ``env_ids``: a zoo model, a training pool, a fault. Returns their measurement."""
        s, ctx, dyn = self.state, self.ctx, self.ctx.dynamics
        s.rng.reseed(env_ids, seeds)
        n_models = ctx.zoo_fact_tables.shape[0]
        s.zoo_model[env_ids] = s.rng.integers(env_ids, n_models)
        for name, p in s.params.items():
            p[env_ids] = ctx.zoo_params[name][s.zoo_model[env_ids]]
        s.fact_tables[env_ids] = ctx.zoo_fact_tables[s.zoo_model[env_ids]]
        for family in FAMILIES:
            train_ids = ctx.suite.split_ids[family]["train"]
            s.pool_ids[family][env_ids] = train_ids[s.rng.integers(env_ids, train_ids.numel(), (dyn.pool_size,))]
            s.corrupt[family][env_ids] = False
            s.keep[family][env_ids] = True
        s.opt.optimizer[env_ids] = optim.ADAMW
        s.lr_level[env_ids] = 0
        s.opt.lr[env_ids] = dyn.base_lr
        reset_optimizer(s, env_ids)
        s.healthy_accuracy[env_ids] = self._zoo_accuracy[s.zoo_model[env_ids]]
        sample_and_inject(ctx, s, env_ids, self.fault_ids)
        m = measure(ctx, s, env_ids)
        s.accuracy[env_ids] = m.val_accuracy
        s.reset_accuracy[env_ids] = m.val_accuracy
        s.crashed[env_ids] = m.crashed
        for name, p in s.params.items():
            s.snapshot[name][env_ids] = p[env_ids]
        s.snapshot_score[env_ids] = m.val_accuracy.mean(1)
        s.steps[env_ids] = 0
        s.flops[env_ids] = 0
        s.episode_cost[env_ids] = 0
        return m

    # --- step ----------------------------------------------------------------------------------------

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply one action per env; see the class docstring for rewards, costs and episode ends."""
        a = self._check_actions(actions)
        s, ctx = self.state, self.ctx
        kinds = [action.kind for action in self.actions]
        act = torch.as_tensor(a, device=self.device)
        self._apply(act, kinds)  # one batched call per action kind present
        s.steps += 1
        flops = self._action_flops[act]
        s.flops += flops
        m = measure(ctx, s, self._all)
        score_before, score_now = s.accuracy.mean(1), m.val_accuracy.mean(1)
        newly_crashed = m.crashed & ~s.crashed
        reward = (score_now - score_before) - self.cost_weight * (flops / self.flops_ref).float() \
            - self.crash_penalty * newly_crashed.float()
        working = s.reset_accuracy >= s.healthy_accuracy - HEALTHY_MARGIN
        cost = ((s.accuracy - m.val_accuracy).clamp_min(0) * working).sum(1)
        s.episode_cost += cost
        better = (score_now > s.snapshot_score) & ~m.crashed
        for name, p in s.params.items():
            s.snapshot[name][better] = p[better]
        s.snapshot_score = torch.where(better, score_now, s.snapshot_score)
        obs = self._observe(m, s.accuracy)
        s.accuracy, s.crashed = m.val_accuracy, m.crashed

        stop = np.array([kinds[i] == "stop" for i in a])
        over_budget = (s.episode_cost > self.cost_limit).cpu().numpy() if self.cost_limit is not None \
            else np.zeros(self.num_envs, dtype=bool)
        terminated = stop | over_budget
        truncated = (s.steps >= self.max_episode_steps).cpu().numpy() & ~terminated
        info = self._info(actions=a, flops=flops, cost=cost)
        done = terminated | truncated
        reward_np = reward.cpu().numpy().astype(np.float32)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.array([obs[i] if done[i] else None for i in range(self.num_envs)], dtype=object)
            final_info = _with_masks(_strip_masks(info), done)
            done_ids = torch.as_tensor(np.flatnonzero(done), device=self.device)
            next_seeds = s.rng.integers(done_ids, 2**62)
            fresh = self._reset_envs(done_ids, next_seeds)
            obs[done] = self._observe(fresh, s.accuracy[done_ids], done_ids)
            info = self._info(actions=a, flops=flops, cost=cost)  # done envs: their new episode
            info |= {"final_obs": final_obs, "_final_obs": done.copy(),
                     "final_info": final_info, "_final_info": done.copy()}
        else:
            self._needs_reset |= done
        self._last_obs = obs.copy()
        return obs, reward_np, terminated, truncated, info

    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers, got {actions!r}")
        if (a < 0).any() or (a >= len(self.actions)).any():
            raise ValueError(f"actions must lie in [0, {len(self.actions)}), got {a.tolist()}")
        if self.state is None:
            raise ValueError("call reset() before step()")
        if self._needs_reset.any():
            raise ValueError(f"envs {np.flatnonzero(self._needs_reset).tolist()} ended: reset them "
                             "(options={'reset_mask': ...}) before stepping")
        return a.astype(np.int64)

    def _apply(self, act: torch.Tensor, kinds: list[str]) -> None:
        """Apply every env's action: one batched call per action kind present, never a loop over envs."""
        s, ctx = self.state, self.ctx
        kind_of = np.array(kinds)[act.cpu().numpy()]
        args = torch.tensor([x.arg for x in self.actions], device=self.device)[act]

        def envs(kind: str) -> torch.Tensor:
            return torch.as_tensor(np.flatnonzero(kind_of == kind), device=self.device)

        train_ids = envs("train")
        if train_ids.numel():
            family = args[train_ids]
            one_hot = torch.nn.functional.one_hot(family.clamp_min(0), len(FAMILIES)).float()
            weights = torch.where((family < 0)[:, None], 1 / len(FAMILIES), one_hot)
            train(ctx, s, train_ids, weights, ctx.dynamics.train_steps)
        filter_pool(ctx, s, envs("filter"))
        restore_pool(ctx, s, envs("restore"))
        reinit = envs("reinit")
        for block in range(self.preset.model.n_layer):
            reinit_block(ctx, s, reinit[args[reinit] == block], block)
        rollback(ctx, s, envs("rollback"))
        prune(ctx, s, envs("prune"))
        lr_ids = envs("lr")
        if lr_ids.numel():
            s.lr_level[lr_ids] = (s.lr_level[lr_ids] + args[lr_ids]).clamp(ctx.dynamics.min_lr_level,
                                                                          ctx.dynamics.max_lr_level)
            s.opt.lr[lr_ids] = lr_of_level(ctx, s.lr_level[lr_ids])
        switch = envs("switch_optimizer")
        s.opt.optimizer[switch] = 1 - s.opt.optimizer[switch]

    # --- observation and info ------------------------------------------------------------------------

    def _observe(self, m, previous_accuracy: torch.Tensor, env_ids: torch.Tensor | None = None) -> np.ndarray:
        s = self.state
        ids = self._all if env_ids is None else env_ids
        kept = sum(s.keep[f][ids].float().mean(1) for f in FAMILIES) / len(FAMILIES)
        cols = columns(m, previous_accuracy, self.group_names, s.opt.lr[ids], s.opt.optimizer[ids] == optim.ADAMW,
                       kept, s.steps[ids].float() / self.max_episode_steps,
                       (s.flops[ids] / (self.max_episode_steps * self.flops_ref)).float())
        return assemble(self.features, cols).cpu().numpy()

    def _info(self, actions: np.ndarray | None, flops: torch.Tensor | None, cost: torch.Tensor | None,
              mask: np.ndarray | None = None) -> dict:
        s = self.state
        faults = [describe(s, i) for i in range(self.num_envs)]
        info: dict[str, Any] = {
            "accuracy": {f: s.accuracy[:, i].cpu().numpy() for i, f in enumerate(FAMILIES)},
            "healthy_accuracy": {f: s.healthy_accuracy[:, i].cpu().numpy() for i, f in enumerate(FAMILIES)},
            "score": s.accuracy.mean(1).cpu().numpy(),
            "fault": {
                "type": np.array([f["type"] for f in faults], dtype=object),
                "target": np.array([f["target"] for f in faults], dtype=object),
                "severity": np.array([f["severity"] for f in faults], dtype=np.float64),
            },
            "crashed": s.crashed.cpu().numpy(),
            "episode_cost": s.episode_cost.cpu().numpy(),
            "episode_flops": s.flops.cpu().numpy(),
            "zoo_model": s.zoo_model.cpu().numpy(),
        }
        if actions is not None:
            info["action_name"] = np.array([self.action_names[i] for i in actions], dtype=object)
            info["flops"] = flops.cpu().numpy()
            info["cost"] = cost.cpu().numpy()
        return _with_masks(info, np.ones(self.num_envs, dtype=bool) if mask is None else mask)


def _with_masks(info: dict, mask: np.ndarray) -> dict:
    """Gymnasium's vector-info layout: every key ``k`` gets a boolean ``_k`` saying which envs have it."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = _with_masks(value, mask) if isinstance(value, dict) else value
        out[f"_{key}"] = mask.copy()
    return out


def _strip_masks(info: dict) -> dict:
    return {k: (_strip_masks(v) if isinstance(v, dict) else v) for k, v in info.items() if not k.startswith("_")}


def _unbatch(info: dict, index: int) -> dict:
    """The info of one env from a vector info (masks dropped, numpy scalars made Python values)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out[key] = _unbatch(value, index)
        else:
            item = value[index]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out


class LLMRepairEnv(gym.Env):
    """{manual}"""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        if "num_envs" in kwargs or "autoreset_mode" in kwargs:
            raise ValueError("LLMRepairEnv is one env: use gym.make_vec for num_envs / autoreset_mode")
        self.vector = LLMRepairVectorEnv(num_envs=1, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space
        self.action_names = self.vector.action_names
        self.feature_names = self.vector.feature_names

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**62)) if seed is None else seed
        obs, info = self.vector.reset(seed=episode_seed, options=options)
        return obs[0], _unbatch(info, 0)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        obs, reward, terminated, truncated, info = self.vector.step(np.array([int(action)]))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), _unbatch(info, 0)


def _manual() -> str:
    """The env manual, generated from the action, feature and fault tables of the default preset."""
    preset = get_preset("tiny")
    dyn = DynamicsConfig()
    actions = build_actions(preset, dyn)
    features = build_features(group_names(preset.model))
    flops_ref = actions[0].flops
    action_rows = "\n".join(f"    | {i} | `{a.name}` | {a.category} | {a.flops / flops_ref:.4g} | {a.description} |"
                            for i, a in enumerate(actions))
    feature_rows = "\n".join(f"    | {i} | `{f.name}` | {f.low:g} | {f.high:g} | {f.description} |"
                             for i, f in enumerate(features))
    fault_rows = "\n".join(f"    | `{f.name}` | {f.what_happened} | {f.good_repair} |" for f in FAULTS)
    return f"""Repair a small GPT-2 that has something wrong with it.

    ## Description
    At reset each env takes a healthy model from the preset's zoo, draws a fault and injects it. The
    agent sees features of the model's state and outputs and edits its parameters, its training data and
    its training algorithm until it declares the model repaired (`stop`). Categories: {", ".join(CATEGORIES)}.

    | fault | what happened | what a good repair looks like |
    |---|---|---|
{fault_rows}

    ## Action Space
    `Discrete({len(actions)})` for the `tiny` preset (one `reinit_block` per block). FLOPs are relative to
    `train_all` ({flops_ref:.3g} FLOPs); `env.unwrapped.action_names` lists them.

    | index | action | category | FLOPs / train_all | effect |
    |---|---|---|---|---|
{action_rows}

    ## Observation Space
    `Box(float32, ({len(features)},))` for `tiny`; every value clipped into its bounds, so it stays finite
    when a model diverges. `env.unwrapped.feature_names` names every index.

    | index | feature | min | max | meaning |
    |---|---|---|---|---|
{feature_rows}

    ## Rewards
    `reward = (S_t - S_(t-1)) - cost_weight * flops_t / flops_ref - crash_penalty * [diverged now]`, where S
    is the mean validation exact-match accuracy over families ({dyn.eval_size} fixed validation examples
    each). `info["cost"]` is the accuracy lost this step on families that worked at reset (within
    {HEALTHY_MARGIN} of healthy): a Safety-Gymnasium style cost, reported apart from the reward.

    ## Starting State
    A zoo model (chosen by the seed) with a fault drawn from `faults`; lr {dyn.base_lr:g} (AdamW); a pool of
    {dyn.pool_size} training examples per family, all kept.

    ## Episode End
    Terminated by `stop`, or when `episode_cost` exceeds `cost_limit`. Truncated after
    `max_episode_steps` (default 32). A diverged model does not end the episode: `info["crashed"]` is
    set, the step is penalised, and `rollback` can undo it.

    ## Arguments
    `preset` ("tiny", "small", "base" or a `Preset`), `faults` (a subset of
    {", ".join(f.name for f in FAULTS)}), `cost_weight` (0.002), `crash_penalty` (1.0), `cost_limit` (None),
    `max_episode_steps` (32), `device` ("cpu"/"cuda"), `zoo_seed` (0), `zoo_cache_dir`, `dynamics` (a
    `DynamicsConfig`). The vector env also takes `num_envs` and `autoreset_mode` (SAME_STEP or DISABLED).

    ## Info
    `accuracy`, `healthy_accuracy` (per family), `score`, `fault` (`type`, `target`, `severity`; hidden
    from the observation, for analysis and privileged baselines), `action_name`, `flops`, `cost`,
    `episode_cost`, `episode_flops`, `crashed`, `zoo_model`.

    ## Version History
    * v0: initial version.
    """


LLMRepairVectorEnv.__doc__ = _manual()
LLMRepairEnv.__doc__ = LLMRepairVectorEnv.__doc__
