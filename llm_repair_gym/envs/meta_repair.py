"""LLMMetaRepair-v0: adapt and repair the language model on meta-task variants it was not trained for.

An episode is set in a meta-task (:mod:`llm_repair_gym.meta.tasks`): a variant of the three task families,
whose accuracy is what the reward measures, and a fault from the env's fault distribution. The model starts
from an initialization (``init="zoo"``: a zoo model trained on the original tasks; ``init="maml"``: the
meta-learned initialization of :mod:`llm_repair_gym.meta.initialization`) with the fault injected, and the agent
adapts and repairs it with LLMRepair-v0's actions and observation.

A variant relabels tokens and swaps the fact table. Training a model on relabelled data is the same as
training, on the original data, the model whose token embeddings are permuted the same way (the output layer
is tied to them, so logits and every gradient are permuted alike). So each variant's start model is stored in
the original token coordinates, with the variant's fact table, and every action, measurement and fault of
LLMRepair-v0 applies unchanged. ``tests/test_meta_repair.py`` checks the equivalence.

The meta-RL interface is learn2learn's ``MetaEnv``: ``sample_tasks(n)``, ``set_task(task)``, ``get_task()``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch

from llm_repair_gym.envs.arguments import check_open
from llm_repair_gym.envs.manual import build_manual
from llm_repair_gym.envs.repair import HEALTHY_MARGIN, RENDER_FPS, LLMRepairEnv, LLMRepairVectorEnv
from llm_repair_gym.envs.snapshot import EnvState, json_config
from llm_repair_gym.envs.types import VectorResetReturn
from llm_repair_gym.lm.model import ParamLayout
from llm_repair_gym.meta.initialization import MetaInitConfig, load_meta_init
from llm_repair_gym.meta.tasks import META_SPLITS, META_TASKS_VERSION, check_task, meta_tasks, task_tables
from llm_repair_gym.repair.dynamics import validation_accuracy

META_ENV_ID = "LLMMetaRepair-v0"
INITS = ("zoo", "maml")
DEFAULT_META_FAULTS = ("none", "weight_noise", "bad_hparams")


def relabel_embeddings(flat: torch.Tensor, token_maps: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    """``flat [N, P]`` with each row's token embeddings permuted by its ``token_maps [N, vocab]``: the model that
    behaves on the original tokens as the given model does on the relabelled ones (``wte'[t] = wte[map[t]]``)."""
    out = flat.clone()
    cols = layout.span("wte")
    vocab = token_maps.shape[1]
    wte = flat[:, cols].view(flat.shape[0], vocab, -1)
    out[:, cols] = torch.gather(wte, 1, token_maps[:, :, None].expand_as(wte)).reshape(flat.shape[0], -1)
    return out


class LLMMetaRepairVectorEnv(LLMRepairVectorEnv):
    """{manual}"""

    ENV_ID = META_ENV_ID

    def __init__(self, num_envs: int = 1, split: str = "train", init: str = "zoo", meta_seed: int = 0,
                 meta_config: MetaInitConfig | None = None, faults: list[str] | None = None,
                 **kwargs: Any) -> None:
        if split not in META_SPLITS:
            raise ValueError(f"split must be one of {META_SPLITS}, got {split!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if isinstance(meta_seed, bool) or not isinstance(meta_seed, int) or meta_seed < 0:
            raise ValueError(f"meta_seed must be an int >= 0, got {meta_seed!r}")
        if meta_config is not None and not isinstance(meta_config, MetaInitConfig):
            raise ValueError(f"meta_config must be a MetaInitConfig or None, got {type(meta_config).__name__}")
        if kwargs.get("instances", "live") != "live" or "bank" in kwargs:
            raise ValueError("LLMMetaRepair-v0 makes every instance live (its start models depend on the task): "
                             "instances and bank are not arguments of it")
        faults = list(DEFAULT_META_FAULTS if faults is None else faults)
        super().__init__(num_envs=num_envs, faults=faults, instances="live", **kwargs)
        self.split, self.init = split, init
        self.tasks = meta_tasks(split)
        ctx = self.ctx
        facts, maps = task_tables(self.tasks, ctx.task_suite)
        if init == "zoo":  # task i starts from zoo model i mod M
            starts = ctx.zoo_params[torch.arange(len(self.tasks), device=self.device) % ctx.zoo_params.shape[0]]
        else:
            meta = load_meta_init(self.preset, seed=meta_seed, config=meta_config, cache_dir=kwargs.get("cache_dir"),
                                  device=self.device, progress=kwargs.get("progress", True))
            starts = meta.theta.expand(len(self.tasks), -1)
        self.ctx = dataclasses.replace(ctx, zoo_params=relabel_embeddings(starts, maps, ctx.layout),
                                       zoo_fact_tables=facts)
        self._zoo_accuracy = validation_accuracy(self.ctx, self.ctx.zoo_params, facts)  # the inits, per task
        self._task_choice = np.full(num_envs, -1, dtype=np.int64)  # -1: each reset draws a task of the split
        self._identity["env_id"] = META_ENV_ID
        self._identity["config"] |= json_config(split=split, init=init, meta_seed=meta_seed,
                                                meta_tasks_version=META_TASKS_VERSION,
                                                meta_config=dataclasses.asdict(meta_config or MetaInitConfig()))

    # --- the MetaEnv interface -------------------------------------------------------------------------

    def sample_tasks(self, num_tasks: int) -> list[dict]:
        """``num_tasks`` tasks of the env's split, drawn with replacement from the env's generator."""
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int | np.integer) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
        picks = self.np_random.integers(0, len(self.tasks), size=int(num_tasks))
        return [copy.deepcopy(self.tasks[i]) for i in picks]

    def set_task(self, task: dict | list[dict | None] | None) -> None:
        """From the next reset of each env on (autoresets included), set its episodes in ``task``: one task for
        every env, or a list of ``num_envs`` (None: draw a task of the split at each reset, the default)."""
        check_open(self)
        tasks = task if isinstance(task, list) else [task] * self.num_envs
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_task takes one task or a list of {self.num_envs} (one per env), got {len(tasks)}")
        self._task_choice = np.array([-1 if t is None else self._task_index(t) for t in tasks], dtype=np.int64)

    def get_task(self) -> list[dict]:
        """The task of every env's current episode (after the first reset)."""
        check_open(self)
        if not self.started:
            raise ValueError("get_task needs a reset first: the task of an episode is fixed at its reset")
        return [copy.deepcopy(self.tasks[i]) for i in self.state.zoo_model.cpu().tolist()]

    def _task_index(self, task: dict) -> int:
        check_task(task)
        content = {k: task[k] for k in ("syntax", "logic", "fact_seed")}
        for index, known in enumerate(self.tasks):
            if {k: known[k] for k in content} == {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in content.items()}:
                return index
        raise ValueError(f"task {task.get('id', '?')!r} is not a task of the {self.split!r} split: set_task takes "
                         f"a task from sample_tasks() or meta_tasks({self.split!r})")

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> VectorResetReturn:
        """LLMRepair-v0's reset, plus ``options["task"]``: an index into the split's tasks (an int, or one per
        env) that sets the reset envs' task for this reset only (``set_task`` sets it for every later one)."""
        options = dict(options or {})
        if "task" not in options:
            return super().reset(seed=seed, options=options)
        task = options.pop("task")
        ids = np.broadcast_to(np.asarray(task), (self.num_envs,)) if np.ndim(task) == 0 else np.asarray(task)
        if ids.shape != (self.num_envs,) or not np.issubdtype(ids.dtype, np.integer) or \
                ids.min() < 0 or ids.max() >= len(self.tasks):
            raise ValueError(f"options['task'] must be an int or {self.num_envs} ints in [0, {len(self.tasks)}) "
                             f"(the tasks of the {self.split!r} split), got {task!r}")
        saved = self._task_choice
        self._task_choice = ids.astype(np.int64)
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._task_choice = saved

    def chosen_models(self, env_ids: torch.Tensor) -> torch.Tensor:
        """The start model of each reset env: its chosen task's (-1: draw a task of the split)."""
        return torch.as_tensor(self._task_choice, device=self.device)[env_ids]

    # --- state: the task choice travels with it ------------------------------------------------------------

    def get_state(self) -> EnvState:
        state = super().get_state()
        state.host["task_choice"] = self._task_choice.tolist()
        return state

    def set_state(self, state: EnvState) -> None:
        try:
            choice = np.asarray(state.host["task_choice"], dtype=np.int64)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"the state's host values are malformed: {err}") from err
        if choice.shape != (self.num_envs,) or (choice < -1).any() or (choice >= len(self.tasks)).any():
            raise ValueError(f"task_choice must hold {self.num_envs} ints in [-1, {len(self.tasks)})")
        super().set_state(state)
        self._task_choice = choice

    def fork(self) -> LLMMetaRepairVectorEnv:
        other = super().fork()
        other._task_choice = self._task_choice.copy()
        return other

    # --- info: the task index ------------------------------------------------------------------------

    def info_columns(self, actions=None, flops=None, cost=None) -> dict:
        """LLMRepair-v0's info, and ``task``: the index of each env's task in the split (int64)."""
        info = super().info_columns(actions, flops, cost)
        info["task"] = self.state.zoo_model.clone()
        return info


