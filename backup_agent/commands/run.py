"""``backup-agent run``: the service, with its log file."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys

from ..config import ConfigDir
from .context import config_dir, make_agent


def setup_service_logging(cdir: ConfigDir, verbose: bool) -> None:
    cdir.ensure()
    logger = logging.getLogger("backup_agent")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s")
    fileh = logging.handlers.RotatingFileHandler(
        cdir.log_file, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    fileh.setFormatter(fmt)
    with contextlib.suppress(OSError):
        os.chmod(cdir.log_file, 0o600)
    logger.handlers = [fileh]
    errh = logging.StreamHandler(sys.stderr)
    errh.setFormatter(fmt)
    logger.addHandler(errh)
    logger.propagate = False


def cmd_run(args) -> int:
    from ..service import Service

    cdir = config_dir(args)
    cdir.load()  # clear message when not registered, before the log file exists
    holder = cdir.is_locked("run")
    if holder:
        from ..errors import Busy

        raise Busy(
            f"backup-agent run is already running with {cdir.path} (process {holder}). "
            "Only one service may use a configuration folder."
        )
    setup_service_logging(cdir, args.verbose)
    agent = make_agent(args)
    service = Service(agent)
    service.install_signal_handlers()
    try:
        return service.run()
    finally:
        agent.close()
