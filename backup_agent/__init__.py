"""The Backup Portal agent: no Django here; it talks to the portal over HTTP."""

__version__ = "0.1.0"
