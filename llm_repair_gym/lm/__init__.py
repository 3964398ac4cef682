"""The language model: a batched GPT-2, its optimizers and training step, the synthetic task families, metrics,
presets and the healthy model zoo."""
