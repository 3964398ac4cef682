"""Bridges to other libraries (Stable-Baselines3)."""
