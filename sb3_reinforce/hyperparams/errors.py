"""The error of a hyperparameter file or entry that cannot be loaded or does not validate."""

__all__ = ["HyperparamsError"]


class HyperparamsError(ValueError):
    """
    A hyperparameter file or entry that cannot be loaded or does not validate.

    :param message: the full, human-readable message
    :param problems: ``(key, description)`` for each problem found (empty when not specific to a key)
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []
