"""Train tabular Q-learning from a clone: ``python scripts/train_tabular_q.py --help``.

The same command line as ``python -m agents.train_tabular_q`` and ``llm-repair-gym train``
(:func:`agents.train_tabular_q.main`, which the runner calls).
"""

from agents.train_tabular_q import main

if __name__ == "__main__":
    main()
