"""The manual of LLMRepair-v0 (its env classes' docstring): prose around tables generated from the code.

The action, feature and fault tables, and the numbers in the text, come from the default preset (``tiny``) and
the default ``DynamicsConfig``. Envs built on LLMRepair-v0 (``LLMMetaRepair-v0``) replace sections by title or
add new ones.
"""

from __future__ import annotations

from llm_repair_gym.lm.model import group_names
from llm_repair_gym.lm.presets import get_preset
from llm_repair_gym.repair.actions import CATEGORIES, build_actions
from llm_repair_gym.repair.dynamics import DynamicsConfig
from llm_repair_gym.repair.faults import FAULTS
from llm_repair_gym.repair.features import build_features


def build_manual(healthy_margin: float, render_fps: int, **overrides: str) -> str:
    """The env manual, generated from the action, feature and fault tables of the default preset, with the env's
    ``healthy_margin`` (``HEALTHY_MARGIN``: what counts as a working family) and ``render_fps``.

    ``overrides`` replace sections by title (``""``: the opening paragraph) or add new ones at the end."""
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
    sections = {
        "": """Repair a small GPT-2 that has something wrong with it.""",
        "Description": f"""\
    At reset each env starts from an instance: a healthy model of the preset's zoo with a fault injected
    (see Starting State). The agent sees features of the model's state and outputs and edits its
    parameters, its training data and its training algorithm until it declares the model repaired
    (`stop`). Categories: {", ".join(CATEGORIES)}.

    | fault | what happened | what a good repair looks like |
    |---|---|---|
{fault_rows}""",
        "Action Space": f"""\
    `Discrete({len(actions)})` for the `tiny` preset (one `reinit_block` per block). FLOPs are relative to
    `train_all` ({flops_ref:.3g} FLOPs); `env.unwrapped.action_names` lists them.

    | index | action | category | FLOPs / train_all | effect |
    |---|---|---|---|---|
{action_rows}""",
        "Observation Space": f"""\
    `Box(float32, ({len(features)},))` for `tiny`; every value clipped into its bounds, so it stays finite
    when a model diverges. `env.unwrapped.feature_names` names every index.

    | index | feature | min | max | meaning |
    |---|---|---|---|---|
{feature_rows}""",
        "Rewards": f"""\
    `reward = (S_t - S_(t-1)) - cost_weight * flops_t / flops_ref - crash_penalty * [diverged now]`, where S
    is the mean validation exact-match accuracy over families ({dyn.eval_size} fixed validation examples
    each). `info["cost"]` is the accuracy lost this step on families that worked at reset (within
    {healthy_margin} of healthy): a Safety-Gymnasium style cost, reported apart from the reward.""",
        "Starting State": f"""\
    An *instance*: a zoo model with a fault injected, a pool of {dyn.pool_size} training examples per family
    (all kept), the fault's lr level (AdamW, fresh moments). By default instances come from a cached instance
    bank (`instances="train"`, or `"test"` for evaluation: disjoint seeds, never met in training), built once
    per preset, zoo and dynamics (about 2.5 minutes on 2 CPU cores for the tiny preset's 512 + 256
    instances), so a reset is a copy; every fault but `none` costs its worst family at least
    `BankConfig.min_drop` (0.25) accuracy, and an instance is drawn with a fault type uniform over `faults`.
    `instances="live"` injects a fresh fault at every reset instead (unbounded variety, far slower resets).
    `reset(options={{"instance": k}})` starts from bank instance `k` (an int, or one per env).
    `reset(seed=s)` seeds env `i` with `s + i`. Without a seed, the first reset draws the seeds from the env's
    generator and every later one gives a reset env the episode a SAME_STEP autoreset would have started (its
    next seed from its own stream): env `i`'s episodes depend on its seed and actions alone, so N single envs
    behind SB3's `DummyVecEnv` step exactly like the native vector env, autoresets included.""",
        "Episode End": """\
    Terminated by `stop`, or when `episode_cost` exceeds `cost_limit`. Truncated after
    `max_episode_steps` (default 32). A diverged model does not end the episode: `info["crashed"]` is
    set, the step is penalised, and `rollback` can undo it.""",
        "Arguments": f"""\
    `preset` ("tiny", "small", "base" or a `Preset`), `faults` (a subset of
    {", ".join(f.name for f in FAULTS)}), `cost_weight` (0.002), `crash_penalty` (1.0), `cost_limit` (None),
    `max_episode_steps` (32), `device` ("cpu"/"cuda"), `zoo_seed` (0), `cache_dir` (zoo and banks; default
    `$LLM_REPAIR_GYM_CACHE` or the user cache), `dynamics` (a `DynamicsConfig`), `instances` ("train",
    "test", "live"), `bank` (a `BankConfig`: split sizes, seed, `min_drop`), `precision` ("fp32"; "tf32" on
    CUDA; "bf16": mixed precision with float32 master weights), `output` ("numpy"; "torch": observations,
    rewards, terminations, truncations and info as tensors on the env's device, no host copy), `chunk_envs`
    (256: model work runs on at most this many envs at a time, bounding activation memory), `compile` (False:
    True runs the training and measurement as `torch.compile` graphs; the first steps then compile for up
    to a minute, and on 2 CPU cores a step gains about 10%), `num_threads` (None: torch's threads are left
    alone in the main process and set to one in a multiprocessing worker; an int sets them), `render_mode`
    (None, "ansi" or "rgb_array"; see Rendering), `suite` (None; a suite name such as "LLMRepair-Suite-v0":
    resets draw only that suite's instances of the env's split, see `llm_repair_gym.envs.suites`). The vector env
    also takes `num_envs` and `autoreset_mode` (SAME_STEP or DISABLED).""",
        "State": """\
    `get_state()` returns an `EnvState` (every tensor, counter and generator that decides what comes next);
    `set_state(state)` continues from it, and refuses one made by another env id, version, `num_envs` or
    trajectory-changing setting; `fork()` returns an independent copy in the current state. `state.save(path)`
    writes one checksummed safetensors file, `EnvState.load(path)` reads it back in any process. A fork, or a
    restored state, stepped with the same actions gives the same observations, rewards and infos.""",
        "Rendering": f"""\
    `render_mode="ansi"`: `render()` returns the episode so far as text, one line per step (step, action,
    per-family accuracy, the step's cost and reward), the first line its start (instance and accuracy; the
    fault is privileged and not shown). `render_mode="rgb_array"`: a `uint8` image `[480, 640, 3]` of the same
    trace (per-family accuracy and cumulative cost over the steps, action names along the x axis), the same
    size for every frame, so `gymnasium.wrappers.RecordVideo` (needs moviepy) records episodes at
    `render_fps` ({render_fps}) and `gym.make(..., render_mode="human")` shows them through `HumanRendering`
    (needs pygame). The vector env returns one frame per env. Only an env made with a `render_mode` records
    the trace (one copy to the host per step); an autoreset or a reset env starts a fresh one, and
    `set_state` starts it at the restored state.""",
        "Info": """\
    `accuracy`, `healthy_accuracy` (per family), `score`, `fault` (`type`, `target`, `severity`; hidden
    from the observation, for analysis and privileged baselines), `instance` (the bank instance, -1 when
    live), `action_name`, `flops`, `cost`, `episode_cost`, `episode_flops`, `crashed`, `zoo_model`. With
    `output="torch"` the values are device tensors, and `fault.type`, `fault.target` and `action` are indices
    (into `env.fault_names`, the fault's blocks or families (-1: none), `env.action_names`).""",
        "Version History": """\
    * v0 (0.7): unchanged dynamics (every figure stands); render modes `ansi` and `rgb_array`; `suite=`
      restricts resets to an evaluation suite's instances (`llm_repair_gym.envs.suites`).
    * v0 (0.6): unchanged dynamics (every figure stands); new agents only (DQN from demonstrations).
    * v0 (0.5): unchanged dynamics (every figure stands); `LLMMetaRepair-v0`, the same env over meta-task
      variants, is registered beside it. Saved states carry the package version, so 0.4 states are refused.
    * v0 (0.4): an unseeded `reset()` after the first one continues each env's own random stream (before, it
      drew fresh seeds from the env's generator), so single envs behind SB3's `DummyVecEnv` match the native
      vector env across autoresets; SB3's `VecEnv` over the native vector env
      (`llm_repair_gym.integrations.sb3`). Seeded resets and autoresets are unchanged: every figure stands.
    * v0 (0.3): `get_state`, `set_state`, `fork` and saved states; `num_threads`; processes forked after
      the import, and envs built in multiprocessing workers, run torch on one thread (forked workers used
      to hang); `step`, `reset` and state calls after `close` raise; bad devices and seeds are refused
      before anything changes. The dynamics are those of 0.2: every figure stands.
    * v0 (0.2): resets copy cached bank instances (train/test splits, `info["instance"]`); the optimizer
      starts fresh after an injection; batches are cut per family, and FLOP costs count each family's
      length (`train_syntax` costs 1.5x `train_all`, `train_fact` 0.56x); `switch_optimizer` starts the new
      optimizer with fresh moments; `precision`, `output`, `chunk_envs` and `compile`; two observation
      features, `below_best` and `since_best`, so that what `rollback` would return to and how long the
      repair has stalled are part of the state (35 features for `tiny`). Every figure was measured again.
    * v0 (0.1): initial version.""",
    }
    sections.update(overrides)
    return "\n\n".join(text if not title else f"    ## {title}\n{text}" for title, text in sections.items()) + "\n    "
