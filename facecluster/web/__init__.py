"""``facecluster review``: the local web app to look at people and fix them.

>>> server = ReviewServer("people/faces.db")      # doctest: +SKIP
>>> server.url
'http://127.0.0.1:53817/'
>>> server.run()                                   # until Ctrl-C
"""

from facecluster.web.app import create_app
from facecluster.web.server import LOOPBACK_HOSTS, ReviewServer

__all__ = ["LOOPBACK_HOSTS", "ReviewServer", "create_app"]
