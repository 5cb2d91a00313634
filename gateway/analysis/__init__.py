"""Analysis: the statistics behind reports and rollout gates (pure functions, no I/O)."""
