"""The one error type the pack raises for input a user can fix."""


class SwDError(ValueError):
    """Bad input (schedule, latent, LoRA file...) with a message that says what to change."""
