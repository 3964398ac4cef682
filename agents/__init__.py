"""Hand-written and baseline agents for llm-repair-gym and Gymnasium classics."""
