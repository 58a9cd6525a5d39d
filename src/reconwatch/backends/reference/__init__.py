"""Reference interpreter: the plan evaluated row by row in Python, the semantic oracle."""
