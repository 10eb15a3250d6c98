"""The ``backup-agent`` commands, one module per group of subcommands.

``backup_agent.cli`` parses the arguments and calls them.
"""
