"""Training loops for the demo model and for draft heads. CPU-friendly, deterministic from a seed."""
