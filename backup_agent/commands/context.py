"""The configuration folder and the ``Agent`` a command works with."""

from __future__ import annotations

from ..config import ConfigDir


def config_dir(args) -> ConfigDir:
    return ConfigDir(getattr(args, "config_dir", None))


def make_agent(args, **kwargs):
    from ..jobs import Agent

    return Agent(config_dir(args), **kwargs)
