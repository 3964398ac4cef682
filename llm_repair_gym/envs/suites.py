"""Suites: frozen, versioned lists of the instances agents train on and are ranked on.

A suite is to LLMRepair what Procgen's fixed level sets are to Procgen: a ``train`` split of instance-bank
instances that training may draw from, and a ``test`` split that leaderboards rank on, holding
*combinations* training never meets. ``LLMRepair-Suite-v0`` holds out a whole zoo model: its train split is
every train-bank instance of zoo models 0-6, its test split every test-bank instance of zoo model 7, so a
ranked agent repairs a model it never saw, from faults injected with seeds it never saw, in episodes seeded
from seeds training never draws (``held_out_seeds``).

``LLMRepair-Suite-v1`` does the same on LLMRepair-v1, whose instances hold fault *sets*, and also holds out
fault *combinations*: its test split adds every test-bank instance holding one of the fault pairs
(``faults_v1.HELD_OUT_PAIRS``) that v1's train bank never holds, so a ranked agent also meets combinations it
never saw together. Its entries name the fault set (``label_noise+hidden_lr``), the targets and the largest
severity, as the env's ``info["fault"]`` does.

Train on a suite with ``gym.make_vec("LLMRepair-v0", num_envs=N, suite="LLMRepair-Suite-v0")``: resets then
draw only the suite's train instances. The file ``data/suites/<name>.json`` lists every instance with its
zoo model, fault type, target and severity, the suite's version, and a content hash (sha256 of the file's
canonical JSON without the hash): :func:`load_suite` refuses a file whose hash does not match, and an env
made with ``suite=`` refuses an instance bank whose instances differ from the ones listed (another bank
config, or a machine whose floating point built other instances). Changing a suite means a new version.

Maintainers freeze a suite from its spec (:data:`SUITE_SPECS`) with
``llm-repair-gym suite freeze LLMRepair-Suite-v0``; ``llm-repair-gym suite show NAME``
prints what a suite holds.
"""

from __future__ import annotations

import collections
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from llm_repair_gym.repair.faults_v1 import HELD_OUT_PAIRS

HELD_OUT_BASE = 2**40


def held_out_seeds(eval_set: int, episodes: int) -> list[int]:
    """Seeds of evaluation set ``eval_set`` (``episodes`` of them; sets never overlap below 10**6 episodes)."""
    if eval_set < 0 or not 0 < episodes <= 10**6:
        raise ValueError(f"need eval_set >= 0 and 0 < episodes <= 10**6, got {eval_set} and {episodes}")
    return [HELD_OUT_BASE + eval_set * 10**6 + k for k in range(episodes)]


def held_out_instances(eval_set: int, episodes: int, test_size: int) -> list[int]:
    """Test-split instances of evaluation set ``eval_set``: ``episodes`` consecutive ids from
    ``eval_set * episodes``, wrapping around the split (sets overlap only once they outnumber it)."""
    if eval_set < 0 or episodes < 1 or test_size < 1:
        raise ValueError(f"need eval_set >= 0, episodes >= 1 and test_size >= 1, got {eval_set}, {episodes}, "
                         f"{test_size}")
    return [(eval_set * episodes + k) % test_size for k in range(episodes)]


SUITE_DIR = Path(__file__).parents[1] / "data" / "suites"
SUITE_FORMAT = 1
SEVERITY_TOLERANCE = 1e-5  # a bank instance matches the suite's entry when its severity is this close

