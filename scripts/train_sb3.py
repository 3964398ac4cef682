"""Train a Stable-Baselines3 baseline from a clone: ``python scripts/train_sb3.py --help``.

The same command line as ``python -m agents.train_sb3`` and ``llm-repair-gym train``
(:func:`agents.train_sb3.main`, which the runner calls).
"""

from agents.train_sb3 import main

if __name__ == "__main__":
    main()
