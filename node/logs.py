"""Where the daemon's log lines go: a rotating ``fcd.log`` in the data directory and stderr.

The file keeps everything at the chosen level and survives the terminal, so an operator
(or a failing functional test) can read what a node did after the fact; it rotates at
10 MB and keeps five old files, so a chatty node cannot fill the disk. stderr gets the
same lines for whoever started the daemon by hand.

py-libp2p configures its own loggers when imported: without ``LIBP2P_DEBUG`` it cuts
them off from the root logger, so its warnings would reach only bare stderr and never
the log file. We reattach them at WARNING (their debug lines would drown ours); with
``LIBP2P_DEBUG`` set, py-libp2p's own debug setup is left as it is.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_FILE = "fcd.log"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def setup_logging(datadir: Path, level: str) -> logging.Handler:
    """Send our loggers to ``datadir/fcd.log`` and stderr at ``level`` (e.g. ``"info"``).

    Returns the stderr handler, so a fatal error can go to the file alone and reach
    stderr as one plain line.
    """
    formatter = logging.Formatter(LOG_FORMAT)
    file_handler = logging.handlers.RotatingFileHandler(
        datadir / LOG_FILE, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    stderr_handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Per-request access lines are noise in a node log; errors still come through.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    if not os.environ.get("LIBP2P_DEBUG"):
        libp2p = logging.getLogger("libp2p")
        libp2p.setLevel(logging.WARNING)
        libp2p.propagate = True
    return stderr_handler
