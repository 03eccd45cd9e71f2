"""Log an MLflow run to Azure ML from CI (or any unattended machine) with a service principal.

Set the service principal, then run this script with the workspace (or a config.json nearby)::

    export AZURE_TENANT_ID=11111111-1111-1111-1111-111111111111 AZURE_CLIENT_ID=22222222-2222-2222-2222-222222222222
    export AZURE_CLIENT_SECRET=...                       # or:
    export AZURE_CLIENT_CERTIFICATE_PATH=/path/to/sp.pem AZURE_CLIENT_CERTIFICATE_PASSWORD=...
    python examples/service_principal.py /subscriptions/.../workspaces/my-workspace --experiment nightly

Only the ``env`` sign-in method is tried: a CI job must never wait for a person.
"""

from __future__ import annotations

import argparse
import sys

import jupyter_amlflow
from jupyter_amlflow.errors import AmlflowError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", help="resource id or tracking URI (default: config.json)")
    parser.add_argument("--experiment", default="ci")
    args = parser.parse_args()
    try:
        conn = jupyter_amlflow.connect(args.workspace, auth=["env"], experiment=args.experiment)
    except AmlflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    import mlflow

    with mlflow.start_run(run_name="ci-check") as run:
        mlflow.log_params({"python": sys.version.split()[0], "runner": "ci"})
        for step, value in enumerate([0.9, 0.6, 0.45, 0.4]):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_dict({"status": "ok"}, "result.json")
    print(f"logged run {run.info.run_id} to {conn.workspace.name}: {conn.run_url(run.info.run_id)}")
    conn.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
