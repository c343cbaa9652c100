"""Progress bars of the management commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


@contextmanager
def progress_bar(*, enabled: bool = True, **options: Any) -> Iterator[tqdm]:
    """A tqdm bar on standard error for the block (``options`` go to tqdm); a disabled one,
    whose methods do nothing, when not ``enabled`` (a command asked for JSON).

    While the bar is shown, what the console log handler writes (a gateway call per SIS page
    during a sync) is printed above the bar, with that handler's formatter and filters
    (redaction included), instead of breaking into the bar's line."""
    if not enabled:
        with tqdm(disable=True, **options) as bar:
            yield bar
        return
    with logging_redirect_tqdm(), tqdm(file=sys.stderr, **options) as bar:
        yield bar
