"""LLMRepair-v0: repair a small language model that has something wrong with it.

``LLMRepairVectorEnv`` is the implementation: N envs are N models updated in one batched operation.
``LLMRepairEnv`` is the same env with N = 1 behind Gymnasium's single-env API.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from llm_repair_gym._version import __version__
from llm_repair_gym.envs.arguments import (
    check_actions,
    check_instances,
    check_open,
    check_reset_mask,
    check_seeds,
    check_settings,
)
from llm_repair_gym.envs.host_io import (
    Unpacker,
    as_columns,
    check_device,
    generator_state,
    restore_generator,
    step_to_host,
    to_device,
)
from llm_repair_gym.envs.manual import build_manual
from llm_repair_gym.envs.single import SingleEnv
from llm_repair_gym.envs.snapshot import STATE_FORMAT, EnvState, json_config
from llm_repair_gym.envs.suites import suite_bank
from llm_repair_gym.envs.trace import RENDERERS, Trace, record_steps
from llm_repair_gym.envs.types import VectorResetReturn, VectorStepReturn
from llm_repair_gym.envs.vector_info import with_masks
from llm_repair_gym.lm import optim
from llm_repair_gym.lm.model import group_names
from llm_repair_gym.lm.presets import Preset, get_preset
from llm_repair_gym.lm.tasks import FAMILIES, TaskSuite
from llm_repair_gym.lm.zoo import load_zoo, zoo_hash
from llm_repair_gym.repair.actions import Action, build_actions
from llm_repair_gym.repair.dynamics import (
    DynamicsConfig,
    Measurement,
    build_context,
    lr_of_level,
    measure,
    reset_optimizer,
    validation_accuracy,
)
from llm_repair_gym.repair.faults import FAULT_NAMES, fault_indices, target_names
from llm_repair_gym.repair.features import assemble, build_features, columns
from llm_repair_gym.repair.instances import BankConfig, InstanceBank, blank_state, load_bank, start_live
from llm_repair_gym.runtime.allocator import keep_freed_memory
from llm_repair_gym.runtime.precision import precision_context
from llm_repair_gym.runtime.threads import configure_threads

ENV_ID = "LLMRepair-v0"
HEALTHY_MARGIN = 0.05  # a family within this of its healthy accuracy at reset counts as working
RENDER_FPS = 2  # frames (steps) per second of a video of an episode


class LLMRepairVectorEnv(VectorEnv):
    """{manual}"""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": list(RENDERERS), "render_fps": RENDER_FPS}
    ENV_ID = ENV_ID

    def __init__(self, num_envs: int = 1, preset: str | Preset = "tiny", faults: list[str] | None = None,
                 cost_weight: float = 0.002, crash_penalty: float = 1.0, cost_limit: float | None = None,
                 max_episode_steps: int = 32, device: str | torch.device = "cpu", zoo_seed: int = 0,
                 cache_dir: str | None = None, dynamics: DynamicsConfig | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, progress: bool = True,
                 instances: str = "train", bank: BankConfig | None = None, precision: str = "fp32",
                 output: str = "numpy", chunk_envs: int = 256, compile: bool = False,
                 num_threads: int | None = None, render_mode: str | None = None, suite: str | None = None) -> None:
        autoreset_mode = check_settings(num_envs, max_episode_steps, cost_weight, crash_penalty, cost_limit,
                                        autoreset_mode, instances, output, chunk_envs, render_mode)
        self.allowed_faults = fault_indices(faults)
        self._setup(num_envs, preset, device, precision, num_threads, max_episode_steps, cost_weight, crash_penalty,
                    cost_limit, autoreset_mode, instances, output, render_mode, dynamics, zoo_seed, cache_dir,
                    progress, chunk_envs, compile)
        self.fault_ids = torch.tensor(self.allowed_faults, device=self.device)
        dyn = self.ctx.dynamics
        self.bank: InstanceBank | None = None
        if instances != "live":
            self.bank = load_bank(self.ctx, bank or BankConfig(), instances, zoo_hash(self.preset, zoo_seed),
                                  cache_dir, progress)
            if suite is not None:
                self.bank = suite_bank(self, suite)
            self.bank.check_faults(self.allowed_faults)
        elif suite is not None:
            raise ValueError("suite= draws from an instance bank: make the env with instances='train' or 'test'")
        self.suite = suite
        self.group_names = group_names(self.preset.model)
        self.actions: tuple[Action, ...] = build_actions(self.preset, dyn)
        self.features = build_features(self.group_names)
        self.action_names = [a.name for a in self.actions]
        self.feature_names = [f.name for f in self.features]
        self.fault_names = list(FAULT_NAMES)
        self._target_names = target_names(self.preset.model.n_layer)
        self._action_flops = torch.tensor([a.flops for a in self.actions], dtype=torch.float64, device=self.device)
        self._is_stop = np.array([a.kind == "stop" for a in self.actions])
        self.flops_ref = self.actions[0].flops  # train_all

        self._setup_spaces(blank_state(self.ctx, num_envs))
        self._identity = {"env_id": ENV_ID, "format": STATE_FORMAT, "version": __version__, "num_envs": num_envs,
                          "config": json_config(
                              preset=dataclasses.asdict(self.preset), zoo_seed=zoo_seed,
                              dynamics=dataclasses.asdict(dyn), instances=instances,
                              bank=dataclasses.asdict(bank or BankConfig()) if instances != "live" else None,
                              faults=[FAULT_NAMES[i] for i in self.allowed_faults], cost_weight=cost_weight,
                              crash_penalty=crash_penalty, cost_limit=cost_limit,
                              max_episode_steps=max_episode_steps, precision=precision, suite=suite,
                              autoreset_mode=autoreset_mode.value)}

    def _setup(self, num_envs: int, preset: str | Preset, device: str | torch.device, precision: str,
               num_threads: int | None, max_episode_steps: int, cost_weight: float, crash_penalty: float,
               cost_limit: float | None, autoreset_mode: AutoresetMode, instances: str, output: str,
               render_mode: str | None, dynamics: DynamicsConfig | None, zoo_seed: int, cache_dir: str | None,
               progress: bool, chunk_envs: int, compile: bool) -> None:
        """What every env built on this class shares: settings, device, zoo, tasks and the context."""
        self.preset = get_preset(preset)
        self.device = check_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.precision = precision
        self._precision = precision_context(precision, self.device)  # validates precision against the device
        configure_threads(num_threads)  # the arguments are checked: now the process-wide setting
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.cost_weight, self.crash_penalty, self.cost_limit = cost_weight, crash_penalty, cost_limit
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.autoreset_mode = autoreset_mode
        self.instances, self.output = instances, output
        self.render_mode = render_mode
        self._traces: list[Trace | None] = [None] * num_envs  # recorded only with a render_mode

        zoo = load_zoo(self.preset, seed=zoo_seed, cache_dir=cache_dir, device=self.device, progress=progress)
        self.ctx = build_context(self.preset, TaskSuite(self.preset.tasks, self.device), zoo.flat, zoo.fact_tables,
                                 dynamics or DynamicsConfig(), chunk_envs, bool(compile))
        self._zoo_accuracy = validation_accuracy(self.ctx, zoo.flat, zoo.fact_tables)  # healthy, per zoo model

    def _setup_spaces(self, state) -> None:
        """Spaces from the feature and action tables, the batched ``state`` and the host bookkeeping."""
        num_envs = self.num_envs
        low = np.array([f.low for f in self.features], dtype=np.float32)
        high = np.array([f.high for f in self.features], dtype=np.float32)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(len(self.actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state = state
        self._all = torch.arange(num_envs, device=self.device)
        self._started = False
        self._obs = torch.zeros(num_envs, len(self.features), device=self.device)  # every env's current obs
        self._steps = np.zeros(num_envs, dtype=np.int64)  # host mirror of state.steps: episode ends need no sync
        self._needs_reset = np.ones(num_envs, dtype=bool)

    # --- state: save, restore, fork -------------------------------------------------------------------

    def get_state(self) -> EnvState:
        """A copy of everything that determines the envs' future (on the CPU); see :class:`EnvState`."""
        check_open(self)
        tensors = {name: t.detach().cpu().clone() for name, t in self.state.tensors().items()}
        tensors["env.obs"] = self._obs.detach().cpu().clone()
        host = {"started": self._started, "steps": self._steps.tolist(), "needs_reset": self._needs_reset.tolist(),
                "np_random": generator_state(self._np_random)}
        return EnvState(identity=copy.deepcopy(self._identity), host=host, tensors=tensors)

    def set_state(self, state: EnvState) -> None:
        """Continue from ``state`` (from :meth:`get_state` or :meth:`EnvState.load`): the next step gives what
        the env that made it would have given. A state from a different env (id, version, ``num_envs``,
        preset or any trajectory-changing setting) is refused with what differs; nothing changes then."""
        check_open(self)
        if not isinstance(state, EnvState):
            raise TypeError(f"set_state takes an EnvState, got {type(state).__name__}")
        state.check_matches(self._identity)
        tensors = dict(state.tensors)
        obs = tensors.pop("env.obs", None)
        if obs is None or obs.shape != self._obs.shape:
            raise ValueError(f"state tensor env.obs: expected shape {tuple(self._obs.shape)}")
        try:  # read every host value before anything changes
            host = state.host
            started = bool(host["started"])
            steps = np.asarray(host["steps"], dtype=np.int64)
            needs_reset = np.asarray(host["needs_reset"], dtype=bool)
            generator = restore_generator(host["np_random"])
            if steps.shape != (self.num_envs,) or needs_reset.shape != (self.num_envs,):
                raise ValueError(f"steps and needs_reset must hold {self.num_envs} values")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"the state's host values are malformed: {err}") from err
        self.state.load_tensors({k: v.to(self.device) for k, v in tensors.items()})  # checks all, then copies
        self._obs = obs.to(self.device, self._obs.dtype).clone()
        self._started, self._steps, self._needs_reset, self._np_random = started, steps, needs_reset, generator
        if self.render_mode is not None and started:  # the history before the state is not part of it
            self._record(np.ones(self.num_envs, dtype=bool), origin="restored")

    def fork(self) -> LLMRepairVectorEnv:
        """An independent copy of this env in its current state: stepped with the same actions, it gives the
        same observations, rewards and infos. It shares the read-only zoo, tasks and instance bank."""
        check_open(self)
        other = copy.copy(self)
        other.state = self.state.clone()
        other._obs = self._obs.clone()
        other._steps, other._needs_reset = self._steps.copy(), self._needs_reset.copy()
        other._np_random = copy.deepcopy(self._np_random)
        other._traces = copy.deepcopy(self._traces)
        for name in ("observation_space", "action_space", "single_observation_space", "single_action_space"):
            setattr(other, name, copy.deepcopy(getattr(self, name)))
        return other

    def close_extras(self, **kwargs: Any) -> None:
        """Free the envs' tensors; any later call but ``close`` raises."""
        self.state = None
        self._obs = None

    @property
    def started(self) -> bool:
        """Whether the envs have been reset (stepping before the first reset is refused)."""
        return self._started

    # --- reset ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> VectorResetReturn:
        """Reset all envs (or those in ``options["reset_mask"]``); env ``i`` is seeded with ``seed + i``.

        Without a seed, the first reset draws every env's seed from the env's generator; later ones give each
        reset env the episode a SAME_STEP autoreset would have started (its next seed from its own stream), so
        env ``i``'s episodes depend on its seed and actions alone, whatever the autoreset mode.

        ``options["instance"]`` (an int, or one int per env) starts the reset envs from those bank instances
        instead of drawing them from the seeded stream.
        """
        check_open(self)
        options = options or {}
        mask = check_reset_mask(options, self.num_envs, self._started)
        seeds = check_seeds(seed, self.num_envs)
        instance = check_instances(options.get("instance"), mask, self.bank)
        instance = None if instance is None else to_device(instance, self.device)
        super().reset(seed=int(seed) if isinstance(seed, (int, np.integer)) else None)  # validated: now change
        env_ids = to_device(np.flatnonzero(mask), self.device)
        with self._precision():
            if seeds is not None:
                episode_seeds = to_device(seeds[mask], self.device)
            elif self._started:  # each env continues its own stream, as a SAME_STEP autoreset would
                episode_seeds = self.state.rng.integers(env_ids, 2**62)
            else:
                episode_seeds = to_device(self.np_random.integers(0, 2**62, size=self.num_envs), self.device)
            fresh = self._reset_envs(env_ids, episode_seeds, instance)
            self._obs[env_ids] = self._observe(fresh, self.state.accuracy[env_ids], env_ids)
            info = self.info_columns()
        self._started = True
        self._needs_reset[mask] = False
        self._steps[mask] = 0
        if self.render_mode is not None:
            self._record(mask)
        if self.output == "torch":
            return self._obs.clone(), with_masks(info, mask)
        host = Unpacker.transfer([self._obs.double(), *as_columns(info)])
        obs = host.take(self._obs.shape[1]).astype(np.float32)
        return obs, with_masks(self._host_info(host, info), mask)

    def _reset_envs(self, env_ids: torch.Tensor, seeds: torch.Tensor,
                    instance: torch.Tensor | None = None) -> Measurement:
        """Fresh episodes for ``env_ids``: an instance (copied from the bank, or made live), then the episode's
        bookkeeping. Returns their measurement. No host synchronisation with a bank."""
        s, ctx = self.state, self.ctx
        s.rng.reseed(env_ids, seeds)
        if self.bank is None:
            start_live(ctx, s, env_ids, self.fault_ids, models=self.chosen_models(env_ids))
        else:
            chosen = self.bank.draw(s.rng, env_ids, self.fault_ids) if instance is None else instance
            self.bank.load(s, env_ids, chosen)
        s.fact_tables[env_ids] = ctx.zoo_fact_tables[s.zoo_model[env_ids]]
        s.opt.optimizer[env_ids] = optim.ADAMW
        s.opt.lr[env_ids] = lr_of_level(ctx, s.lr_level[env_ids])
        reset_optimizer(ctx, s, env_ids)
        s.healthy_accuracy[env_ids] = self._zoo_accuracy[s.zoo_model[env_ids]]
        m = measure(ctx, s, env_ids)
        s.accuracy[env_ids] = m.val_accuracy
        s.reset_accuracy[env_ids] = m.val_accuracy
        s.crashed[env_ids] = m.crashed
        s.snapshot[env_ids] = s.params[env_ids]
        s.snapshot_score[env_ids] = m.val_accuracy.mean(1)
        s.since_best[env_ids] = 0
        s.steps[env_ids] = 0
        s.flops[env_ids] = 0
        s.episode_cost[env_ids] = 0
        return m

    def chosen_models(self, env_ids: torch.Tensor) -> torch.Tensor | None:
        """The start model each of the reset envs ``env_ids`` must use in a live reset (-1: draw it), or None
        (here) when every env draws its own. Extension point: a subclass picks the start models this way."""
        return None

    # --- step ----------------------------------------------------------------------------------------

    def step(self, actions) -> VectorStepReturn:
        """Apply one action per env; see the class docstring for rewards, costs and episode ends.

        The device work runs without a host synchronisation; the results cross to the host in one transfer
        (none with ``output="torch"``; one more when ``cost_limit`` is set, to decide episode ends).
        """
        a = self._check_actions(actions)
        s = self.state
        with self._precision():
            act = to_device(a, self.device)
            self._apply(a)
            self._steps += 1
            obs, reward, flops, cost = self._advance(act, a)
            terminated, truncated = self._episode_ends(a)
            done = terminated | truncated
            reward = self._end_episodes(reward, done)
            info = self.info_columns(act, flops, cost)
            final = None
            if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
                done_ids = to_device(np.flatnonzero(done), self.device)
                final = (obs, info)
                fresh = self._reset_envs(done_ids, s.rng.integers(done_ids, 2**62))
                obs = obs.index_put((done_ids,), self._observe(fresh, s.accuracy[done_ids], done_ids))
                info = self.info_columns(act, flops, cost)  # done envs: their new episode
                self._steps[done] = 0
            elif self.autoreset_mode != AutoresetMode.SAME_STEP:
                self._needs_reset |= done
            self._obs = obs
        if self.render_mode is not None:  # an autoreset env's state is its new episode's start
            self._record(done & (self.autoreset_mode == AutoresetMode.SAME_STEP), a, reward, cost)
        return self._emit(obs, reward, terminated, truncated, info, final, done)

    def _advance(self, act: torch.Tensor, a: np.ndarray) -> tuple[torch.Tensor, ...]:
        """After the actions (``act`` on the device, ``a`` on the host) took effect: measure every env, then its
        observation, reward, FLOPs and safety cost, the episode's bookkeeping and the best snapshot."""
        s = self.state
        s.steps += 1
        flops = self._action_flops[act]
        s.flops += flops
        m = measure(self.ctx, s, self._all)
        score_before, score_now = s.accuracy.mean(1), m.val_accuracy.mean(1)
        newly_crashed = m.crashed & ~s.crashed
        reward = (score_now - score_before) - self.cost_weight * (flops / self.flops_ref).float() \
            - self.crash_penalty * newly_crashed.float()
        working = s.reset_accuracy >= s.healthy_accuracy - HEALTHY_MARGIN
        cost = ((s.accuracy - m.val_accuracy).clamp_min(0) * working).sum(1)
        s.episode_cost += cost
        better = (score_now > s.snapshot_score) & ~m.crashed
        s.snapshot.copy_(torch.where(better[:, None], s.params, s.snapshot))
        s.snapshot_score = torch.where(better, score_now, s.snapshot_score)
        s.since_best = torch.where(better, 0, s.since_best + 1)
        obs = self._observe(m, s.accuracy)
        s.accuracy, s.crashed = m.val_accuracy, m.crashed
        return obs, reward, flops, cost

    def _episode_ends(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(terminated, truncated)`` on the host after the actions ``a``: ``stop``, the cost limit (the one
        end that reads device values), the step limit."""
        terminated = self._is_stop[a].copy()
        if self.cost_limit is not None:
            terminated |= (self.state.episode_cost > self.cost_limit).cpu().numpy()
        truncated = (self._steps >= self.max_episode_steps) & ~terminated
        return terminated, truncated

    def _end_episodes(self, reward: torch.Tensor, done: np.ndarray) -> torch.Tensor:
        """The step's reward with what ending the ``done`` episodes adds (v0: nothing). Extension point."""
        return reward

    def _emit(self, obs, reward, terminated, truncated, info, final, done) -> tuple:
        """The step's results, as device tensors (``output="torch"``) or from one transfer to the host."""
        if self.output == "numpy":
            obs, reward, info, final = step_to_host(obs, reward, info, final, self._host_info)
            if final is not None:  # an object array: None for the envs still running
                final = (np.array([final[0][i] if done[i] else None for i in range(self.num_envs)], dtype=object),
                         final[1])
        else:
            terminated, truncated = (torch.as_tensor(x, device=self.device) for x in (terminated, truncated))
        info = with_masks(info, np.ones(self.num_envs, dtype=bool))
        if final is not None:
            info |= {"final_obs": final[0], "_final_obs": done.copy(), "final_info": with_masks(final[1], done),
                     "_final_info": done.copy()}
        return obs, reward, terminated, truncated, info

    def _check_actions(self, actions) -> np.ndarray:
        check_open(self)
        a = check_actions(actions, self.num_envs, len(self.actions))
        if not self._started:
            raise ValueError("call reset() before step()")
        if self._needs_reset.any():
            raise ValueError(f"envs {np.flatnonzero(self._needs_reset).tolist()} ended: reset them "
                             "(options={'reset_mask': ...}) before stepping")
        return a

    def _apply(self, a: np.ndarray) -> None:
        """Apply every env's action: one batched call per action present, never a loop over envs.

        The envs of each action are grouped on the host, so the device never has to tell which env did what.
        """
        order = np.argsort(a, kind="stable")
        counts = np.bincount(a, minlength=len(self.actions))
        starts = np.cumsum(counts) - counts
        grouped = to_device(order, self.device)  # one copy; each action's envs are a slice of it
        for index, action in enumerate(self.actions):
            if counts[index]:
                env_ids = grouped[starts[index]:starts[index] + counts[index]]
                action.effect(self.ctx, self.state, env_ids)

    # --- render ---------------------------------------------------------------------------------------

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """One frame per env of its episode so far: a string (``render_mode="ansi"``) or an ``uint8`` image
        ``[H, W, 3]`` of fixed size (``"rgb_array"``); see :class:`llm_repair_gym.envs.trace.Trace`."""
        check_open(self)
        if self.render_mode is None:
            gym.logger.warn(f"render() without a render_mode does nothing: make the env with render_mode in "
                            f"{list(RENDERERS)}")
            return None
        if not self._started:
            raise ValueError("call reset() before render()")
        return tuple(RENDERERS[self.render_mode](trace) for trace in self._traces)

    def _record(self, fresh: np.ndarray, actions: np.ndarray | None = None, reward: torch.Tensor | None = None,
                cost: torch.Tensor | None = None, origin: str = "reset") -> None:
        """Start a fresh trace (from ``origin``) for the envs in ``fresh`` and append the step of ``actions`` to
        the others' traces, from the envs' current state in one copy to the host. Only with a render_mode."""
        s, zero = self.state, torch.zeros(self.num_envs, device=self.device)
        reward, cost = zero if reward is None else reward, zero if cost is None else cost
        host = torch.cat([self._obs.double(), s.accuracy.double(), reward.double()[:, None],
                          cost.double()[:, None], s.instance.double()[:, None]], 1).cpu().numpy()
        record_steps(self._traces, host, fresh, actions, self.action_names, self.feature_names,
                     self.max_episode_steps, origin)

    # --- observation and info ------------------------------------------------------------------------

    def _observe(self, m, previous_accuracy: torch.Tensor, env_ids: torch.Tensor | None = None) -> torch.Tensor:
        s = self.state
        ids = self._all if env_ids is None else env_ids
        kept = sum(s.keep[f][ids].float().mean(1) for f in FAMILIES) / len(FAMILIES)
        cols = columns(m, previous_accuracy, self.group_names, s.opt.lr[ids], s.opt.optimizer[ids] == optim.ADAMW,
                       kept, s.steps[ids].float() / self.max_episode_steps,
                       (s.flops[ids] / (self.max_episode_steps * self.flops_ref)).float(),
                       s.snapshot_score[ids] - m.val_accuracy.mean(1),
                       s.since_best[ids].float() / self.max_episode_steps)
        return assemble(self.features, cols)

    def info_columns(self, actions: torch.Tensor | None = None, flops: torch.Tensor | None = None,
                     cost: torch.Tensor | None = None) -> dict:
        """The info of every env as device tensors ``[N]`` (copies: a later reset does not change them), with
        the step's ``actions``, ``flops`` and ``cost`` when given.

        Extension point: a subclass may add entries (tensors ``[N]``, or dicts of them). They reach the caller
        with the rest, in the step's one transfer; float32, int64 and bool entries keep their dtype."""
        s = self.state
        info: dict[str, Any] = {
            "accuracy": {f: s.accuracy[:, i].clone() for i, f in enumerate(FAMILIES)},
            "healthy_accuracy": {f: s.healthy_accuracy[:, i].clone() for i, f in enumerate(FAMILIES)},
            "score": s.accuracy.mean(1),
            "fault": {"type": s.fault_type.clone(), "target": s.fault_target.clone(),
                      "severity": s.fault_severity.clone()},
            "crashed": s.crashed.clone(),
            "episode_cost": s.episode_cost.clone(),
            "episode_flops": s.flops.clone(),
            "zoo_model": s.zoo_model.clone(),
            "instance": s.instance.clone(),
        }
        if actions is not None:
            info |= {"action": actions, "flops": flops, "cost": cost}
        return info

    def _host_info(self, host: Unpacker, info: dict) -> dict:
        """The numpy info from its packed columns (names for fault types, targets and actions)."""
        out = host.unpack(info)
        fault = out["fault"]
        fault["target"] = self._target_names[fault["type"], fault["target"] + 1]
        fault["type"] = np.array(self.fault_names, dtype=object)[fault["type"]]
        if "action" in out:
            out["action_name"] = np.array(self.action_names, dtype=object)[out.pop("action")]
        return out


class LLMRepairEnv(SingleEnv):
    """{manual}"""

    metadata = {"render_modes": list(RENDERERS), "render_fps": RENDER_FPS}
    vector_class = LLMRepairVectorEnv


LLMRepairVectorEnv.__doc__ = build_manual(HEALTHY_MARGIN, RENDER_FPS)
LLMRepairEnv.__doc__ = LLMRepairVectorEnv.__doc__
