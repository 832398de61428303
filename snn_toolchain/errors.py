"""Errors that the CLI turns into one clear line, never a traceback.

Every message names the offending file (or option) and says how to fix it.
"""


def one_line(value: object) -> str:
    """``value`` as text on one line (a message may quote an array's repr or an OS error that spans
    lines): whitespace runs become one space."""
    return " ".join(str(value).split())


class ToolchainError(Exception):
    """Base class: a user-facing problem with input, configuration or environment."""


class DataFormatError(ToolchainError, ValueError):
    """A dataset file is missing, truncated, or not in the official layout."""


class DownloadError(ToolchainError):
    """A download failed or did not match its published checksum."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM arrived; the CLI prints one line and exits 128 + ``signum``
    (130, 143). A subclass of KeyboardInterrupt, so code that cleans up on Ctrl-C cleans up on both."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)
