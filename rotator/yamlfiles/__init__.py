"""YAML as rotator reads it: with line numbers, no duplicate keys, bounded in size and depth
(source.py); the C reader where it is safe (fast.py); a large file's problems located in one pass (lines.py)."""
