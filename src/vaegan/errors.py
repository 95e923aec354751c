"""The one exception type users see as a single clear line (the CLI prints it and exits non-zero)."""


class VaeganError(Exception):
    """A problem the user can fix (missing data, bad config, corrupt file); never shown as a traceback."""


class StoppedByAnotherRank(Exception):
    """Under torchrun: this rank stopped because another rank of the run failed first, and that one reports why."""
