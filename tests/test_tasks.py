"""Task families: correct answers, disjoint splits, seeded sampling, and the metrics."""

import pytest
import torch

from llm_repair_gym.lm.metrics import evaluate_family, macro_f1
from llm_repair_gym.lm.model import ModelConfig, forward, init_params
from llm_repair_gym.lm.tasks import END, FAMILIES, PAD, SEP, SPLITS, TaskConfig, TaskSuite

SUITE = TaskSuite()
OPEN, CLOSE = {6: 7, 8: 9}, {7, 9}


def prompt_of(seq: torch.Tensor) -> tuple[int, ...]:
    seq = seq.tolist()
    return tuple(seq[: seq.index(SEP)])


@pytest.mark.parametrize("family", FAMILIES)
def test_splits_are_disjoint_and_cover_every_prompt(family):
    seqs = SUITE.sequences[family]
    prompts = {s: {prompt_of(seqs[i]) for i in SUITE.split_ids[family][s].tolist()} for s in SPLITS}
    assert not prompts["train"] & prompts["val"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    assert sum(len(p) for p in prompts.values()) == len(seqs)  # every prompt is unique and in one split
    sizes = [SUITE.split_size(family, s) for s in SPLITS]
    assert sizes[1] > 0 and sizes[2] > 0 and sizes[0] > 6 * sizes[2]


def test_syntax_answers_close_every_open_bracket():
    for seq in SUITE.sequences["syntax"][::97]:
        stack = []
        body = seq.tolist()[1:]
        for tok in body[: body.index(SEP)]:
            if tok in OPEN:
                stack.append(OPEN[tok])
            else:
                assert stack.pop() == tok  # the prefix itself is well formed
        answer = body[body.index(SEP) + 1: body.index(END)]
        assert stack and answer == stack[::-1]
        assert len(stack) <= SUITE.config.syntax_max_depth


def test_logic_answers_are_sorted_prompts():
    for seq in SUITE.sequences["logic"][::53].tolist():
        prompt = seq[1: seq.index(SEP)]
        assert seq[seq.index(SEP) + 1: seq.index(END)] == sorted(prompt)


def test_fact_answers_come_from_each_envs_table():
    gen = torch.Generator().manual_seed(0)
    tables = SUITE.sample_fact_tables(3, gen)
    batch = SUITE.sample("fact", "train", tables, 16, gen)
    cfg = SUITE.config
    key = batch.inputs[..., 1 + cfg.fact_context_len] - cfg.key_token0
    value = batch.targets[..., SUITE.fact_answer_pos] - cfg.value_token0
    assert torch.equal(value, torch.gather(tables, 1, key))
    assert batch.answer_mask.sum(-1).eq(2).all()  # value + END


def test_batches_are_seeded_and_masks_cover_answers_only():
    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        tables = SUITE.sample_fact_tables(2, gen)
        return [SUITE.sample(f, "val", tables, 8, gen) for f in FAMILIES]

    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets) for x, y in zip(a, b))
    assert any(not torch.equal(x.inputs, y.inputs) for x, y in zip(a, c))
    for family, batch in zip(FAMILIES, a):
        assert batch.inputs.shape == (2, 8, SUITE.lengths[family])  # cut to the family's length
        assert not (batch.targets[batch.answer_mask] == PAD).any()
        assert not (batch.targets[batch.answer_mask] == SEP).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_trimming_to_the_family_length_cuts_only_padding(family):
    length = SUITE.lengths[family]
    assert SUITE.config.family_lengths[family] == length  # the FLOP table's lengths are the suite's
    assert not SUITE.answer_masks[family][:, length:].any()
    assert (SUITE.sequences[family][:, length + 1:] == PAD).all()
    cfg = ModelConfig(vocab_size=SUITE.vocab_size, n_ctx=SUITE.seq_len, n_layer=2, n_head=4, n_embd=32)
    params = init_params(cfg, 2, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(3)
    batch = SUITE.sample(family, "val", SUITE.sample_fact_tables(2, gen), 16, gen, trim=False)
    assert batch.inputs.shape[-1] == SUITE.seq_len
    trimmed = batch.trim(length)
    assert trimmed.inputs.shape[-1] == length
    full = forward(params, cfg, batch.inputs)[:, :, :length]
    torch.testing.assert_close(forward(params, cfg, trimmed.inputs), full, rtol=1e-5, atol=1e-5)


def test_bad_family_or_split_is_rejected():
    with pytest.raises(ValueError, match="unknown task family"):
        SUITE.split_size("poetry", "train")
    with pytest.raises(ValueError, match="unknown split"):
        SUITE.split_size("logic", "holdout")
    with pytest.raises(ValueError, match="sum"):
        TaskConfig(split_fractions=(0.5, 0.1, 0.1))


def test_macro_f1_matches_hand_computation():
    classes = torch.tensor([1, 2, 3])
    target = torch.tensor([[1, 1, 2, 3]])
    pred = torch.tensor([[1, 2, 2, 9]])
    mask = torch.ones_like(target, dtype=torch.bool)
    # class 1: tp1 fn1 -> 2/3; class 2: tp1 fp1 -> 2/3; class 3: fn1 -> 0
    torch.testing.assert_close(macro_f1(pred, target, mask, classes), torch.tensor([(2 / 3 + 2 / 3 + 0) / 3]))


def test_teacher_forced_exact_match_equals_greedy_decoding():
    """A random model's teacher-forced exact match is the exact match of its greedy decode."""
    config = ModelConfig(vocab_size=SUITE.vocab_size, n_ctx=16, n_layer=1, n_head=2, n_embd=16)
    gen = torch.Generator().manual_seed(4)
    params = init_params(config, 1, gen)
    # Make the model prefer PAD/END so some answers come out right and some wrong.
    params["wte"][0, END] *= 40
    tables = SUITE.sample_fact_tables(1, gen)
    ids = SUITE.split_ids["syntax"]["val"][:64]
    batch = SUITE.batch("syntax", ids[None], tables)
    logits = forward(params, config, batch.inputs)
    teacher = ((logits.argmax(-1) == batch.targets) | ~batch.answer_mask).all(-1)[0]
    for row in range(ids.numel()):
        seq = batch.inputs[0, row].tolist()
        start = seq.index(SEP) + 1
        n_answer = int(batch.answer_mask[0, row].sum())
        decoded = seq[:start]
        for _ in range(n_answer):
            nxt = forward(params, config, torch.tensor([[decoded]]))[0, 0, -1].argmax().item()
            decoded.append(nxt)
        want = batch.targets[0, row, start - 1: start - 1 + n_answer].tolist()
        assert (decoded[start:] == want) == bool(teacher[row])
    scores = evaluate_family(params, config, SUITE, "syntax", "val", tables, example_ids=ids)
    torch.testing.assert_close(scores.accuracy, teacher.float().mean()[None])
