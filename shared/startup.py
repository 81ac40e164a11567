"""What every Spool process does first: read the settings, set up logging, warn about typos.

A malformed setting stops the process with one line naming the variable and what it
expects (click prints it, exit status 1); no traceback.
"""

import logging
import os

import click

from spool.shared.logs import configure_logging
from spool.shared.settings import Settings, SettingsError, unknown_variables


def load_settings() -> Settings:
    """`Settings.from_env()`, a bad value turned into a one-line error for the command line."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def start_process() -> Settings:
    """The settings of this process, with logging configured and unknown names warned about."""
    settings = load_settings()
    configure_logging(settings)
    for warning in unknown_variables(os.environ):
        logging.getLogger("spool").warning(warning)
    return settings