SUITE_SPECS: dict[str, dict] = {
    "LLMRepair-Suite-v0": {
        "version": 0,
        "env_id": "LLMRepair-v0",
        "env_kwargs": {"preset": "tiny"},
        "held_out": {"zoo_model": [7]},
        "description": "train: train-bank instances of zoo models 0-6; test: test-bank instances of zoo model 7",
    },
    "LLMMetaRepair-Suite-v0": {
        "version": 0,
        "env_id": "LLMMetaRepair-v0",
        "env_kwargs": {"preset": "tiny"},
        "reset_option": "task",
        "references": ["noop", "heuristic"],
        "held_out": {"meta_split": "test"},
        "description": "train: the 64 meta-train task variants; test: the 32 meta-test variants, never met in "
                       "training or meta-training; faults drawn live at reset from each episode's seed",
    },
    "LLMRepair-Suite-v1": {
        # 1 was cut from the tiny preset's banks, before v1 moved to nano; 2 had the documented repair as its 1;
        # 3 (the same entries) has the privileged planner (neither was ranked on)
        "version": 3,
        "env_id": "LLMRepair-v1",
        "env_kwargs": {"preset": "nano"},
        "references": ["noop", "planner"],
        "held_out": {"zoo_model": [7], "fault_pairs": [list(pair) for pair in HELD_OUT_PAIRS]},
        "description": "train: train-bank instances of zoo models 0-6 (the train bank holds no held-out fault "
                       "pair); test: test-bank instances of zoo model 7, and every test-bank instance holding a "
                       "held-out fault pair",
    },
}
"""How each suite is cut: an instance suite from its env's instance bank (the zoo models whose instances only
the test split holds), a task suite (``reset_option: "task"``) from its env's meta-task splits. A suite's
``references`` are the no-op and the policy that scores 1 in the normalization (the oracle; on meta-tasks,
whose start models are not healthy ones to return to, the observation-only heuristic; on LLMRepair-v1, the
privileged planner of ``agents/planner.py``)."""


@dataclass(frozen=True)
class SuiteEntry:
    """One instance of a suite split: its bank instance id and what was injected into which zoo model.

    On a bank of fault sets (LLMRepair-v1) ``fault`` is the set as the env's ``info["fault"]["type"]`` names
    it (types joined by ``+`` in table order, ``none`` when empty), ``target`` the targets of its targeted
    faults joined the same way (None when it has none) and ``severity`` the largest of its severities."""

    index: int  # position in the split
    instance: int  # bank instance id within the split (a task suite: the task's index in its split)
    zoo_model: int | None = None  # None in a task suite, whose faults are drawn at reset
    fault: str | None = None
    target: str | None = None
    severity: float | None = None
    task: str | None = None  # a task suite's task id


@dataclass(frozen=True)
class Suite:
    """A frozen suite (see the module docstring); build it with :func:`load_suite`."""

    name: str
    version: int
    env_id: str
    env_kwargs: dict
    held_out: dict
    description: str
    splits: dict[str, tuple[SuiteEntry, ...]]
    content_hash: str
    reset_option: str = "instance"  # the reset option an entry's ``instance`` goes to
    references: tuple[str, ...] = ("noop", "oracle")

    def entries(self, split: str) -> tuple[SuiteEntry, ...]:
        if split not in self.splits:
            raise ValueError(f"{self.name} has splits {sorted(self.splits)}, not {split!r}")
        return self.splits[split]

    def instance_ids(self, split: str) -> list[int]:
        return [e.instance for e in self.entries(split)]

    def episode_seeds(self, split: str, run_seed: int) -> list[int]:
        """The episode seed of every entry of ``split`` in run ``run_seed`` (seeds training never draws)."""
        return held_out_seeds(run_seed, len(self.entries(split)))

    def make_kwargs(self, split: str) -> dict:
        """Constructor kwargs of an env whose resets draw from this suite's ``split``."""
        self.entries(split)
        if self.reset_option == "task":
            return {**self.env_kwargs, "split": split}
        return {**self.env_kwargs, "instances": split, "suite": self.name}

    def train_kwargs(self) -> dict:
        """The env kwargs a training script adds (``--env-kwargs``) to train on the train split only."""
        return {"split": "train"} if self.reset_option == "task" else {"suite": self.name}

    def summary(self) -> str:
        lines = [f"{self.name} (version {self.version}, {self.env_id}, hash {self.content_hash[:16]}): "
                 f"{self.description}"]
        for split, entries in self.splits.items():
            if self.reset_option == "task":
                lines.append(f"  {split}: {len(entries)} tasks, {entries[0].task} .. {entries[-1].task}")
                continue
            faults = collections.Counter(e.fault for e in entries if e.fault is not None)
            models = sorted({e.zoo_model for e in entries if e.zoo_model is not None})
            if any("+" in name for name in faults):  # fault sets: count each type, and the set sizes
                sizes = collections.Counter(0 if e.fault == "none" else len(e.fault.split("+")) for e in entries)
                faults = collections.Counter(t for e in entries if e.fault != "none" for t in e.fault.split("+"))
                lines.append(f"  {split}: {len(entries)} instances, zoo models {models}, faults per instance "
                             f"{dict(sorted(sizes.items()))}, instances per fault {dict(sorted(faults.items()))}")
                continue
            lines.append(f"  {split}: {len(entries)} instances, zoo models {models}, "
                         f"faults {dict(sorted(faults.items()))}")
        return "\n".join(lines)


