"""What a user command's exit code means, and the error that ends one with exit 2.

The codes are documented in docs/cli.md (Exit codes); scripts depend on them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_CLIENT_ERROR = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class UsageError(Exception):
    """A request the command cannot make sense of (exit 2, message on stderr)."""
