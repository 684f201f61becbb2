"""Logging for the scripts and entry points, set up in one place.

The package itself only logs (``logging.getLogger(__name__)``, no ``print``); each command's
``main`` calls :func:`setup_logging` once: ``LEVEL name: message`` lines on stderr (or the
given format), chatty libraries kept at WARNING, and optionally transformers' weight-loading
bars hidden (they would break a progress bar of ours).
"""

from __future__ import annotations

import logging
import sys

#: The default line format of every command.
DEFAULT_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: Libraries whose INFO logs are noise in our output (HTTP health checks, PIL's plugin scan).
QUIET_LOGGERS: tuple[str, ...] = ("httpx", "urllib3", "PIL")


def setup_logging(
    level: str | int = "INFO",
    fmt: str = DEFAULT_FORMAT,
    datefmt: str | None = None,
    hide_hf_progress: bool = False,
    quiet: tuple[str, ...] = (),
) -> None:
    """Configure the root logger (stderr) for a command; idempotent like ``basicConfig``.
    ``quiet``: more loggers to hold at WARNING besides :data:`QUIET_LOGGERS`."""
    if isinstance(level, str):
        level = level.upper()
    logging.basicConfig(
        level=level, format=fmt, datefmt=datefmt, handlers=[logging.StreamHandler(sys.stderr)]
    )
    for name in (*QUIET_LOGGERS, *quiet):
        logging.getLogger(name).setLevel(logging.WARNING)
    if hide_hf_progress:
        from transformers.utils import logging as hf_logging  # heavy: only when asked

        hf_logging.disable_progress_bar()
