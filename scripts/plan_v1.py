"""Search LLMRepair-v1 suite entries with the privileged planner: ``python scripts/plan_v1.py --help``.

The same command line as ``python -m agents.planner`` (:func:`agents.planner.main`); it writes the plan table
that the ``planner`` agent plays (``agents/checkpoints/LLMRepair-v1/planner`` by default).
"""

from agents.planner import main

if __name__ == "__main__":
    main()
