"""Seg-R1: teaching a vision-language model to segment with reinforcement learning."""

__version__ = "0.1.0"
