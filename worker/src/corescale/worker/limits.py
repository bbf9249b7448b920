"""Raises the open-file limit at start, so that idle sockets do not run the process out of them.

Every client connection is a file descriptor. The usual soft limit is 1,024
while the hard limit is often far higher (524,288 with systemd, 1,048,576 in
many container runtimes); a client that opens a thousand connections and
holds them until the header timeout (10 s) closes them would otherwise fill
the process, and the probes on the same port would be refused. The soft
limit may be raised up to the hard limit without privileges, as nginx
(`worker_rlimit_nofile`) and gunicorn's users commonly do. It is raised once,
before the prefork master forks (its workers inherit it); a failure is only
logged, since the default limit is still a working one.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_open_file_limit() -> int | None:
    """Sets the soft RLIMIT_NOFILE to the hard limit; the new soft limit, or None if unchanged."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError) as exc:
        log.debug("cannot read the open-file limit: %s", exc)
        return None
    if hard in (resource.RLIM_INFINITY, soft):
        # An unlimited hard limit cannot be the soft one (the kernel caps
        # descriptors at fs.nr_open and refuses RLIM_INFINITY); leave it.
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return None
    log.info("open-file limit raised from %d to %d", soft, hard)
    return hard
