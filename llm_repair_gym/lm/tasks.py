"""Synthetic task families, one per kind of error a language model makes.

=========  ==============================================================  =====================================
family     example (prompt -> answer)                                      what it tests
=========  ==============================================================  =====================================
syntax     ``SYN ( [ ( ] ... SEP`` -> the closing brackets, e.g. ``] ) END``  well-formedness: complete a Dyck-2
                                                                             prefix (bounded length and depth)
logic      ``LOG 3 1 4 1 SEP`` -> ``1 1 3 4 END``                           algorithmic reasoning: sort digits
fact       ``FACT f2 f5 k17 SEP`` -> ``v9 END``                             recall: key -> value from the env's
                                                                             own fact table; the filler tokens
                                                                             are a paraphrase context to ignore
=========  ==============================================================  =====================================

Every family enumerates its whole (finite) prompt space once, permutes it with a fixed seed and cuts it
into train / validation / test splits (80/10/10 by default), so the splits never share a prompt. Batches
are drawn on the tasks' device with a ``torch.Generator`` and carry a leading env axis: env ``i`` may hold
its own fact table. Answers are scored under teacher forcing; an example counts as correct only when every
answer token (``END`` included) is the argmax, which equals greedy-decoding exact match.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

FAMILIES: tuple[str, ...] = ("syntax", "logic", "fact")
SPLITS: tuple[str, ...] = ("train", "val", "test")

PAD, SEP, END = 0, 1, 2
_FAMILY_TOKEN = {"syntax": 3, "logic": 4, "fact": 5}
_BRACKETS = {"(": 6, ")": 7, "[": 8, "]": 9}
_CLOSER = {"(": ")", "[": "]"}
_DIGIT0 = 10


@dataclass(frozen=True)
class TaskConfig:
    """Sizes of the three task families. The vocabulary and sequence length follow from them."""

    syntax_max_len: int = 10
    syntax_max_depth: int = 4
    logic_list_len: int = 4
    fact_keys: int = 32
    fact_values: int = 16
    fact_fillers: int = 8
    fact_context_len: int = 2
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 20261130

    def __post_init__(self) -> None:
        if self.syntax_max_len < 1 or self.syntax_max_depth < 1 or self.logic_list_len < 1:
            raise ValueError("syntax_max_len, syntax_max_depth and logic_list_len must be >= 1")
        if min(self.fact_keys, self.fact_values, self.fact_fillers) < 1 or self.fact_context_len < 0:
            raise ValueError("fact_keys, fact_values, fact_fillers must be >= 1 and fact_context_len >= 0")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-9:
            raise ValueError(f"split_fractions must be three fractions summing to 1, got {self.split_fractions}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key_token0(self) -> int:
        return _DIGIT0 + 10

    @property
    def value_token0(self) -> int:
        return self.key_token0 + self.fact_keys

    @property
    def filler_token0(self) -> int:
        return self.value_token0 + self.fact_values

    @property
    def vocab_size(self) -> int:
        return self.filler_token0 + self.fact_fillers

    @property
    def seq_len(self) -> int:
        """Model input length T (the stored sequences are one token longer: inputs + shifted targets)."""
        syntax = 1 + self.syntax_max_len + 1 + self.syntax_max_depth + 1
        logic = 1 + 2 * self.logic_list_len + 2
        fact = 1 + self.fact_context_len + 1 + 1 + 1 + 1
        return max(syntax, logic, fact) - 1

    @property
    def family_lengths(self) -> dict[str, int]:
        """The longest model input of each family (``FAMILY prompt SEP answer``, END being the last target):
        what a batch of that family is cut to. A syntax prefix of length L can leave d <= min(L, depth)
        brackets open when L - d is even."""
        syntax = max(length + open_ + 2 for length in range(1, self.syntax_max_len + 1)
                     for open_ in range(1, min(length, self.syntax_max_depth) + 1) if (length - open_) % 2 == 0)
        return {"syntax": syntax, "logic": 2 * self.logic_list_len + 2, "fact": self.fact_context_len + 4}


def _layout(prompt: list[int], answer: list[int], family: str, length: int) -> tuple[list[int], list[bool]]:
    """``FAMILY prompt SEP answer END PAD...`` and a mask marking the answer tokens and ``END``."""
    seq = [_FAMILY_TOKEN[family], *prompt, SEP, *answer, END]
    mask = [False] * (len(prompt) + 2) + [True] * (len(answer) + 1)
    pad = length - len(seq)
    return seq + [PAD] * pad, mask + [False] * pad


def _syntax_examples(cfg: TaskConfig) -> list[tuple[list[int], list[int]]]:
    """Every Dyck-2 prefix up to ``syntax_max_len`` with depth <= ``syntax_max_depth`` and an open bracket."""
    out: list[tuple[list[int], list[int]]] = []

    def extend(prefix: str, stack: str) -> None:
        if stack:
            closing = "".join(_CLOSER[b] for b in reversed(stack))
            out.append(([_BRACKETS[c] for c in prefix], [_BRACKETS[c] for c in closing]))
        if len(prefix) == cfg.syntax_max_len:
            return
        if len(stack) < cfg.syntax_max_depth:
            for opener in "([":
                extend(prefix + opener, stack + opener)
        if stack:
            extend(prefix + _CLOSER[stack[-1]], stack[:-1])

    extend("", "")
    return out


def _logic_examples(cfg: TaskConfig) -> list[tuple[list[int], list[int]]]:
    """Every list of ``logic_list_len`` digits, answered by the sorted list."""
    return [([_DIGIT0 + d for d in digits], [_DIGIT0 + d for d in sorted(digits)])
            for digits in itertools.product(range(10), repeat=cfg.logic_list_len)]


def _fact_examples(cfg: TaskConfig) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """Every (filler context, key) prompt; the answer is a placeholder filled from the env's fact table."""
    examples, keys = [], []
    for context in itertools.product(range(cfg.fact_fillers), repeat=cfg.fact_context_len):
        for key in range(cfg.fact_keys):
            examples.append(([cfg.filler_token0 + f for f in context] + [cfg.key_token0 + key], [PAD]))
            keys.append(key)
    return examples, keys


