"""A remembered sign-in: MSAL's token cache and the saved account (``AuthenticationRecord``), and ``logout``.

Opt-in (``persist=True``), for browser and device-code sign-ins only. The token cache is azure-
identity's persistent one (``TokenCachePersistenceOptions(name="jupyter_amlflow")``), encrypted
by the platform's secret store; a plain cache file only with ``allow_unencrypted_cache=True``, and
then it and its folder must be this user's alone. The account record (no secret in it) goes to
``~/.jupyter_amlflow/auth-record-<cloud>.json``, written 0600 through ``userfiles``. ``logout``
removes both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..userfiles import read_private, state_dir, write_private
from ._claims import printable
from ._context import Context, Failed, chain_text

if TYPE_CHECKING:
    from azure.identity import AuthenticationRecord, TokenCachePersistenceOptions

    from ..clouds import Cloud

__all__ = [
    "CACHE_NAME",
    "cache_options",
    "load_record",
    "logout",
    "no_secret_store",
    "no_secret_store_failure",
    "record_path",
    "save_record",
    "token_cache_paths",
]

_LOG = logging.getLogger(__name__)

CACHE_NAME = "jupyter_amlflow"
_CACHE_SUFFIXES = (".nocae", ".cae")  # azure-identity: CACHE_NON_CAE_SUFFIX, CACHE_CAE_SUFFIX


# -- where things are ----------------------------------------------------------------------------
def record_path(cloud_name: str) -> Path:
    """Where the saved sign-in (``AuthenticationRecord``, no secret in it) for a cloud lives."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cloud_name) or "cloud"
    return state_dir() / f"auth-record-{safe}.json"


def token_cache_paths(cache_name: str = CACHE_NAME) -> list[Path]:
    """The files of the persistent token cache (where azure-identity / msal-extensions put them)."""
    return [_cache_dir() / (cache_name + suffix) for suffix in _CACHE_SUFFIXES]


def _cache_dir() -> Path:
    # azure-identity's _persistent_cache._get_persistence: LOCALAPPDATA on Windows, else ~ (HOME).
    if sys.platform.startswith("win") and "LOCALAPPDATA" in os.environ:
        return Path(os.environ["LOCALAPPDATA"]) / ".IdentityService"
    return Path(os.path.expanduser("~")) / ".IdentityService"


# -- forgetting ----------------------------------------------------------------------------------
def logout(*, cache_name: str = CACHE_NAME) -> list[str]:
    """Forget every persisted sign-in: the token cache and the saved ``AuthenticationRecord`` s.

    Args:
        cache_name: The token cache's name (``TokenCachePersistenceOptions.name``).

    Returns:
        What was removed (file paths, and the secret-store entry when there was one).
    """
    removed: list[str] = []
    if _clear_secret_store(cache_name):
        removed.append(f"token cache {cache_name!r} in the system secret store")
    records = sorted(state_dir().glob("auth-record-*.json"))
    for path in [*token_cache_paths(cache_name), *records]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path))
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + ".lockfile").unlink()
    return removed


def _clear_secret_store(cache_name: str) -> bool:
    """Empty the encrypted cache in the OS secret store (keychain, libsecret), if there is one.

    Deleting the files is not enough there: on macOS and Linux the file only signals changes and
    the tokens live in the store. azure-identity has no public call to clear a persisted cache,
    so this uses its private loader; any failure means there is nothing we can clear.
    """
    try:
        from azure.identity import TokenCachePersistenceOptions
        from azure.identity._persistent_cache import _load_persistent_cache
        from msal import TokenCache
    except ImportError:
        return False
    cleared = False
    kinds = [getattr(TokenCache.CredentialType, k) for k in ("ACCESS_TOKEN", "REFRESH_TOKEN", "ID_TOKEN", "ACCOUNT")]
    for is_cae in (False, True):
        try:
            cache = _load_persistent_cache(TokenCachePersistenceOptions(name=cache_name), is_cae)
            entries = [(kind, entry) for kind in kinds for entry in list(cache.search(kind))]
            for kind, entry in entries:
                cache.modify(kind, entry, None)
            cleared = cleared or bool(entries)
        except Exception as exc:  # boundary: no usable secret store means nothing is stored in one
            _LOG.debug("No encrypted token cache to clear (%s)", type(exc).__name__)
            break
    return cleared


