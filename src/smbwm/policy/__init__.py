"""The Modular Mind policy's training side: torch twin of the net, rollouts, REINFORCE (the features
and the numpy agent are in agents/).

Importing this package does not import torch: collection with the policy stays numpy-only.
"""
