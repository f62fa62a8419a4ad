"""The error raised for data a user must fix: missing, unreadable or unusable."""


class DataError(Exception):
    """Missing or unusable data. The message is one line that says where it looked and what to do."""