# -- the token cache -----------------------------------------------------------------------------
def cache_options(ctx: Context) -> TokenCachePersistenceOptions | None:
    """The persistent cache's options for an interactive sign-in; None without ``persist``."""
    if not ctx.persist:
        return None
    from azure.identity import TokenCachePersistenceOptions

    if os.name != "nt":
        _prepare_cache_dir(check=ctx.allow_unencrypted_cache)
    return TokenCachePersistenceOptions(name=CACHE_NAME, allow_unencrypted_storage=ctx.allow_unencrypted_cache)


def _prepare_cache_dir(*, check: bool) -> None:
    """Create the cache directory 0700 (msal-extensions would make it 0755); refuse lax permissions.

    A plain cache file holds refresh tokens: it must be readable by this user alone, and so must
    its directory.
    """
    directory = _cache_dir()
    if not os.path.lexists(directory):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    if not check:
        return
    for path in (directory, *token_cache_paths(CACHE_NAME)):
        try:
            st = os.lstat(path)  # the path itself: a planted symlink is refused, not followed
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise Failed(
                f"the token cache path {path} is a symbolic link",
                f"Remove it (rm {path}), or do not persist the sign-in",
            )
        mode = st.st_mode & 0o777
        others = mode & 0o077
        foreign = hasattr(os, "getuid") and st.st_uid != os.getuid()
        if others or foreign:
            fix = f"chmod {'700' if path.is_dir() else '600'} {path}"
            why = f"it belongs to another user (uid {st.st_uid})" if foreign else f"its mode is {mode:o}"
            raise Failed(
                f"the token cache {'directory' if path.is_dir() else 'file'} {path} is readable by others ({why})",
                f"Run: {fix}" if not foreign else f"Remove {path}, or do not persist the sign-in",
            )


def no_secret_store(exc: BaseException) -> bool:
    """Whether ``exc`` says the encrypted cache cannot work here (no usable secret store)."""
    text = chain_text(exc)
    return "Cache encryption is impossible" in text or "persistent cache is not available" in text


def no_secret_store_failure() -> Failed:
    """The failure to report when the encrypted cache cannot work here."""
    return Failed(
        "this machine has no secret store to keep the sign-in encrypted (libsecret is missing or unusable, "
        "e.g. over SSH)",
        "Allow a plain cache file only you can read: %config AmlflowMagics.allow_unencrypted_token_cache = True "
        "(Python: allow_unencrypted_cache=True), or sign in without persistence",
    )


# -- the saved account ---------------------------------------------------------------------------
def load_record(cloud: Cloud) -> AuthenticationRecord | None:
    """The saved account for ``cloud``, or None (none saved, unsafe, unreadable, or for another authority)."""
    from azure.identity import AuthenticationRecord

    path = record_path(cloud.name)
    try:
        text = read_private(path)
    except OSError as exc:  # an unsafe folder or a link included: sign in again instead
        _LOG.warning("Ignoring the saved sign-in %s: %s", path, exc)
        return None
    if text is None:
        return None
    try:
        record = AuthenticationRecord.deserialize(text)
    except (ValueError, KeyError, TypeError):
        _LOG.warning("Ignoring the saved sign-in %s: it is not a sign-in record", path)
        return None
    if record.authority.lower() != _authority_netloc(cloud):
        # Saved for another authority (a cloud redefined, a sandbox on another port).
        _LOG.info("Ignoring the saved sign-in %s: it is for %s", path, printable(record.authority))
        return None
    return record


def save_record(cloud: Cloud, record: AuthenticationRecord) -> str:
    """Write the account record (no secret in it) 0600; returns a note for the attempt's reason."""
    from azure.identity import AuthenticationRecord

    # MSAL caches tokens under the authority we signed in with, which the id token's issuer may
    # spell differently (China); pin the record to the cloud's authority so the lookup matches.
    pinned = AuthenticationRecord(
        record.tenant_id, record.client_id, _authority_netloc(cloud), record.home_account_id, record.username
    )
    path = record_path(cloud.name)
    try:
        write_private(path, pinned.serialize())
    except OSError as exc:
        _LOG.warning("Could not save the sign-in to %s: %s", path, exc)
        return f"not saved for new kernels ({exc.strerror or exc})"
    return "saved for new kernels"


def _authority_netloc(cloud: Cloud) -> str:
    return urlsplit(cloud.authority_host).netloc.lower()
