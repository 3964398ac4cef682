"""LLMRepair-v1: hidden compound faults, paid diagnosis, per-episode prices, scored on unseen examples.

``LLMRepairV1VectorEnv`` reuses v0's machinery (batched state, reset and step flow, autoreset, state files,
fork, render) and replaces what makes the problem: the fault table (:mod:`~llm_repair_gym.repair.faults_v1`),
the actions with probes and a paid checkpoint (:mod:`~llm_repair_gym.repair.actions_v1`), the free
measurement and the test score (:mod:`~llm_repair_gym.repair.measure_v1`), the observation
(:mod:`~llm_repair_gym.repair.features_v1`) and the reward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from llm_repair_gym._version import __version__
from llm_repair_gym.envs.arguments import check_settings
from llm_repair_gym.envs.host_io import Unpacker
from llm_repair_gym.envs.manual_v1 import build_manual_v1
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.envs.single import SingleEnv
from llm_repair_gym.envs.snapshot import STATE_FORMAT, EnvState, json_config
from llm_repair_gym.envs.suites import suite_bank
from llm_repair_gym.envs.trace import RENDERERS
from llm_repair_gym.lm import optim
from llm_repair_gym.lm.model import group_names
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.lm.zoo import zoo_hash
from llm_repair_gym.repair.actions_v1 import INERT_KINDS, build_actions_v1
from llm_repair_gym.repair.dynamics import DYNAMICS_V1, DynamicsConfig, lr_of_level, reset_optimizer
from llm_repair_gym.repair.faults_v1 import FAULT_NAMES_V1, FAULTS_V1, fault_mask, poison_moments
from llm_repair_gym.repair.features import assemble
from llm_repair_gym.repair.features_v1 import PRICE_SPAN, build_features_v1, columns_v1
from llm_repair_gym.repair.instances import BankConfig
from llm_repair_gym.repair.instances_v1 import DEFAULT_BANK_V1, blank_state_v1, load_bank_v1, start_live_v1
from llm_repair_gym.repair.measure_v1 import FreeMeasurement, measure_free, test_accuracy, weight_groups
from llm_repair_gym.repair.probes import build_probes

ENV_ID_V1 = "LLMRepair-v1"
MIN_BUDGET = 12  # an episode's step budget is uniform in [MIN_BUDGET, max_episode_steps]
RENDER_FPS = 2


class LLMRepairV1VectorEnv(LLMRepairVectorEnv):
    """{manual}"""

    ENV_ID = ENV_ID_V1

    def __init__(self, num_envs: int = 1, preset: str | Preset = "nano", faults: list[str] | None = None,
                 cost_weight: float = 0.003, crash_penalty: float = 1.0, max_episode_steps: int = 32,
                 device: str | torch.device = "cpu", zoo_seed: int = 0, cache_dir: str | None = None,
                 dynamics: DynamicsConfig | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, progress: bool = True,
                 instances: str = "train", bank: BankConfig | None = None, precision: str = "fp32",
                 output: str = "numpy", chunk_envs: int = 256, compile: bool = False,
                 num_threads: int | None = None, render_mode: str | None = None, suite: str | None = None) -> None:
        autoreset_mode = check_settings(num_envs, max_episode_steps, cost_weight, crash_penalty, None,
                                        autoreset_mode, instances, output, chunk_envs, render_mode)
        if max_episode_steps < MIN_BUDGET:
            raise ValueError(f"LLMRepair-v1 needs max_episode_steps >= {MIN_BUDGET} (its budgets are drawn from "
                             f"[{MIN_BUDGET}, max_episode_steps]), got {max_episode_steps}")
        self.allowed_faults = fault_mask(faults)
        self._setup(num_envs, preset, device, precision, num_threads, max_episode_steps, cost_weight, crash_penalty,
                    None, autoreset_mode, instances, output, render_mode, dynamics or DYNAMICS_V1, zoo_seed,
                    cache_dir, progress, chunk_envs, compile)
        bank = bank or DEFAULT_BANK_V1
        self.bank = None
        if instances != "live":
            self.bank = load_bank_v1(self.ctx, bank, instances, zoo_hash(self.preset, zoo_seed), cache_dir, progress)
            if suite is not None:
                self.bank = suite_bank(self, suite)
            if faults is not None:
                self.bank = self.bank.with_faults(self.allowed_faults)
        elif suite is not None:
            raise ValueError("suite= draws from an instance bank: make the env with instances='train' or 'test'")
        if instances == "live" and faults is not None:
            raise ValueError("faults= limits which bank instances are drawn; live v1 resets draw from every fault")
        self.suite = suite
        self.group_names = group_names(self.preset.model)
        self.weight_group_names = [name for name, _ in weight_groups(self.ctx)]
        self.probes = build_probes(self.preset, self.group_names)
        self.actions = build_actions_v1(self.preset, self.ctx.dynamics, self.probes)
        self.features = build_features_v1(self.weight_group_names, self.probes)
        self.action_names = [a.name for a in self.actions]
        self.feature_names = [f.name for f in self.features]
        self.fault_names = list(FAULT_NAMES_V1)
        self._action_flops = torch.tensor([a.flops for a in self.actions], dtype=torch.float64, device=self.device)
        self._is_stop = np.array([a.kind == "stop" for a in self.actions])
        self._is_inert = np.array([a.kind in INERT_KINDS for a in self.actions])
        self.flops_ref = self.actions[0].flops  # train_all
        self._zoo_test = None  # the zoo models' test accuracy, measured at the first reset
        n_values = sum(len(p.features) for p in self.probes)
        self._setup_spaces(blank_state_v1(self.ctx, num_envs, n_values, len(self.probes)))
        self._budget = np.full(num_envs, max_episode_steps, dtype=np.int64)  # host mirror of state.budget
        self._poisoned = self.fault_names.index("adam_poison")
        self._forced_sets: torch.Tensor | None = None  # options["faults"] of the reset in progress
        self._identity = {"env_id": ENV_ID_V1, "format": STATE_FORMAT, "version": __version__, "num_envs": num_envs,
                          "config": json_config(
                              preset=dataclasses.asdict(self.preset), zoo_seed=zoo_seed,
                              dynamics=dataclasses.asdict(self.ctx.dynamics), instances=instances,
                              bank=dataclasses.asdict(bank) if instances != "live" else None,
                              faults=[FAULT_NAMES_V1[i] for i in self.allowed_faults], cost_weight=cost_weight,
                              crash_penalty=crash_penalty, max_episode_steps=max_episode_steps, precision=precision,
                              suite=suite, autoreset_mode=autoreset_mode.value)}

    # --- state ---------------------------------------------------------------------------------------

    def get_state(self) -> EnvState:
        """v0's state, with each env's step budget."""
        out = super().get_state()
        out.host["budget"] = self._budget.tolist()
        return out

    def set_state(self, state: EnvState) -> None:
        """v0's ``set_state``, budgets included (a state of another env is refused first, saying what differs)."""
        if isinstance(state, EnvState):
            state.check_matches(self._identity)  # first: a state of another env says what differs
        budget = np.asarray(state.host.get("budget", []), dtype=np.int64) if hasattr(state, "host") else None
        if budget is not None and budget.shape != (self.num_envs,):
            raise ValueError(f"the state's host values are malformed: budget must hold {self.num_envs} values")
        super().set_state(state)
        self._budget = budget

    def fork(self) -> LLMRepairV1VectorEnv:
        """v0's ``fork``, budgets included."""
        other = super().fork()
        other._budget = self._budget.copy()
        return other

    # --- reset ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """v0's reset, plus ``options["faults"]`` (live instances only): the exact fault set of every reset env,
        a list of fault names (``[]``: healthy), or one such list per env of the batch."""
        options = dict(options or {})
        self._forced_sets = self._fault_sets(options.pop("faults", None))
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._forced_sets = None

    def _fault_sets(self, faults: Any) -> torch.Tensor | None:
        """``options["faults"]`` as ``[N, K]`` bool, checked before anything changes."""
        if faults is None:
            return None
        if self.bank is not None:
            raise ValueError("options['faults'] makes live instances: make the env with instances='live'")
        per_env = faults if faults and all(isinstance(x, (list, tuple)) for x in faults) else [faults] * self.num_envs
        if not isinstance(faults, (list, tuple)) or len(per_env) != self.num_envs:
            raise ValueError(f"options['faults'] must be a list of fault names or one list per env "
                             f"({self.num_envs}), got {faults!r}")
        sets = torch.zeros(self.num_envs, len(FAULTS_V1), dtype=torch.bool)
        for i, names in enumerate(per_env):
            if names:
                sets[i, fault_mask(list(names))] = True
        return sets.to(self.device)

    def _reset_envs(self, env_ids: torch.Tensor, seeds: torch.Tensor,
                    instance: torch.Tensor | None = None) -> FreeMeasurement:
        s, ctx = self.state, self.ctx
        s.rng.reseed(env_ids, seeds)
        if self.bank is None:
            sets = None if self._forced_sets is None else self._forced_sets[env_ids]
            start_live_v1(ctx, s, env_ids, sets, models=self.chosen_models(env_ids))
        else:
            chosen = self.bank.draw(s.rng, env_ids) if instance is None else instance
            self.bank.load(s, env_ids, chosen)
        s.fact_tables[env_ids] = ctx.zoo_fact_tables[s.zoo_model[env_ids]]
        s.opt.optimizer[env_ids] = optim.ADAMW
        s.lr_level[env_ids] = 0
        s.opt.lr[env_ids] = lr_of_level(ctx, s.lr_level[env_ids]) * s.lr_scale[env_ids]
        reset_optimizer(ctx, s, env_ids)
        poisoned = s.faults[env_ids, self._poisoned]
        severity = s.fault_severities[env_ids, self._poisoned]
        clean = (s.opt.exp_avg[env_ids], s.opt.exp_avg_sq[env_ids], s.opt.step[env_ids])
        poison_moments(ctx, s, env_ids, severity)  # drawn for every env (a fixed use of the stream), kept where due
        for buffer, before in zip((s.opt.exp_avg, s.opt.exp_avg_sq, s.opt.step), clean):
            buffer[env_ids] = torch.where(poisoned[:, None], buffer[env_ids], before)
        u_price, u_budget = s.rng.uniform(env_ids, (2,)).unbind(1)
        s.price[env_ids] = self.cost_weight * torch.pow(PRICE_SPAN, u_price - 0.5)
        span = self.max_episode_steps - MIN_BUDGET + 1
        s.budget[env_ids] = MIN_BUDGET + (u_budget * span).long().clamp_max(span - 1)
        s.probe_values[env_ids] = 0.0
        s.probe_step[env_ids] = -1
        s.has_checkpoint[env_ids] = False
        s.snapshot[env_ids] = s.params[env_ids]
        s.healthy_accuracy[env_ids] = self._healthy_test()[s.zoo_model[env_ids]]
        m = measure_free(ctx, s, env_ids)
        self._remember(m, env_ids)
        s.reset_accuracy[env_ids] = m.val_accuracy
        s.val_start[env_ids] = m.val_accuracy.mean(1)
        if self.bank is None:  # a bank instance brings its test accuracy
            s.test_accuracy[env_ids] = test_accuracy(ctx, s, env_ids)
        s.test_start[env_ids] = s.test_accuracy[env_ids]
        for name in ("steps", "flops", "episode_cost", "crashes", "objective", "since_best"):
            getattr(s, name)[env_ids] = 0
        s.snapshot_score[env_ids] = 0
        host_ids = env_ids.cpu().numpy()
        self._budget[host_ids] = s.budget[env_ids].cpu().numpy()  # read once per reset: episode ends stay on host
        return m

    def _healthy_test(self) -> torch.Tensor:
        """``[M, F]``: the test accuracy of every zoo model (measured once)."""
        if self._zoo_test is None:
            probe = blank_state_v1(self.ctx, len(self.ctx.zoo_params), 0, 0)
            probe.params.copy_(self.ctx.zoo_params)
            probe.fact_tables.copy_(self.ctx.zoo_fact_tables)
            self._zoo_test = test_accuracy(self.ctx, probe, torch.arange(len(self.ctx.zoo_params), device=self.device))
        return self._zoo_test

    # --- step ----------------------------------------------------------------------------------------

    def _advance(self, act: torch.Tensor, a: np.ndarray):
        """Measure the envs whose action changed the model or its data (an inert action keeps the last
        measurement); reward = validation change - price x compute - crash penalty."""
        s = self.state
        s.steps += 1
        flops = self._action_flops[act]
        s.flops += flops
        m = self._measure(~self._is_inert[a])
        newly_crashed = m.crashed & ~s.crashed
        s.crashes += newly_crashed.long()
        reward = (m.val_accuracy.mean(1) - s.accuracy.mean(1)) - s.price * (flops / self.flops_ref).float() \
            - self.crash_penalty * newly_crashed.float()
        cost = (s.accuracy - m.val_accuracy).clamp_min(0).sum(1)  # safety cost: validation accuracy lost
        s.episode_cost += cost
        obs = self._observe(m, s.accuracy)
        self._remember(m, self._all)
        return obs, reward, flops, cost

    def _measure(self, changed: np.ndarray) -> FreeMeasurement:
        """A fresh free measurement of the ``changed`` envs (host mask); the last one of the others."""
        s = self.state
        if changed.all():
            return measure_free(self.ctx, s, self._all)
        last = FreeMeasurement(s.accuracy.clone(), s.val_loss.clone(), s.train_loss.clone(), s.weight_rms.clone(),
                               s.sparsity.clone(), s.crashed.clone())
        if changed.any():
            ids = torch.as_tensor(np.flatnonzero(changed), device=self.device)
            fresh = measure_free(self.ctx, s, ids)
            for name in FreeMeasurement.__dataclass_fields__:
                getattr(last, name)[ids] = getattr(fresh, name)
        return last

    def _remember(self, m: FreeMeasurement, env_ids: torch.Tensor) -> None:
        """Keep the measurement ``m`` of ``env_ids`` in the state (what the next inert action observes)."""
        s = self.state
        for name, field in (("accuracy", "val_accuracy"), ("val_loss", "val_loss"), ("train_loss", "train_loss"),
                            ("weight_rms", "weight_rms"), ("sparsity", "sparsity"), ("crashed", "crashed")):
            getattr(s, name)[env_ids] = getattr(m, field)

    def _episode_ends(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``stop`` or the episode's own budget ends it (terminated: the budget is in the observation, so its
        end is part of the task, not a time limit); ``max_episode_steps`` is never reached first."""
        terminated = self._is_stop[a] | (self._steps >= self._budget)
        return terminated, np.zeros_like(terminated)

    def _end_episodes(self, reward: torch.Tensor, done: np.ndarray) -> torch.Tensor:
        """Add the terminal term to the ending episodes' reward: (test - validation) now minus at reset, so the
        return telescopes to the objective: test gain - price x compute - crash penalties."""
        if not done.any():
            return reward
        s = self.state
        ids = torch.as_tensor(np.flatnonzero(done), device=self.device)
        s.test_accuracy[ids] = test_accuracy(self.ctx, s, ids)
        test_now, test_then = s.test_accuracy[ids].mean(1), s.test_start[ids].mean(1)
        terminal = (test_now - s.accuracy[ids].mean(1)) - (test_then - s.val_start[ids])
        s.objective[ids] = (test_now - test_then) - s.price[ids] * (s.flops[ids] / self.flops_ref).float() \
            - self.crash_penalty * s.crashes[ids].float()
        return reward.index_add(0, ids, terminal)

    def score_test(self, env_ids: np.ndarray | None = None) -> np.ndarray:
        """Privileged, for planners on their own copies of an episode: the mean test-split accuracy of the envs
        ``env_ids`` (all by default) now, which the objective would count if their episodes ended here. Changes
        nothing; an agent never sees the test split."""
        ids = self._all if env_ids is None else torch.as_tensor(np.asarray(env_ids, dtype=np.int64),
                                                                 device=self.device)
        return test_accuracy(self.ctx, self.state, ids).mean(1).cpu().numpy()

    # --- observation and info ------------------------------------------------------------------------

    def _observe(self, m: FreeMeasurement, previous_accuracy: torch.Tensor,
                 env_ids: torch.Tensor | None = None) -> torch.Tensor:
        s = self.state
        ids = self._all if env_ids is None else env_ids
        budget = s.budget[ids].float()
        settings = {
            "log10_lr": torch.log10(lr_of_level(self.ctx, s.lr_level[ids])),
            "optimizer_adamw": (s.opt.optimizer[ids] == optim.ADAMW).float(),
            "kept_fraction": sum(s.keep[f][ids].float().mean(1) for f in FAMILIES) / len(FAMILIES),
            "has_checkpoint": s.has_checkpoint[ids].float(),
            "steps_used": s.steps[ids].float() / budget,
            "budget": budget / self.max_episode_steps,
            "log10_price": torch.log10(s.price[ids]),
            "compute_used": (s.flops[ids] / (budget.double() * self.flops_ref)).float(),
        }
        cols = columns_v1(m, previous_accuracy, self.weight_group_names, self.probes, settings, s.probe_values[ids],
                          s.probe_step[ids], s.steps[ids], self.max_episode_steps)
        return assemble(self.features, cols)

    def info_columns(self, actions=None, flops=None, cost=None) -> dict:
        """v0's info with v1's: the fault set (``fault``: types joined by ``+``, targets, the largest severity;
        ``faults``, ``fault_targets``, ``fault_severities``: one entry per type), ``price``, ``budget``,
        ``test_score`` (test accuracy at reset or at the episode's end) and ``objective`` (set when the episode
        ends); ``healthy_accuracy`` is the zoo model's test accuracy."""
        info = super().info_columns(actions, flops, cost)
        s = self.state
        info["fault"] = {"type": s.faults.long() @ (2 ** torch.arange(len(FAULTS_V1), device=self.device)),
                         "severity": s.fault_severities.amax(1)}
        info["faults"] = {name: s.faults[:, k].clone() for k, name in enumerate(FAULT_NAMES_V1)}
        info["fault_targets"] = {name: s.fault_targets[:, k].clone() for k, name in enumerate(FAULT_NAMES_V1)}
        info["fault_severities"] = {name: s.fault_severities[:, k].clone() for k, name in enumerate(FAULT_NAMES_V1)}
        info |= {"price": s.price.clone(), "budget": s.budget.clone(), "test_score": s.test_accuracy.mean(1),
                 "objective": s.objective.clone()}
        return info

    def _host_info(self, host: Unpacker, info: dict) -> dict:
        out = host.unpack(info)
        fault = out["fault"]
        bits = fault["type"]
        fault["type"] = np.array([fault_set_name(int(b)) for b in bits], dtype=object)
        targets = np.stack([out["fault_targets"][name] for name in FAULT_NAMES_V1], 1)
        fault["target"] = np.array([_targets(int(b), row) for b, row in zip(bits, targets)], dtype=object)
        if "action" in out:
            out["action_name"] = np.array(self.action_names, dtype=object)[out.pop("action")]
        return out


def fault_set_name(bits: int) -> str:
    """The fault set with bit ``k`` for fault ``k``, as names joined by ``+`` in table order (``none`` if empty)."""
    names = [name for k, name in enumerate(FAULT_NAMES_V1) if bits >> k & 1]
    return "+".join(names) if names else "none"


def _targets(bits: int, targets: np.ndarray) -> str | None:
    out = []
    for k, row in enumerate(FAULTS_V1):
        if bits >> k & 1 and row.target_kind != "none":
            t = int(targets[k])
            out.append(f"block{t}" if row.target_kind == "block" else FAMILIES[t])
    return "+".join(out) if out else None


class LLMRepairV1Env(SingleEnv):
    """{manual}"""

    metadata = {"render_modes": list(RENDERERS), "render_fps": RENDER_FPS}
    vector_class = LLMRepairV1VectorEnv


LLMRepairV1VectorEnv.__doc__ = build_manual_v1()
LLMRepairV1Env.__doc__ = LLMRepairV1VectorEnv.__doc__
