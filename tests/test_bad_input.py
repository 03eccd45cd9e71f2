"""Bad input, generated: magic lines, workspace references and config.json contents.

Whatever is typed or found in a file, the answer is one clean line (``UsageError`` from the magic,
an ``AmlflowError`` from Python), never a traceback, and nothing happens: no request reaches the
sandbox (the environment points every client at it), MLflow's state and the environment stay as
they were, nothing is written to HOME. Each generator builds input that is invalid by Azure's own
rules (``valid_*`` below), so no example can slip through as a real connect.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from helpers import isolated_mlflow, mlflow_state
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import jupyter_amlflow
from jupyter_amlflow.auth import METHODS
from jupyter_amlflow.errors import AmlflowError
from jupyter_amlflow.magics import COMMANDS
from jupyter_amlflow.references import WorkspaceRef, from_names, parse_reference

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROVIDER = "Microsoft.MachineLearningServices"
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


# -- Azure's rules: the oracle that keeps every example invalid ---------------------------------------
def valid_subscription(value: str) -> bool:
    return re.fullmatch(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value.strip()) is not None


def valid_resource_group(value: str) -> bool:
    # 1-90 letters, digits, '_', '-', '.', '(' and ')' (Unicode letters and digits too), no final '.'.
    v = value.strip()
    return bool(re.fullmatch(r"[\w.()-]{1,90}", v)) and not v.endswith(".")


def valid_workspace(value: str) -> bool:
    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}", value.strip()) is not None


def valid_tenant(value: str) -> bool:
    return re.fullmatch(r"[0-9A-Za-z.-]{1,100}", value.strip()) is not None


# -- generators ---------------------------------------------------------------------------------------
METACHARACTERS = [";", "|", "&&", "$(id)", "`id`", "'", '"', "\\", "*", "?", "~", "<", ">", "!", "#", "{a,b}", "%"]
CONTROL = ["\n", "\r", "\t", "\x00", "\x1b[31m", "\u202e", "\u2028", "\u200b", "\x7f"]
UNICODE = ["é", "ß", "Ж", "漢字", "🙂", "\u0301", "ﬁ", "Ⅻ", "٣"]

nasty = st.sampled_from(METACHARACTERS + CONTROL + UNICODE)
short_text = st.text(max_size=40)
long_text = st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=4), st.integers(80, 1500))
spiced = st.builds(
    lambda before, spice, after: before + spice + after, st.text(max_size=20), nasty, st.text(max_size=20)
)
wild = st.one_of(short_text, long_text, spiced)


def _segments(sub: str = GUID, group: str = "rg-ml", name: str = "mlw-one") -> list[str]:
    return ["subscriptions", sub, "resourceGroups", group, "providers", PROVIDER, "workspaces", name]


@st.composite
def broken_arm_ids(draw: st.DrawFn) -> str:
    """A workspace resource id with a segment missing, one too many, or a bad value in a slot."""
    parts = _segments()
    how = draw(st.sampled_from(["drop", "extra", "value", "empty", "no-slash"]))
    if how == "drop":
        del parts[draw(st.integers(0, len(parts) - 1))]
    elif how == "extra":
        extra = draw(st.one_of(st.sampled_from(["experiments", "x", "workspaces", ".."]), wild))
        assume("/" not in extra and extra)
        parts.insert(draw(st.integers(0, len(parts))), extra)
    elif how == "value":
        slot, valid = draw(st.sampled_from([(1, valid_subscription), (3, valid_resource_group), (7, valid_workspace)]))
        value = draw(wild.filter(lambda v: "/" not in v and bool(v)))
        assume(not valid(value))
        parts[slot] = value
    elif how == "empty":
        parts[draw(st.integers(0, len(parts) - 1))] = ""
    text = "/" + "/".join(parts)
    if how == "no-slash":
        text = text[1:]
    return text


@st.composite
def broken_tracking_uris(draw: st.DrawFn) -> str:
    """An azureml:// tracking URI with a bad host, port, version or workspace part."""
    host = "eastus.api.azureml.ms"
    version = "v2.0"
    path = "/" + "/".join(_segments())
    how = draw(st.sampled_from(["host", "port", "version", "path"]))
    if how == "host":
        host = draw(wild.filter(lambda h: h != "" and "/" not in h and "?" not in h and "#" not in h))
        assume(not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]*)?", host))
    elif how == "port":
        port = draw(wild.filter(lambda p: p != "" and "/" not in p and "?" not in p and "#" not in p))
        assume(not re.fullmatch(r"[0-9]+", port))
        host += ":" + port
    elif how == "version":
        version = draw(wild.filter(lambda v: "/" not in v and "?" not in v and "#" not in v))
        assume(version.lower() not in ("v1.0", "v2.0"))
    else:
        path = draw(broken_arm_ids())
        assume(path.startswith("/"))
        path = quote(path, safe="/()")
    return f"azureml://{host}/mlflow/{version}{path}"


