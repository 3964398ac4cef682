"""Per-env scores of a batched model on a task family: exact match, answer-token loss, macro-F1."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_repair_gym.lm.model import ModelConfig, Params, forward, token_losses
from llm_repair_gym.lm.tasks import FAMILIES, Batch, TaskSuite


@dataclass
class Scores:
    """Scores ``[N]`` (one per env) of one family on a set of examples."""

    accuracy: torch.Tensor
    loss: torch.Tensor
    macro_f1: torch.Tensor
    example_losses: torch.Tensor  # [N, B]: mean answer-token loss of every scored example


def score_logits(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean answer-token loss per example ``[N, B]``, exact-match correctness ``[N, B]`` and argmax tokens."""
    mask = batch.answer_mask
    losses = token_losses(logits, batch.targets)
    predictions = logits.argmax(-1)
    example_loss = (losses * mask).sum(-1) / mask.sum(-1).clamp_min(1)
    correct = ((predictions == batch.targets) | ~mask).all(-1)
    return example_loss, correct, predictions


def score_batch(params: Params, config: ModelConfig, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean answer-token loss and exact-match correctness ``[N, B]`` of every model on its own batch."""
    losses, correct, _ = score_logits(forward(params, config, batch.inputs), batch)
    return losses, correct


def macro_f1(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
             classes: torch.Tensor) -> torch.Tensor:
    """Macro-F1 ``[N]`` over ``classes`` (``[C]``, or ``[N, C]``: each env's own) of the masked token
    predictions ``[N, ...]``.

    Classes that are neither predicted nor present in the targets of an env do not enter its average
    (scikit-learn's convention); a prediction outside ``classes`` is a miss for its target class.
    """
    n = predictions.shape[0]
    pred = predictions.reshape(n, -1, 1)
    true = targets.reshape(n, -1, 1)
    m = mask.reshape(n, -1, 1)
    if classes.dim() == 2:
        classes = classes[:, None, :]
    is_pred = (pred == classes) & m  # [N, K, C]
    is_true = (true == classes) & m
    tp = (is_pred & is_true).sum(1).float()
    fp = (is_pred & ~is_true).sum(1).float()
    fn = (~is_pred & is_true).sum(1).float()
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1.sum(1) / present.sum(1).clamp_min(1)


@torch.no_grad()
def evaluate_family(params: Params, config: ModelConfig, suite: TaskSuite, family: str, split: str,
                    fact_tables: torch.Tensor, example_ids: torch.Tensor | None = None,
                    chunk_size: int = 1024, token_maps: torch.Tensor | None = None) -> Scores:
    """Score every env on a family's split (all of it, or the shared ``example_ids [K]``), in chunks.
    ``token_maps [N, vocab]`` relabels each env's sequences (and answer classes): a meta-task variant."""
    ids = suite.split_ids[family][split] if example_ids is None else example_ids
    n = fact_tables.shape[0]
    classes = suite.answer_token_ids(family)
    if token_maps is not None:
        classes = token_maps[:, classes]
    losses, corrects, preds, targets, masks = [], [], [], [], []
    for start in range(0, ids.numel(), chunk_size):
        chunk = ids[start:start + chunk_size].expand(n, -1)
        batch = suite.batch(family, chunk, fact_tables, token_maps=token_maps)
        example_loss, correct, pred = score_logits(forward(params, config, batch.inputs), batch)
        losses.append(example_loss)
        corrects.append(correct)
        preds.append(pred)
        targets.append(batch.targets)
        masks.append(batch.answer_mask)
    example_losses = torch.cat(losses, 1)
    mask = torch.cat(masks, 1)
    token_loss = (example_losses * mask.sum(-1)).sum(1) / mask.sum((1, 2)).clamp_min(1)
    return Scores(
        accuracy=torch.cat(corrects, 1).float().mean(1),
        loss=token_loss,
        macro_f1=macro_f1(torch.cat(preds, 1), torch.cat(targets, 1), mask, classes),
        example_losses=example_losses,
    )


def evaluate(params: Params, config: ModelConfig, suite: TaskSuite, split: str,
             fact_tables: torch.Tensor, token_maps: torch.Tensor | None = None) -> dict[str, Scores]:
    """Scores of every family on a whole split (of each env's meta-task variant, given ``token_maps``)."""
    return {family: evaluate_family(params, config, suite, family, split, fact_tables, token_maps=token_maps)
            for family in FAMILIES}
