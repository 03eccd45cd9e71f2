"""Azure identifiers, one rule each: GUIDs, DNS host names, and tenant ids or domains.

Every place that takes one of these from a person (a workspace reference, ``--tenant``,
``AZURE_TENANT_ID``, ``tenant_id`` in config.json, a Studio link's ``tid=``, a secret store's
``tenant-id``, an ``azureml://`` host) asks this module, so the same text is accepted or refused
everywhere. Callers word their own error: what was wrong and what to type next depends on where
the value came from.
"""

from __future__ import annotations

import re

__all__ = ["GUID", "TENANT_MAX_LENGTH", "is_guid", "is_host_name", "is_tenant"]

# Subscription, tenant, application and object ids: 8-4-4-4-12 hex digits, either case.
GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# A DNS label as host names use it (RFC 1123 section 2.1): letters, digits and hyphens, 1-63
# characters, starting and ending with a letter or digit.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A tenant is named by its id (a GUID) or one of its verified domains, which are DNS names.
# azure-identity's own check (azure/identity/_internal/utils.py::validate_tenant_id) only limits
# the characters to letters, digits, "-" and "."; the length cap is ours, and the same as the
# oracle tests/test_bad_input.py::valid_tenant checks against.
TENANT_MAX_LENGTH = 100


def is_guid(text: str) -> bool:
    """Whether ``text`` is a GUID such as ``0f8fad5b-d9cb-469f-a165-70867728950e`` (either case)."""
    return GUID.fullmatch(text) is not None


def _labels_ok(name: str) -> bool:
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def is_host_name(host: str) -> bool:
    """Whether ``host`` is a DNS host name (final dots allowed, at most 253 characters)."""
    return len(host) <= 253 and _labels_ok(host.rstrip("."))


def is_tenant(text: str) -> bool:
    """Whether ``text`` names a tenant: a GUID or a domain such as ``contoso.onmicrosoft.com``.

    A GUID is itself one DNS label, so one rule covers both: DNS labels joined by single dots, at
    most ``TENANT_MAX_LENGTH`` characters, no surrounding space. ``organizations`` and ``common``
    (azure-identity's multi-tenant names) pass as one-label names.
    """
    return 0 < len(text) <= TENANT_MAX_LENGTH and _labels_ok(text)