def not_a_path(cwd: Path) -> Callable[[str], bool]:
    """Text that names no file or folder here (an existing folder would be searched for config.json)."""

    def check(text: str) -> bool:
        stripped = text.strip()
        if not stripped or "\x00" in stripped:
            return bool(stripped)
        try:
            return not (cwd / os.path.expanduser(stripped)).exists()
        except (OSError, ValueError):
            return True

    return check


def references(cwd: Path) -> st.SearchStrategy[str]:
    plain = wild.filter(
        lambda t: not t.strip().lower().startswith(("/subscriptions", "azureml://", "http://", "https://"))
    ).filter(not_a_path(cwd))
    return st.one_of(broken_arm_ids(), broken_tracking_uris(), plain)


# -- fixtures and the invariant --------------------------------------------------------------------
@pytest.fixture(scope="module")
def bsb(sandbox_factory: Any) -> Any:
    """A sandbox for this module: identity and Resource Manager only; any request would show here."""
    return sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working folder (no config.json here or above it in the temp tree)."""
    return tmp_path_factory.mktemp("bad-input")


@pytest.fixture
def env(bsb: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k, v in {**bsb.env, **bsb.service_principal}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(workdir)
    with isolated_mlflow():
        yield bsb


@pytest.fixture
def ip(env: Any) -> Iterator[Any]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_amlflow")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "jupyter_amlflow")


def home_files() -> list[str]:
    home = Path(os.environ["HOME"])
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


@contextmanager
def nothing_happens(sb: Any) -> Iterator[None]:
    """No request, no change to MLflow's state, the environment or HOME."""
    requests, state, files = len(sb.requests), mlflow_state(), home_files()
    yield
    assert sb.requests[requests:] == []
    assert mlflow_state() == state
    assert home_files() == files


# What must never reach an error line verbatim: controls (newlines, escape sequences), formatting
# characters (bidi overrides, zero-width), line and paragraph separators, and unassigned code points.
UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def one_clean_line(message: str) -> None:
    assert message.strip(), "an empty error"
    unsafe = sorted({ch for ch in message if unicodedata.category(ch) in UNSAFE})
    assert not unsafe, f"not one clean line ({unsafe!r}): {message[:200]!r}"
    assert "Traceback" not in message


def magic_fails(ip: Any, sb: Any, line: str) -> str:
    """Run ``%amlflow line``; it must fail with one clean line and do nothing else."""
    magics = ip.magics_manager.registry["AmlflowMagics"]
    with nothing_happens(sb), pytest.raises(UsageError) as err:
        ip.run_line_magic("amlflow", line)
    assert type(err.value) is UsageError  # a subclass would make IPython print a traceback
    assert magics.session.connection is None
    one_clean_line(str(err.value))
    return str(err.value)


def python_fails(sb: Any, call: Callable[[], object]) -> str:
    with nothing_happens(sb), pytest.raises(AmlflowError) as err:
        call()
    one_clean_line(str(err.value))
    return str(err.value)


