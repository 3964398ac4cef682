"""The manual of LLMRepair-v1: v0's manual with the sections v1 changes, tables generated from v1's code."""

from __future__ import annotations

from llm_repair_gym.envs.manual import build_manual
from llm_repair_gym.lm.model import group_names
from llm_repair_gym.lm.presets import get_preset
from llm_repair_gym.repair.actions_v1 import build_actions_v1
from llm_repair_gym.repair.dynamics import DYNAMICS_V1
from llm_repair_gym.repair.faults_v1 import COUNT_WEIGHTS, FAULTS_V1, HELD_OUT_PAIRS
from llm_repair_gym.repair.features_v1 import PRICE_SPAN, build_features_v1
from llm_repair_gym.repair.measure_v1 import FREE_VAL_SIZE, TEST_SIZE
from llm_repair_gym.repair.probes import build_probes


def build_manual_v1() -> str:
    """The v1 env manual for the default preset (``nano``) and dynamics (``DYNAMICS_V1``)."""
    from llm_repair_gym.envs.repair_v1 import MIN_BUDGET, RENDER_FPS

    preset, dyn = get_preset("nano"), DYNAMICS_V1
    groups = group_names(preset.model)
    probes = build_probes(preset, groups)
    actions = build_actions_v1(preset, dyn, probes)
    features = build_features_v1(["embeddings", *groups[1:-1]], probes)
    ref = actions[0].flops
    action_rows = "\n".join(f"    | {i} | `{a.name}` | {a.category} | {a.flops / ref:.4g} | {a.description} |"
                            for i, a in enumerate(actions))
    feature_rows = "\n".join(f"    | {i} | `{f.name}` | {f.low:g} | {f.high:g} | {f.description} |"
                             for i, f in enumerate(features))
    fault_rows = "\n".join(f"    | `{f.name}` | {f.mechanism} | {f.symptoms} | {', '.join(f.repair)} |"
                           for f in FAULTS_V1)
    pairs = ", ".join(f"{a}+{b}" for a, b in HELD_OUT_PAIRS)
    return build_manual(0.05, RENDER_FPS, **{
        "": "Repair a small GPT-2 with hidden compound faults, paying for diagnosis, scored on unseen examples.",
        "Description": f"""\
    Each episode starts from a zoo model with zero to three faults injected (probabilities
    {", ".join(f"{p:g}" for p in COUNT_WEIGHTS)} for 0-3), whose cheap symptoms overlap, so a rule that reads
    the free observation at reset cannot tell them apart; probe actions measure what it lacks, at a price.
    Repairs interact: re-initialising a block fixes its noise and costs what it knew; training with a hidden
    optimizer fault does damage. The objective is measured on test examples the agent never sees.

    | fault | mechanism | free symptoms | documented repair |
    |---|---|---|---|
{fault_rows}""",
        "Action Space": f"""\
    `Discrete({len(actions)})` for `nano`. FLOPs are relative to `train_all` ({ref:.3g} FLOPs).

    | index | action | category | FLOPs / train_all | effect |
    |---|---|---|---|---|
{action_rows}""",
        "Observation Space": f"""\
    `Box(float32, ({len(features)},))` for `nano`; values clipped into bounds. Probe slots read 0 until the
    probe runs; `measured/<probe>` and `age/<probe>` say whether and how long ago.

    | index | feature | min | max | meaning |
    |---|---|---|---|---|
{feature_rows}""",
        "Rewards": f"""\
    Per step: `(V_t - V_(t-1)) - price * flops_t / flops_ref - crash_penalty * [diverged now]`, V the mean
    validation accuracy on {FREE_VAL_SIZE} examples per family drawn afresh every step. When the episode ends
    the reward adds `(T_end - V_end) - (T_0 - V_0)`, T the mean accuracy on the first {TEST_SIZE} test examples
    of each family, so the undiscounted return equals the objective exactly:
    `T_end - T_0 - price * total flops / flops_ref - crash_penalty * crashes` (`info["objective"]` at the end).
    A lucky validation draw cannot pay: the return only depends on the test split. An action that changes
    neither the model nor its data (a probe, `lr_up`, `lr_down`, `switch_optimizer`, `reset_optimizer`,
    `checkpoint`, `stop`) measures nothing: the observation repeats the last measurement and V does not move.
    `info["cost"]` is the validation accuracy lost this step.""",
        "Starting State": f"""\
    An instance from the v1 bank (`instances="train"`/`"test"`; built once per preset, zoo and dynamics) or
    made live. Train-split instances never hold the held-out pairs {pairs}; the test split does. A faulted
    instance lost at least `min_drop` (0.15) validation accuracy on its worst family. The price is
    log-uniform over a factor of {PRICE_SPAN:g} around `cost_weight` and the step budget uniform in
    [{MIN_BUDGET}, `max_episode_steps`], both drawn per episode and shown in the observation. AdamW at the
    configured lr 1e-3 (times any hidden factor), moments fresh (or poisoned). With live instances,
    `reset(options={{"faults": [...]}})` forces the fault set (a list of names, or one list per env).""",
        "Episode End": """\
    Terminated by `stop` or when the episode's own step budget is spent (the budget is in the observation).
    A diverged model does not end the episode: it is penalised once, and `rollback` to a checkpoint (if the
    agent took one) can undo it.""",
        "Arguments": """\
    As v0's, without `cost_limit`; `cost_weight` (0.003) is the centre of the per-episode price, `faults`
    limits bank draws to instances whose faults all lie in the list, `max_episode_steps` (32) is the
    largest budget.""",
        "Info": """\
    v0's keys, and `faults`, `fault_targets`, `fault_severities` (one entry per fault type), `fault.type`
    (the set's names joined by `+`, `none` if empty), `fault.target`, `fault.severity` (the largest),
    `price`, `budget`, `test_score`, `objective`. `healthy_accuracy` is the zoo model's test accuracy.""",
        "Version History": """\
    * v1 (0.7): initial version. Before any board ranked on it, it moved from the tiny preset to nano and
      `DYNAMICS_V1` (about four times cheaper per step), stopped measuring after inert actions, and its
      suite was refrozen (`LLMRepair-Suite-v1` version 2).""",
    })
