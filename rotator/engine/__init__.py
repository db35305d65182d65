"""The rotation engine: the only package that knows the lifecycle."""
