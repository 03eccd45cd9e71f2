"""Keep secrets out of third-party debug logs.

Someone following the troubleshooting advice (DEBUG logging) would copy these logs into a support
ticket, so the filters mask what the libraries themselves leave in:

* MSAL logs every token event with most secrets masked, but not the device code it just redeemed
  (``"code"`` / ``"device_code"``);
* urllib3 logs each request line, and the artifact uploads' URLs carry a SAS signature
  (``sig=``); azure-core's own logger redacts it, urllib3's does not.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r'("(?:device_code|code|client_assertion)"\s*:\s*)"[^"]*"'), r'\1"********"'),
    (re.compile(r"([?&](?:sig|code)=)[^&\s\"']+", re.IGNORECASE), r"\1REDACTED"),
)
_LOGGERS = (
    "msal.token_cache",
    "msal.application",
    "msal.oauth2cli.oauth2",
    "msal.oauth2cli.oidc",
    "urllib3.connectionpool",
)


class MaskSecrets(logging.Filter):
    """Rewrites a record's message with the sensitive fields masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # leave malformed records to the logging module's own error path
            return True
        masked = message
        for pattern, replacement in _PATTERNS:
            masked = pattern.sub(replacement, masked)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = MaskSecrets()


def install() -> None:
    """Attach the filter to the loggers above (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
