"""What every Spool process does first: read the settings, set up logging, warn about typos.

A malformed setting stops the process with one line naming the variable and what it
expects (click prints it, exit status 1); no traceback.

Garbage collection (`tune_gc`, called by the worker and the API once their modules are
imported): everything that exists then (modules, the SDKs' and pydantic's hundreds of
thousands of objects) is frozen out of the collector's reach, and young collections run
every `GC_YOUNG` allocations instead of 700. A busy worker allocates a few short-lived
objects per event, and the collector was ~12% of its CPU (perf), mostly traversing the
frozen part again and again. In the API every full collection stops every stream at
once: with 10,000 followers connected, `spool bench --phase fanout` saw 11 full
collections in the API, the longest 376 ms, before this (a gc.callbacks probe).
"""

import gc
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


GC_YOUNG = 10_000


def tune_gc() -> None:
    """Freeze what start-up created and make young collections rarer (see above)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
