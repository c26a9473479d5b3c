"""Built-in model factories (plugins named by import path in parameters)."""
