"""Why a command was refused."""


class RuleViolation(Exception):
    """The command breaks a rule of the task's life cycle; the client can correct it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
