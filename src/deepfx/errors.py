"""The one exception type for bad user input: the CLI prints its message and exits 2."""

__all__ = ["DeepfxError"]


class DeepfxError(Exception):
    """A user-facing error: the message names the file or parameter and what is wrong."""
