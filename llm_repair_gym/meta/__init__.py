"""Meta-learning: batched MAML, the sinusoid benchmark, the meta-task variants and the MAML initialization of a
preset's model."""
