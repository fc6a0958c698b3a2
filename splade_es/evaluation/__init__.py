"""Evaluation: evaluate (stages on a real node), metrics, parity and reports."""
