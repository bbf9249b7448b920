"""corescale.worker: serves an aiohttp application as one process or as a prefork master.

Importing the package sets FROZENLIST_NO_EXTENSIONS (unless it is already
set) before aiohttp is imported: frozenlist's compiled extension is the one
thing in aiohttp's import that loads libstdc++, about 1.1 MiB of RSS in every
worker, and aiohttp touches frozen lists only at start-up, never per request
(docs/worker.md has the measurement). FROZENLIST_NO_EXTENSIONS= (empty)
brings the extension back.
"""

import os

os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")
