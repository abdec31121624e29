"""Old import path of ``HttpConfig`` (the ``http`` section of the daemon config), kept for compatibility.

The class lives in ``wirewatch.web.config`` beside the server it configures, so that the config layer does
not import the daemon (issue 41's import rules).
"""

from wirewatch.web.config import HttpConfig

__all__ = ["HttpConfig"]
