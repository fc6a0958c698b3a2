"""SPLADE encoding: the encoder, feature keys and pruning policies (the only models here)."""
