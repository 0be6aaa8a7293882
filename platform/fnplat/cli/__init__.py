"""The `fnctl` command line: thin click commands over testable functions (see main.py)."""
