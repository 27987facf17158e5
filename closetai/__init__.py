"""ClosetAI: find, segment, track and count clothing in street-fashion photos and videos.

Pipeline (one way): data -> model -> predict -> store -> report -> web/cli.
"""

__version__ = "0.1.0"


class ClosetAIError(Exception):
    """An error a user can act on (bad input, missing file, wrong format).

    The web layer turns it into a 4xx with the message; the CLI into exit code 2 and one line.
    """

    status = 400