def suite_names() -> list[str]:
    return sorted(SUITE_SPECS)


def content_hash(payload: dict) -> str:
    """sha256 of a suite's canonical JSON, its ``content_hash`` field left out."""
    body = {k: v for k, v in payload.items() if k != "content_hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def suite_path(name: str) -> Path:
    if name not in SUITE_SPECS:
        raise ValueError(f"unknown suite {name!r}; known: {suite_names()}")
    return SUITE_DIR / f"{name}.json"


_LOADED: dict[str, Suite] = {}


def load_suite(name: str) -> Suite:
    """The frozen suite ``name``, its content hash checked."""
    if name in _LOADED:
        return _LOADED[name]
    path = suite_path(name)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"suite file {path} is unreadable: {err}") from err
    if payload.get("content_hash") != content_hash(payload):
        raise ValueError(f"suite file {path} does not match its content hash: it was edited after freezing "
                         "(a changed suite needs a new version)")
    if payload.get("format") != SUITE_FORMAT or payload.get("name") != name:
        raise ValueError(f"suite file {path} is format {payload.get('format')} of {payload.get('name')!r}; "
                         f"expected format {SUITE_FORMAT} of {name!r}")
    splits = {split: tuple(SuiteEntry(**e) for e in entries) for split, entries in payload["splits"].items()}
    suite = Suite(name=name, version=payload["version"], env_id=payload["env_id"], env_kwargs=payload["env_kwargs"],
                  held_out=payload["held_out"], description=payload["description"], splits=splits,
                  content_hash=payload["content_hash"], reset_option=payload.get("reset_option", "instance"),
                  references=tuple(payload.get("references", ("noop", "oracle"))))
    _LOADED[name] = suite
    return suite


def bank_entries(env, split: str, held_out: dict) -> list[SuiteEntry]:
    """The entries of ``split`` cut from ``env``'s bank of that split: on ``test`` the held-out instances (of a
    held-out zoo model, or holding a held-out fault pair), on ``train`` every other instance."""
    bank = env.bank
    keep_held_out = split == "test"
    pairs = held_out.get("fault_pairs", [])
    entries = []
    for k in range(bank.size):
        model = int(bank.tensors["zoo_model"][k])
        if (model in held_out["zoo_model"] or _holds_pair(env, k, pairs)) != keep_held_out:
            continue
        entries.append(SuiteEntry(index=len(entries), instance=k, **_describe(env, k)))
    return entries


def _holds_pair(env, k: int, pairs: list[list[str]]) -> bool:
    """Whether bank instance ``k`` holds both faults of one of ``pairs`` (never, in a bank of single faults)."""
    if not pairs:
        return False
    held = set(_describe(env, k)["fault"].split("+"))
    return any(set(pair) <= held for pair in pairs)


