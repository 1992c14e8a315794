"""The Modular Mind policy's training side: features (numpy), torch twin of the net, REINFORCE.

Importing this package does not import torch: collection with the policy stays numpy-only.
"""
