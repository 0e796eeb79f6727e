"""Dataset building and its card, made from the real records."""
