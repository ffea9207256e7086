"""Built-in strategies, one module per slot (Euclidean geometry in its own module)."""
