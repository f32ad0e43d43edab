"""Text conditions: prompt cleaning, the local T5 encoder of LlamaGen t2i, and masked condition batches."""
