"""Our agents as the runner sees them: one :class:`~llm_repair_gym.rl.agent_spec.AgentSpec` each, registered in
``pyproject.toml`` under the ``llm_repair_gym.agents`` entry-point group, exactly as an outside package would
register its own (see docs/contributing.md).

Training code is imported only when an agent trains, so the table loads without Stable-Baselines3.
"""

from __future__ import annotations

from pathlib import Path

from agents.baselines import DocumentedRepairPolicy, NoOpPolicy, OraclePolicy, RandomPolicy
from agents.heuristic import HeuristicPolicy
from agents.loading import load_policy
from agents.rules_v1 import RulesV1Policy
from llm_repair_gym.rl.agent_spec import AgentSpec

ROOT = Path(__file__).resolve().parents[1]
"""The folder that holds ``agents/``: carried checkpoints are recorded relative to it."""


def _train_tabular_q(argv: list[str]) -> dict:
    from agents.train_tabular_q import main

    return main(argv)


def _train_dqn(argv: list[str]) -> dict:
    from agents.train_dqn import main

    return main(argv)


def _train_sb3(argv: list[str]) -> dict:
    from agents.train_sb3 import main

    return main(argv)


def _trained(rank: int, description: str, train, script: tuple[str, ...], **kwargs) -> AgentSpec:
    return AgentSpec("trained", description, train=train, script=script, load=load_policy, rank=rank, **kwargs)


EVERY_ENV = ("LLMRepair-v0", "LLMMetaRepair-v0", "LLMRepair-v1")
NOOP = AgentSpec("reference", "stops at once: the return of leaving the model as it is",
                 policy=lambda actions, features, seed: NoOpPolicy(actions), env_ids=EVERY_ENV, rank=0)
RANDOM = AgentSpec("reference", "uniformly random actions, seeded by the run seed",
                   policy=lambda actions, features, seed: RandomPolicy(actions, seed), env_ids=EVERY_ENV, rank=1)
HEURISTIC = AgentSpec("reference", "eight if-then rules on the observation alone",
                      policy=lambda actions, features, seed: HeuristicPolicy(actions, features), rank=2)
ORACLE = AgentSpec("reference", "the scripted repair for the fault it reads from info (privileged)",
                   policy=lambda actions, features, seed: OraclePolicy(actions, features), env_ids=("LLMRepair-v0",),
                   rank=3)
TABULAR_Q = _trained(4, "tabular Q-learning on the discretized observation", _train_tabular_q,
                     ("scripts/train_tabular_q.py",), env_ids=EVERY_ENV)
DQN = _trained(5, "our DQN", _train_dqn, ("scripts/train_dqn.py",), env_ids=EVERY_ENV)
DQFD = _trained(6, "our DQN from the heuristic's demonstrations (DQfD)", _train_dqn,
                ("scripts/train_dqn.py", "--demonstrations", "heuristic"))
SB3_PPO = _trained(7, "Stable-Baselines3 PPO", _train_sb3, ("scripts/train_sb3.py", "--algo", "ppo"),
                   env_ids=EVERY_ENV)
SB3_A2C = _trained(8, "Stable-Baselines3 A2C", _train_sb3, ("scripts/train_sb3.py", "--algo", "a2c"),
                   env_ids=EVERY_ENV)
SB3_DQN = _trained(9, "Stable-Baselines3 DQN", _train_sb3, ("scripts/train_sb3.py", "--algo", "dqn"),
                   env_ids=EVERY_ENV)
SB3_QRDQN = _trained(10, "sb3-contrib QR-DQN", _train_sb3, ("scripts/train_sb3.py", "--algo", "qrdqn"),
                     env_ids=EVERY_ENV)
DQFD_CARRIED = AgentSpec("checkpoint", "the carried DQfD agent (seed 1; trained on the whole train bank, before the "
                         "suite existed, so it met zoo model 7)", load=load_policy,
                         checkpoint="agents/checkpoints/LLMRepair-v0/dqfd", root=ROOT, env_ids=("LLMRepair-v0",),
                         rank=11)
DQN_MAML = _trained(12, "our DQN repairing from the MAML initialization (meta-learning variant)", _train_dqn,
                    ("scripts/train_dqn.py",), env_ids=("LLMMetaRepair-v0",), env_kwargs={"init": "maml"})
# LLMRepair-v1's own, ranked after every v0 agent so that the v0 agents keep their board colours
RULES_V1 = AgentSpec("reference", "LLMRepair-v1: cheap probes, the fixes they point to, then training while it pays "
                     "(observation only)", policy=lambda actions, features, seed: RulesV1Policy(actions, features),
                     env_ids=("LLMRepair-v1",), rank=13)
DOCUMENTED = AgentSpec("reference", "LLMRepair-v1: the documented repair of the fault set it reads from info "
                       "(privileged)", policy=lambda actions, features, seed: DocumentedRepairPolicy(actions),
                       env_ids=("LLMRepair-v1",), rank=14)
PLANNER = AgentSpec("checkpoint", "LLMRepair-v1: the privileged planner (a beam search over repair plans on copies "
                    "of each test entry, scored on the test split; the v1 board's 1)", load=load_policy,
                    checkpoint="agents/checkpoints/LLMRepair-v1/planner", root=ROOT, env_ids=("LLMRepair-v1",),
                    rank=15)
TROUBLESHOOTER = AgentSpec("checkpoint", "LLMRepair-v1: decision-theoretic troubleshooting (beliefs fitted on the "
                           "train split; probes worth their price, then repairs by benefit over cost; observation "
                           "only)", load=load_policy, checkpoint="agents/checkpoints/LLMRepair-v1/troubleshooter",
                           root=ROOT, env_ids=("LLMRepair-v1",), rank=16)
DQFD_RULES = _trained(17, "our DQN from rules_v1's demonstrations (DQfD; LLMRepair-v1)", _train_dqn,
                      ("scripts/train_dqn.py", "--demonstrations", "rules_v1"), env_ids=("LLMRepair-v1",))
