"""Errors that the CLI turns into one clear line, never a traceback.

Every message names the offending file (or option) and says how to fix it.
"""


class ToolchainError(Exception):
    """Base class: a user-facing problem with input, configuration or environment."""


class DataFormatError(ToolchainError, ValueError):
    """A dataset file is missing, truncated, or not in the official layout."""


class DownloadError(ToolchainError):
    """A download failed or did not match its published checksum."""
