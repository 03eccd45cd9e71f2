"""Keep secrets out of third-party debug logs.

MSAL logs every token event at DEBUG with most secrets masked, but not the device code it just
redeemed (``"code"`` / ``"device_code"``). Someone following the troubleshooting advice and turning
on DEBUG logging would copy it into a support ticket. The filter masks those fields.
"""

from __future__ import annotations

import logging
import re

_FIELDS = re.compile(r'("(?:device_code|code|client_assertion)"\s*:\s*)"[^"]*"')
_MSAL_LOGGERS = ("msal.token_cache", "msal.application", "msal.oauth2cli.oauth2", "msal.oauth2cli.oidc")


class MaskSecrets(logging.Filter):
    """Rewrites a record's message with the sensitive JSON fields masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # leave malformed records to the logging module's own error path
            return True
        masked = _FIELDS.sub(r'\1"********"', message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = MaskSecrets()


def install() -> None:
    """Attach the filter to MSAL's loggers (idempotent)."""
    for name in _MSAL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
