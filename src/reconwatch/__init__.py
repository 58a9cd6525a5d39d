"""reconwatch: catch network reconnaissance from compromised Linux hosts."""

__version__ = "0.1.0"
