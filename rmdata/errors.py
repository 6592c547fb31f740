"""The one exception type for mistakes a user can fix (bad input, bad recipe, missing extra)."""


class RmdataError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero, no traceback.

    Messages name the value, the rule and the fix, e.g.
    ``pairs.jsonl:1832: pair has 2311 tokens, over data.max_length=2048 (raise it, or pass --on-error skip)``.
    """
