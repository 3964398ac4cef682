"""What every agent shares, above the envs: playing episodes, the policy protocol and the training log."""
