"""The pytest plugin and the sandbox API, as the README shows them to users testing their own notebooks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"

# The README's blocks, verbatim (tests/test_readme_blocks.py checks they still match).
USER_TEST = '''
from pathlib import Path

from jupyter_amlflow.sandbox.runner import run_notebook


def test_my_notebook_logs_a_run(amlflow_sandbox, amlflow_sandbox_env, tmp_path):
    report = run_notebook(amlflow_sandbox, Path("notebooks/train.ipynb"), workdir=tmp_path)
    assert report.ok and report.runs[0].metrics["rmse"] < 0.3
'''

API_BLOCK = '''
from jupyter_amlflow.sandbox import Sandbox

with Sandbox(subscriptions=2, workspaces_per_subscription=2) as sb:
    env = {**sb.env, **sb.service_principal}     # CA bundle, cloud metadata URL, cloud name; the SP
    ws = sb.workspaces[0]                        # .subscription_id .resource_group .name .tracking_uri
    sb.inject("workspace", status=503, times=1)  # faults: latency, status + Retry-After, drop, stall
    backend = sb.backend_tracking_uri(ws)        # the plain mlflow URI behind the workspace
'''


def test_a_user_notebook_tested_with_the_plugin_fixture(pytester: pytest.Pytester) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_amlflow"),
        nbformat.v4.new_code_cell("%amlflow connect --experiment train"),
        nbformat.v4.new_code_cell("import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('rmse', 0.21)"),
    ]
    (pytester.path / "notebooks").mkdir()
    nbformat.write(nb, str(pytester.path / "notebooks" / "train.ipynb"))
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=1)


def test_the_sandbox_api_block(pytester: pytest.Pytester) -> None:
    body = API_BLOCK + (
        "    assert env['AZUREML_CURRENT_CLOUD'] == sb.cloud and ws.tracking_uri.startswith('azureml://')\n"
        # The access key rides in the URI (Basic auth); a plain MlflowClient needs nothing else.
        "    assert backend.startswith('http://sandbox:') and '@127.0.0.1:' in backend\n"
        "    from mlflow import MlflowClient\n"
        "    client = MlflowClient(tracking_uri=backend)\n"
        "    client.create_experiment('from-the-api-block')\n"
        "    assert 'from-the-api-block' in [e.name for e in client.search_experiments()]\n"
    )
    script = pytester.path / "api.py"
    script.write_text(body)
    result = pytester.run(sys.executable, str(script), timeout=600)
    assert result.ret == 0, result.stderr.str()


def test_blocks_here_match_the_readme() -> None:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert USER_TEST.strip() in [b.strip() for b in blocks]
    assert API_BLOCK.strip() in [b.strip() for b in blocks]
