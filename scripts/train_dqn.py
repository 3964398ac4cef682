"""Train our DQN (and DQfD) from a clone: ``python scripts/train_dqn.py --help``.

The same command line as ``python -m agents.train_dqn`` and ``llm-repair-gym train``
(:func:`agents.train_dqn.main`, which the runner calls).
"""

from agents.train_dqn import main

if __name__ == "__main__":
    main()
