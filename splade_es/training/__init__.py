"""Training: SPLADE training, training data, hard negatives, teachers, the lambda sweep."""