# -- magic lines ---------------------------------------------------------------------------------------
def _first_word(line: str) -> str | None:
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    return words[0].lower() if words else None


@EXAMPLES
@given(line=wild)
def test_any_line_that_is_not_a_subcommand(ip: Any, env: Any, line: str) -> None:
    assume(_first_word(line) not in COMMANDS)
    magic_fails(ip, env, line)


@EXAMPLES
@given(
    command=st.sampled_from(["connect", "experiment", "status", "disconnect", "panel", "version", "logout", "list"]),
    option=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    value=wild,
)
def test_unknown_options_are_refused_by_every_subcommand(
    ip: Any, env: Any, command: str, option: str, value: str
) -> None:
    # "--zz-" is a prefix of no real option, so argparse cannot take it for an abbreviation.
    message = magic_fails(ip, env, f"{command} --zz-{option} {shlex.quote(value)}")
    assert len(message) < 400


@EXAMPLES
@given(
    subscription=st.one_of(st.just(GUID), wild),
    group=st.one_of(st.just("rg-ml"), wild),
    name=st.one_of(st.just("mlw-one"), wild),
)
def test_connect_with_bad_names(ip: Any, env: Any, subscription: str, group: str, name: str) -> None:
    assume(not (valid_subscription(subscription) and valid_resource_group(group) and valid_workspace(name)))
    line = f"connect -s {shlex.quote(subscription)} -g {shlex.quote(group)} -w {shlex.quote(name)}"
    magic_fails(ip, env, line)
    python_fails(env, lambda: jupyter_amlflow.connect(subscription=subscription, resource_group=group, workspace=name))


@EXAMPLES
@given(data=st.data())
def test_connect_with_bad_references(ip: Any, env: Any, workdir: Path, data: st.DataObject) -> None:
    reference = data.draw(references(workdir))
    magic_fails(ip, env, f"connect {shlex.quote(reference)}")
    python_fails(env, lambda: jupyter_amlflow.connect(reference, auth=["env"]))


@EXAMPLES
@given(
    what=st.sampled_from(["tenant", "auth", "timeout", "cloud", "list", "clouds add"]),
    value=st.one_of(wild, st.sampled_from(["nan", "-inf", "inf", "0", "-1", "1e-400", "env,", ",", "common"])),
)
def test_bad_option_values_fail_before_any_request(
    ip: Any, env: Any, monkeypatch: pytest.MonkeyPatch, what: str, value: str
) -> None:
    ref = env.workspaces[0].arm_id  # a real workspace: only the bad option stands in the way
    if what == "tenant":
        assume(value != "" and not valid_tenant(value))  # an empty --tenant means "not given"
        line = f"connect {ref} --tenant {shlex.quote(value)}"
    elif what == "auth":
        methods = [m.strip().lower() for m in value.split(",") if m.strip()]
        assume(methods and any(m not in METHODS for m in methods))
        line = f"connect {ref} --auth {shlex.quote(value)}"
    elif what == "timeout":
        try:
            number: float | None = float(value)
        except ValueError:
            number = None
        assume(number is None or not (0 < number < float("inf")))  # nan, inf, 0 and negatives are refused
        line = f"connect {ref} --timeout {shlex.quote(value)}"
    elif what == "cloud":
        assume(value.strip().lower() not in {"azurecloud", "azurechinacloud", "azureusgovernment", "azuresandbox", ""})
        assume(not re.fullmatch(r"[\w .()-]{1,100}", value))  # names a metadata document could hold are looked up
        line = f"connect {ref} --cloud {shlex.quote(value)}"
    elif what == "list":
        assume(value not in ("tenants", "subscriptions", "workspaces", "experiments"))
        line = f"list {shlex.quote(value)}"
    else:
        assume(urlsplit(value.strip()).scheme not in ("http", "https"))
        line = f"clouds add {shlex.quote(value)}"
    magic_fails(ip, env, line)


