"""The error raised for data a user must fix (missing, unreadable or unusable), and the line that tells an error."""


class DataError(Exception):
    """Missing or unusable data. The message is one line that says where it looked and what to do."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name when it has none: for one-line reports."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
