"""Fit the decision-theoretic troubleshooter on LLMRepair-Suite-v1's train split.

``python scripts/fit_troubleshooter.py --help``: the same command line as ``python -m agents.troubleshooter``
(:func:`agents.troubleshooter.main`); it writes the model the ``troubleshooter`` agent plays
(``agents/checkpoints/LLMRepair-v1/troubleshooter`` by default).
"""

from agents.troubleshooter import main

if __name__ == "__main__":
    main()