def suite_bank(env, name: str):
    """``env``'s bank with draws limited to suite ``name``'s instances of the env's split, after checking that
    the suite is the env's and that the bank holds the instances the suite lists."""
    suite = load_suite(name)
    if suite.env_id != env.ENV_ID or suite.env_kwargs.get("preset", "tiny") != env.preset.name:
        raise ValueError(f"suite {name} is for {suite.env_id} with {suite.env_kwargs}, not {env.ENV_ID} with "
                         f"preset {env.preset.name!r}")
    check_bank(suite, env.instances, env)
    return env.bank.restricted(suite.instance_ids(env.instances))


def check_bank(suite: Suite, split: str, env) -> None:
    """Refuse ``env``'s bank when an instance of ``split`` differs from the suite's entry for it."""
    bank = env.bank
    bad = []
    for e in suite.entries(split):
        if e.instance >= bank.size:
            bad.append(f"instance {e.instance} is beyond the bank's {bank.size}")
            continue
        found = _describe(env, e.instance)
        expected = {k: getattr(e, k) for k in found}
        if {k: v for k, v in found.items() if k != "severity"} != {k: v for k, v in expected.items()
                                                                   if k != "severity"} or \
                abs(found["severity"] - e.severity) > SEVERITY_TOLERANCE:
            bad.append(f"instance {e.instance}: suite {expected}, bank {found}")
    if bad:
        raise ValueError(f"this machine's {split} instance bank differs from the one {suite.name} was frozen with "
                         f"({len(bad)} instances; first: {bad[0]}); its episodes cannot be reproduced here")


def _describe(env, k: int) -> dict:
    from llm_repair_gym.repair.faults import FAULT_NAMES, target_names

    t = env.bank.tensors
    if "faults" in t:  # a bank of fault sets (LLMRepair-v1)
        return _describe_set(t, k)
    kind, target = int(t["fault_type"][k]), int(t["fault_target"][k])
    name = target_names(env.preset.model.n_layer)[kind, target + 1]
    return {"zoo_model": int(t["zoo_model"][k]), "fault": FAULT_NAMES[kind],
            "target": None if name is None else str(name), "severity": round(float(t["fault_severity"][k]), 7)}


def _describe_set(t: dict, k: int) -> dict:
    """Instance ``k`` of a v1 bank as its env's ``info["fault"]`` names it: the set, the targets, the largest
    severity."""
    from llm_repair_gym.envs.repair_v1 import _targets, fault_set_name

    faults = t["faults"][k].tolist()
    bits = sum(1 << j for j, present in enumerate(faults) if present)
    return {"zoo_model": int(t["zoo_model"][k]), "fault": fault_set_name(bits),
            "target": _targets(bits, t["fault_targets"][k].cpu().numpy()),
            "severity": round(float(t["fault_severities"][k].max()), 7)}


def freeze_suite(name: str) -> Path:
    """Cut suite ``name`` from its env's banks (built or loaded from the cache) or meta-task splits and write
    its file."""
    spec = SUITE_SPECS[name]
    splits = {split: [asdict(e) for e in _cut(spec, split)] for split in ("train", "test")}
    payload = {"format": SUITE_FORMAT, "name": name, **spec, "splits": splits}
    payload["content_hash"] = content_hash(payload)
    path = suite_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    _LOADED.pop(name, None)
    return path


def _cut(spec: dict, split: str) -> list[SuiteEntry]:
    if spec.get("reset_option") == "task":
        from llm_repair_gym.meta.tasks import meta_tasks

        return [SuiteEntry(index=k, instance=k, task=t["id"]) for k, t in enumerate(meta_tasks(split))]
    import gymnasium as gym

    env = gym.make_vec(spec["env_id"], num_envs=1, instances=split, **spec["env_kwargs"]).unwrapped
    try:
        return bank_entries(env, split, spec["held_out"])
    finally:
        env.close()
