"""Names from servers in commands we write (completions, the panel's commands, error hints) are inert.

IPython expands ``{...}`` and ``$name`` in magic lines, and ``%amlflow`` keeps that (the README's
``%amlflow connect {workspace}``). An experiment another user of the workspace named
``demo{__import__('pathlib').Path('PWNED').touch()}`` must complete, and paste back, as exactly
that name, with nothing run.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_client, extension_shell
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell


def hostile(marker: Path) -> str:
    """An experiment name that runs code, and uses variables, if a line expands it."""
    # Double quotes inside the braces: shlex.quote leaves them alone, so a single-quoted copy of the
    # name still evaluates (single ones would be spliced as '"'"' and break the expression).
    return f"demo{{__import__(\"pathlib\").Path({json.dumps(str(marker))}).touch()}} $x ${{x}} it's $$x {{{{x}}}} 50%"


@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """An in-process IPython shell with the extension loaded, pointed at the sandbox, with ``x`` set."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    with extension_shell(sandbox, monkeypatch.setenv) as shell:
        shell.user_ns["x"] = "EXPANDED"
        yield shell
        shell.user_ns.pop("x", None)


def complete(ip: Any, line: str) -> list[str]:
    """What Tab offers at the end of ``line`` (as a front end asks: with the cursor position)."""
    _, matches = ip.complete("", line, len(line))
    return list(matches)


def run(ip: Any, line: str) -> None:
    result = ip.run_cell(line)
    assert result.success, result.error_in_exec or result.error_before_exec


def test_a_completed_experiment_name_comes_back_exactly_and_runs_nothing(
    ip: Any, sandbox: Any, tmp_path: Path
) -> None:
    ws = sandbox.workspaces[0]
    marker = tmp_path / "PWNED"
    name = hostile(marker)
    backend_client(sandbox, ws).create_experiment(name)  # another user of the workspace made it
    run(ip, f"%amlflow connect {ws.arm_id} --experiment inert-start")
    run(ip, "%amlflow list experiments")
    magics = ip.magics_manager.registry["AmlflowMagics"]

    [completion] = [m for m in complete(ip, "%amlflow experiment ") if m.startswith("demo")]
    run(ip, "%amlflow experiment " + completion)  # what accepting the completion and Enter does
    assert magics.session.connection.experiment.name == name
    assert not marker.exists()

    # As a --experiment value too, with the user's own {expression} on the same line still expanded.
    [completion] = [m for m in complete(ip, "%amlflow connect {ws_id} --experiment ") if m.startswith("demo")]
    ip.user_ns["ws_id"] = ws.arm_id
    run(ip, "%amlflow disconnect")
    run(ip, f"%amlflow connect {{ws_id}} --experiment {completion}")
    assert magics.session.connection.experiment.name == name
    assert magics.session.connection.workspace.name == ws.name
    assert not marker.exists() and ip.user_ns["x"] == "EXPANDED"


def test_the_panels_printed_commands_paste_back_exactly_and_run_nothing(
    ip: Any, sandbox: Any, tmp_path: Path
) -> None:
    from test_panel import sign_in, wait_until

    from jupyter_amlflow.connection import Session
    from jupyter_amlflow.panel import ChoiceStore, WorkspacePanel

    ws = sandbox.workspaces[1]
    marker = tmp_path / "PWNED"
    name = hostile(marker)
    backend_client(sandbox, ws).create_experiment(name)
    panel = WorkspacePanel(Session(timeout=20), store=ChoiceStore(tmp_path / "panel.json"))
    try:
        sign_in(panel)
        panel.workspace.value = ws.arm_id
        wait_until(lambda: name in panel.experiment.options, "the experiment list", panel)
        panel.experiment.value = name  # picked from the list
        commands = panel.commands()
        assert name not in panel.text()  # written escaped, not as the raw name
    finally:
        panel.close()
    run(ip, commands[2])  # the connect command, pasted into a cell
    conn = ip.magics_manager.registry["AmlflowMagics"].session.connection
    assert (conn.workspace.name, conn.experiment.name) == (ws.name, name)
    assert not marker.exists() and ip.user_ns["x"] == "EXPANDED"
    for line in commands[:2]:
        run(ip, line)  # the lists work as printed too


def test_error_hints_with_a_tenant_from_the_server_are_inert(ip: Any, tmp_path: Path) -> None:
    from jupyter_amlflow.arm.failures import Op

    marker = tmp_path / "PWNED"
    tenant = f"{{__import__('pathlib').Path({str(marker)!r}).touch()}}$x"
    op = Op("Resource Manager: GET workspace w", "Could not read workspace 'w'", "%amlflow connect",
            subscription_id="00000000-0000-0000-0000-000000000000", resource_group="rg (test)", workspace="w")  # fmt: skip
    hint = op.again_in_tenant(tenant)
    # What %amlflow sees of the line once IPython has expanded it: the same values, nothing run.
    words = shlex.split(ip.var_expand(hint.removeprefix("%amlflow ")))
    assert words == [
        "connect", "--tenant", tenant, "--subscription", "00000000-0000-0000-0000-000000000000",
        "--resource-group", "rg (test)", "--workspace", "w",
    ]  # fmt: skip
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    [
        "plain-name_1.2", "my exp", "", "-starts-with-dash", "{x}", "}{", "{{x}}", "$x", "$$x", "$$$x", "$", "$ x",
        "${x}", "$x.attr", "it's", "a\"b", "back\\slash", "tab-free #hash", "é$é", "'$x'", "\"$x\"", "a'b$c{d}e",
    ],
)  # fmt: skip
def test_every_value_comes_back_through_expansion_and_splitting(ip: Any, value: str) -> None:
    from jupyter_amlflow.pasteable import magic_arg, magic_option

    for quotes in (True, False):
        line = f"{magic_option('--experiment', value)} {magic_arg(value, quotes=quotes)} {{x}} $x"
        assert shlex.split(ip.var_expand(line)) == [
            *([f"--experiment={value}"] if value.startswith("-") else ["--experiment", value]),
            value, "EXPANDED", "EXPANDED",
        ]  # fmt: skip


# Every character IPython's expansion or shlex treats specially, and then any printable text.
_SPECIALS = st.sampled_from([*"ab x$${}'\"\\.#%!-_A", "é", " "])


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_SPECIALS, max_size=12) | st.text(max_size=10), st.booleans())
def test_any_printable_value_comes_back_exactly(value: str, quotes: bool) -> None:
    from jupyter_amlflow.pasteable import magic_arg

    assume(value.isprintable())
    shell = InteractiveShell.instance()
    names = {name: "EXPANDED" for name in ("x", "a", "b", "A", "_", "é", "HOME", "self")}
    shell.user_ns.update(names)
    try:
        line = f"connect {magic_arg(value, quotes=quotes)} --experiment e {{x}} 'it''s' $x"
        assert shlex.split(shell.var_expand(line)) == [
            "connect", value, "--experiment", "e", "EXPANDED", "its", "EXPANDED"
        ]  # fmt: skip
    finally:
        for name in names:
            shell.user_ns.pop(name, None)


def test_a_value_no_magic_line_can_carry_is_refused() -> None:
    from jupyter_amlflow.pasteable import magic_arg

    with pytest.raises(ValueError, match="control characters"):
        magic_arg("two\nlines")
