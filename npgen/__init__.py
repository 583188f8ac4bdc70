"""npgen: training-free, fully traceable image generation by copying pixels from training windows."""

__version__ = "0.1.0"