@dataclass
class Batch:
    """A batch of sequences for N envs: ``inputs``/``targets`` ``[N, B, T]`` and the answer mask."""

    inputs: torch.Tensor
    targets: torch.Tensor
    answer_mask: torch.Tensor

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """Join batches along the example axis."""
        return Batch(*(torch.cat([getattr(b, f) for b in batches], dim=1)
                       for f in ("inputs", "targets", "answer_mask")))

    def trim(self, length: int) -> Batch:
        """The first ``length`` positions. Exact for a causal model when only padding is cut."""
        return Batch(self.inputs[..., :length], self.targets[..., :length], self.answer_mask[..., :length])


class TaskSuite:
    """The three task families materialised on one device, with disjoint splits.

    ``sequences[family]`` is ``[M, T+1]`` (every prompt of the family laid out with its answer),
    ``answer_masks[family]`` is ``[M, T]`` over target positions, ``lengths[family]`` is the longest input
    of the family (positions past it are padding in every example), and ``split_ids[family][split]`` holds
    the example ids of each split. Fact answers depend on the env: ``fact_keys`` maps a fact example to its key
    and ``fact_answer_pos`` is the target position of its value.
    """

    def __init__(self, config: TaskConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or TaskConfig()
        self.device = torch.device(device)
        cfg = self.config
        length = cfg.seq_len + 1
        fact_examples, fact_keys = _fact_examples(cfg)
        raw = {"syntax": _syntax_examples(cfg), "logic": _logic_examples(cfg), "fact": fact_examples}
        self.sequences: dict[str, torch.Tensor] = {}
        self.answer_masks: dict[str, torch.Tensor] = {}
        self.split_ids: dict[str, dict[str, torch.Tensor]] = {}
        self.lengths: dict[str, int] = {}
        split_gen = torch.Generator().manual_seed(cfg.split_seed)
        for family in FAMILIES:
            laid = [_layout(p, a, family, length) for p, a in raw[family]]
            seqs = torch.tensor([s for s, _ in laid], dtype=torch.long)
            masks = torch.tensor([m for _, m in laid], dtype=torch.bool)[:, 1:]
            self.sequences[family] = seqs.to(self.device)
            self.answer_masks[family] = masks.to(self.device)
            self.lengths[family] = max(len(p) + len(a) + 2 for p, a in raw[family])  # FAMILY ... SEP ... END
            order = torch.randperm(len(laid), generator=split_gen)
            n_train = int(round(cfg.split_fractions[0] * len(laid)))
            n_val = int(round(cfg.split_fractions[1] * len(laid)))
            bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(laid))}
            self.split_ids[family] = {s: order[a:b].to(self.device) for s, (a, b) in bounds.items()}
        self.fact_keys = torch.tensor(fact_keys, dtype=torch.long, device=self.device)
        self.fact_answer_pos = 1 + cfg.fact_context_len + 1  # target index of the value token
        # A wrong label for every answer token (END stays): swap the bracket kinds, next digit, next value.
        wrong = torch.arange(cfg.vocab_size)
        wrong[_BRACKETS[")"]], wrong[_BRACKETS["]"]] = _BRACKETS["]"], _BRACKETS[")"]
        wrong[_DIGIT0:_DIGIT0 + 10] = _DIGIT0 + (torch.arange(10) + 1) % 10
        values = torch.arange(cfg.fact_values)
        wrong[cfg.value_token0:cfg.value_token0 + cfg.fact_values] = cfg.value_token0 + (values + 1) % cfg.fact_values
        self.wrong_token = wrong.to(self.device)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def split_size(self, family: str, split: str) -> int:
        return int(self.split_ids[_check_family(family)][_check_split(split)].numel())

    def sample_fact_tables(self, num_envs: int, generator: torch.Generator) -> torch.Tensor:
        """Random fact tables ``[N, fact_keys]`` of value ids, one per env."""
        cfg = self.config
        return torch.randint(cfg.fact_values, (num_envs, cfg.fact_keys), generator=generator,
                             device=generator.device).to(self.device)

    def sample_ids(self, family: str, split: str, num_envs: int, batch_size: int,
                   generator: torch.Generator) -> torch.Tensor:
        """Example ids ``[N, B]`` drawn uniformly with replacement from a split, independently per env."""
        ids = self.split_ids[_check_family(family)][_check_split(split)]
        pick = torch.randint(ids.numel(), (num_envs, batch_size), generator=generator, device=generator.device)
        return ids[pick.to(self.device)]

    def batch(self, family: str, example_ids: torch.Tensor, fact_tables: torch.Tensor,
              corrupt: torch.Tensor | None = None, trim: bool = True,
              token_maps: torch.Tensor | None = None) -> Batch:
        """The sequences of ``example_ids [N, B]``; fact values come from ``fact_tables [N, fact_keys]``.

        ``corrupt [N, B]`` (bool) replaces every answer token of the chosen examples by a wrong one
        (``wrong_token``): a noisy label that is consistent between the model's input and its target.
        ``token_maps [N, vocab]`` relabels every token of env ``i``'s sequences (a meta-task variant, see
        :mod:`llm_repair_gym.meta.tasks`), after the facts and any corruption are filled in.
        The batch is cut to the family's length (``trim=False``: the suite's ``seq_len``); only padding is
        cut, which a causal model cannot see, so scores are the same either way.
        """
        seqs = self.sequences[_check_family(family)][example_ids]  # [N, B, T+1]
        mask = self.answer_masks[family][example_ids]
        if family == "fact":
            values = torch.gather(fact_tables, 1, self.fact_keys[example_ids])  # [N, B]
            seqs = seqs.clone()
            seqs[..., self.fact_answer_pos + 1] = self.config.value_token0 + values
        if corrupt is not None:
            in_answer = F.pad(mask, (1, 0)) & (seqs != END) & corrupt[..., None]
            seqs = torch.where(in_answer, self.wrong_token[seqs], seqs)
        if token_maps is not None:
            seqs = torch.gather(token_maps, 1, seqs.reshape(seqs.shape[0], -1)).view(seqs.shape)
        out = Batch(seqs[..., :-1], seqs[..., 1:], mask)
        return out.trim(self.lengths[family]) if trim else out

    def sample(self, family: str, split: str, fact_tables: torch.Tensor, batch_size: int,
               generator: torch.Generator, trim: bool = True, token_maps: torch.Tensor | None = None) -> Batch:
        """A random batch of ``batch_size`` examples per env from one family's split."""
        ids = self.sample_ids(family, split, fact_tables.shape[0], batch_size, generator)
        return self.batch(family, ids, fact_tables, trim=trim, token_maps=token_maps)

    def answer_token_ids(self, family: str) -> torch.Tensor:
        """Ids of the tokens that can appear in answers of a family (the classes of its macro-F1)."""
        cfg = self.config
        tokens = {
            "syntax": [_BRACKETS[")"], _BRACKETS["]"]],
            "logic": list(range(_DIGIT0, _DIGIT0 + 10)),
            "fact": list(range(cfg.value_token0, cfg.value_token0 + cfg.fact_values)),
        }[_check_family(family)]
        return torch.tensor([*tokens, END], device=self.device)


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; expected one of {FAMILIES}")
    return family


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return split
