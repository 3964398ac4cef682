"""What a repair env is made of, below the Gymnasium API: the batched state, random streams, dynamics, faults,
actions, features and instances."""
