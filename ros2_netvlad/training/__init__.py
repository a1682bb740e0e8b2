"""Weakly supervised triplet training: mining (positives, hard negatives, loss), place sets built
from sources, and the trainer (cache, DDP, checkpoints, resume). Imports sources, model and
evaluation metrics — never maps."""