class LLMMetaRepairEnv(LLMRepairEnv):
    """{manual}"""

    vector_class = LLMMetaRepairVectorEnv

    def sample_tasks(self, num_tasks: int) -> list[dict]:
        """``num_tasks`` tasks of the env's split (see :meth:`LLMMetaRepairVectorEnv.sample_tasks`)."""
        return self.vector.sample_tasks(num_tasks)

    def set_task(self, task: dict | None) -> None:
        """Set the next episodes in ``task`` (None: draw a task of the split at each reset)."""
        if isinstance(task, list):
            raise ValueError("the single env takes one task (a dict) or None")
        self.vector.set_task(task)

    def get_task(self) -> dict:
        """The current episode's task."""
        return self.vector.get_task()[0]


def _meta_manual() -> str:
    faults = ", ".join(f"`{f}`" for f in DEFAULT_META_FAULTS)
    return build_manual(HEALTHY_MARGIN, RENDER_FPS, **{
        "": "Adapt and repair a small GPT-2 on a meta-task: a variant of its task families it was not trained on.",
        "Description": f"""\
    An episode is set in a *task*: a variant of the three task families (the bracket alphabet relabelled,
    sorting under a permuted digit order, a fresh fact table; see `llm_repair_gym.meta.tasks`). The model
    starts from an initialization, `init="zoo"` (a zoo model, trained on the original tasks) or `init="maml"`
    (the meta-learned initialization, `llm_repair_gym.meta.initialization`), with a fault injected (default faults:
    {faults}; any of LLMRepair-v0's may be given). Reward, cost, actions and observation are
    LLMRepair-v0's, measured on the task's own validation examples: the agent adapts the model to the task
    and repairs it.
    The meta-RL interface is learn2learn's `MetaEnv`: `sample_tasks(n)`, `set_task(task)` and `get_task()`.""",
        "Starting State": """\
    The task's start model (the initialization, its token embeddings permuted by the task's relabelling, and
    the task's fact table: an exact change of coordinates, see the module docstring), a pool of training
    examples, then a fault drawn from `faults` and injected live (no instance bank: start models depend on the
    task). A reset draws a task of the split uniformly from the env's stream, unless `set_task` fixed one:
    then every later episode of that env (autoresets included) is set in it; `reset(options={"task": k})`
    (an int, or one per env) sets the reset envs' task for that reset only. `healthy_accuracy` in the info
    is the initialization's accuracy on the task before the fault. `reset(seed=s)` seeds env `i` with
    `s + i`; unseeded resets continue each env's stream, as in LLMRepair-v0.""",
        "Arguments": """\
    `split` ("train": the 64 meta-train tasks, "test": the 32 meta-test tasks, none of them met in
    meta-training), `init` ("zoo" or "maml"), `meta_seed` (0) and `meta_config` (a `MetaInitConfig`) pick the
    meta-learned initialization (built and cached on first use), `faults` (default
    none, weight_noise, bad_hparams), and LLMRepair-v0's arguments except `instances` and `bank`.""",
        "Info": """\
    LLMRepair-v0's info, and `task`: the index of the episode's task in `meta_tasks(split)` (also in
    `zoo_model`).""",
        "Version History": f"""\
    * v0 (0.7): unchanged dynamics; the reset option `task`; render modes `ansi` and `rgb_array`.
    * v0 (0.6): unchanged dynamics.
    * v0 (0.5): initial version; meta-task splits v{META_TASKS_VERSION}.""",
    })


LLMMetaRepairVectorEnv.__doc__ = _meta_manual()
LLMMetaRepairEnv.__doc__ = LLMMetaRepairVectorEnv.__doc__
