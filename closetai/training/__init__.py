"""Data readers, training, evaluation, the model card, epoch selection."""
