"""Built-in data sources: each yields training batches as dicts of tensors and a fixed held-out set."""
