"""Model adapters: the small surface the speculative engine drives, one per model family.

An adapter owns the target's KV cache and CFG batch layout (conditional rows first, then unconditional),
and exposes: `setup`, `prefill`, `forward` (tree tokens at RoPE positions length + depth), `commit`/`keep`,
`logits`, plus what a draft head needs (`head`, `draft_rope`, `draft_prefix_tokens`, `draft_embed`).
"""
