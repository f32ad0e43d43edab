"""ADT-Tree: adjacency-adaptive dynamic draft trees (arXiv 2512.21857), as designed in spec §6.3."""
