"""Run the receiver: ``python -m registry_receiver [--port N] [--admin-port N] [--db PATH]``."""

from registry_receiver.main import cli

cli()
