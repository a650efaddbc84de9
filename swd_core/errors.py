"""The one error type the pack raises for input a user can fix."""
from __future__ import annotations


class SwDError(ValueError):
    """Bad input (schedule, latent, LoRA file...) with a message that says what to change.

    Args:
        message: what is wrong and what to change.
        field: the input the value came from where one is at fault (``"scales"``, ``"sigmas"``,
            ``"preset"``), so that a node can report the error under it; ``None`` otherwise.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field