# -- config.json ---------------------------------------------------------------------------------------
def valid_config() -> dict[str, str]:
    return {"subscription_id": GUID, "resource_group": "rg-ml", "workspace_name": "mlw-one"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | wild,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def broken_configs(draw: st.DrawFn) -> bytes:
    """The bytes of a config.json that names no workspace correctly."""
    how = draw(st.sampled_from(["bytes", "text", "json", "missing", "type", "value", "tenant", "scope"]))
    if how == "bytes":
        raw = draw(st.binary(max_size=200))
        try:
            json.loads(raw.decode("utf-8-sig"))
            assume(False)  # valid JSON is covered by the cases below
        except (UnicodeDecodeError, ValueError):
            pass
        return raw
    if how == "text":
        text = draw(wild)
        try:
            json.loads(text)
            assume(False)
        except ValueError:
            pass
        return text.encode("utf-8")
    if how == "json":
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value).encode()
    config: dict[str, Any] = valid_config()
    extra = draw(
        st.dictionaries(short_text.filter(lambda k: k not in (*config, "Scope", "tenant_id")), json_values, max_size=2)
    )
    config.update(extra)
    if how == "missing":
        for key in draw(st.sets(st.sampled_from(list(valid_config())), min_size=1)):
            del config[key]
    elif how == "type":
        key = draw(st.sampled_from([*valid_config(), "tenant_id"]))
        config[key] = draw(json_values.filter(lambda v: not isinstance(v, str) and v is not None))
    elif how == "value":
        key, valid = draw(
            st.sampled_from(
                [
                    ("subscription_id", valid_subscription),
                    ("resource_group", valid_resource_group),
                    ("workspace_name", valid_workspace),
                ]
            )
        )
        config[key] = draw(wild)
        assume(not valid(config[key]))
    elif how == "tenant":
        config["tenant_id"] = draw(wild)
        assume(config["tenant_id"].strip() and not valid_tenant(config["tenant_id"]))
    else:
        config["Scope"] = draw(broken_arm_ids())
    return json.dumps(config, ensure_ascii=draw(st.booleans())).encode()


@EXAMPLES
@given(contents=broken_configs())
def test_broken_config_json(ip: Any, env: Any, workdir: Path, contents: bytes) -> None:
    (workdir / "config.json").write_bytes(contents)
    try:
        message = magic_fails(ip, env, "connect")
        assert "config.json" in message
        python_fails(env, lambda: jupyter_amlflow.connect(auth=["env"]))
        python_fails(env, lambda: jupyter_amlflow.connect(str(workdir / "config.json"), auth=["env"]))
    finally:
        (workdir / "config.json").unlink()


def test_a_huge_file_named_config_json(ip: Any, env: Any, workdir: Path) -> None:
    path = workdir / "config.json"
    path.write_bytes(b"{" + b" " * 1_100_000 + b"}")
    try:
        message = magic_fails(ip, env, "connect")
        assert message.endswith(
            "has 1100002 bytes; a config.json has a few hundred. Download config.json again from the workspace's Overview page in the Azure portal."
        )
    finally:
        path.unlink()


def test_what_the_generators_break_is_all_that_is_wrong() -> None:
    """Unbroken, each generator's starting point is a reference the product accepts."""
    good = "/" + "/".join(_segments())
    expected = WorkspaceRef(GUID, "rg-ml", "mlw-one", source="ARM id")
    assert parse_reference(good) == expected
    assert parse_reference(f"azureml://eastus.api.azureml.ms/mlflow/v2.0{good}").workspace == "mlw-one"
    assert from_names(**{"subscription_id": GUID, "resource_group": "rg-ml", "workspace": "mlw-one"}) == WorkspaceRef(
        GUID, "rg-ml", "mlw-one"
    )
    assert valid_subscription(GUID) and valid_resource_group("rg-ml") and valid_workspace("mlw-one")
    assert all(valid_tenant(t) for t in ("contoso.onmicrosoft.com", GUID))
