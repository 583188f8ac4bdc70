"""Scoring image sets: novelty, near-copies, feature-space FID, precision/recall and class fidelity."""
