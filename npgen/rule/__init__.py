"""The sampling rule: random streams, context windows, the semantic pool, the sampler and its CUDA twin."""
