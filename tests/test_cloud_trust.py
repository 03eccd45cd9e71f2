"""A cloud metadata document may add clouds, never redefine one; it comes over https; custom clouds show.

A document listing a decoy ``AzureCloud`` must not make the next ``--cloud AzureCloud`` sign-in
(a service principal's client secret included) go to the document's host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import extension_shell
from IPython.core.error import UsageError

from jupyter_amlflow.sandbox import Request, Response, route


class DecoyDocuments:
    """An https server (the sandbox's certificate, another port) serving metadata documents by path."""

    def __init__(self, sb: Any) -> None:
        self.documents: dict[str, Any] = {}
        self.requests: list[str] = []
        self._sb = sb
        self.server = sb.add_listener([route("*", r"/(?P<path>.*)", "decoy", self._serve)], tls=True)
        self.base = self.server.base_url

    def _serve(self, req: Request) -> Response:
        self.requests.append(f"{req.method} {req.path}")
        document = self.documents.get(req.params["path"])
        return Response.json(document) if document is not None else Response.json({"error": "no"}, 404)

    def url(self, name: str, document: Any) -> str:
        self.documents[name] = document
        return f"{self.base}/{name}"

    def stop(self) -> None:
        self._sb.remove_listener(self.server)


@pytest.fixture
def decoys(sandbox: Any) -> Iterator[DecoyDocuments]:
    served = DecoyDocuments(sandbox)
    yield served
    served.stop()


@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with extension_shell(sandbox, monkeypatch.setenv) as shell:
        yield shell


def decoy_entry(name: str, host: str) -> dict[str, Any]:
    """A cloud whose sign-in and Resource Manager are ``host``."""
    return {
        "name": name,
        "portal": f"{host}/portal",
        "authentication": {"loginEndpoint": f"{host}/", "audiences": [f"{host}/"]},
        "resourceManager": f"{host}/",
        "suffixes": {"storage": "core.decoy.test"},
    }


def builtin_row(ip: Any, name: str) -> list[Any]:
    table = ip.run_line_magic("amlflow", "clouds")
    return next(row for row in table.rows if row[0] == name)


def test_a_document_that_redefines_azurecloud_is_refused_whole(ip: Any, decoys: DecoyDocuments) -> None:
    magics = ip.magics_manager.registry["AmlflowMagics"]
    url = decoys.url(
        "contoso.json", [decoy_entry("Contoso", decoys.base), decoy_entry("AzureCloud", decoys.base)]
    )
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("amlflow", f"clouds add {url}")
    assert str(err.value) == (
        f"Cloud metadata from '{url}' is refused: it redefines the built-in cloud AzureCloud. It gives sign-in "
        f"'{decoys.base}' instead of 'https://login.microsoftonline.com'; Resource Manager '{decoys.base}/' "
        "instead of 'https://management.azure.com/'; storage 'core.decoy.test' instead of 'core.windows.net'; "
        f"portal '{decoys.base}/portal' instead of 'https://portal.azure.com'; Studio 'none' instead of "
        "'https://ml.azure.com', and sign-ins to AzureCloud would go there. A custom cloud needs a name of its "
        "own: check that the URL is your cloud's Resource Manager metadata document; nothing was added."
    )
    # Nothing of the document was taken: not the decoy, not its other cloud.
    cloud = magics.session.catalog.get("AzureCloud")
    assert (cloud.authority, cloud.resource_manager, cloud.custom) == (
        "https://login.microsoftonline.com",
        "https://management.azure.com/",
        False,
    )
    assert "Contoso" not in magics.session.catalog
    assert builtin_row(ip, "AzureCloud")[1] == "built in"
    assert decoys.requests == ["GET /contoso.json"]  # the document only: no sign-in went there


def test_a_document_may_list_the_public_clouds_as_they_are(ip: Any, decoys: DecoyDocuments, sandbox: Any) -> None:
    # What management.azure.com/metadata/endpoints serves: the public clouds, unchanged, and another.
    same = {
        "name": "AzureCloud",
        "portal": "https://portal.azure.com",
        "authentication": {"loginEndpoint": "https://login.microsoftonline.com/"},
        "resourceManager": "https://management.azure.com/",
        "suffixes": {"storage": "core.windows.net"},
    }
    url = decoys.url("azure.json", [same, decoy_entry("Fabrikam", decoys.base)])
    table = ip.run_line_magic("amlflow", f"clouds add {url}")
    assert table.note == "Added Fabrikam; already known, unchanged: AzureCloud."
    rows = {row[0]: row[1] for row in table.rows}
    assert rows["AzureCloud"] == "built in"
    assert rows["Fabrikam"] == f"custom, from {url}"


def test_a_known_custom_cloud_cannot_be_moved_by_another_document(
    ip: Any, decoys: DecoyDocuments, sandbox: Any
) -> None:
    ws = sandbox.workspaces[0]
    ip.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment trust")  # adds the sandbox cloud by its URL
    status = ip.run_line_magic("amlflow", "status")
    assert dict(status.rows)["Cloud"] == f"{sandbox.cloud} (custom, from {sandbox.metadata_url})"
    assert builtin_row(ip, sandbox.cloud)[1] == f"custom, from {sandbox.metadata_url}"
    moved = decoys.url("moved.json", [decoy_entry(sandbox.cloud, decoys.base)])
    with pytest.raises(UsageError, match=f"it redefines the cloud added earlier {sandbox.cloud}"):
        ip.run_line_magic("amlflow", f"clouds add {moved}")
    magics = ip.magics_manager.registry["AmlflowMagics"]
    assert magics.session.catalog.get(sandbox.cloud).resource_manager == sandbox.arm_url


def test_a_metadata_document_over_plain_http_is_refused_before_any_request(ip: Any, sandbox: Any) -> None:
    listener = sandbox.add_listener([])  # plain http on 127.0.0.1
    url = f"{listener.base_url}/metadata/endpoints?api-version=2019-05-01"
    sandbox.clear_requests()
    ws = sandbox.workspaces[0]
    for line in (f"clouds add {url}", f"connect {ws.arm_id} --cloud Elsewhere --cloud-metadata-url {url}"):
        with pytest.raises(UsageError) as err:
            ip.run_line_magic("amlflow", line)
        assert "It is not an https:// URL, and the document decides where sign-ins and tokens go" in str(err.value)
    assert [r for r in sandbox.requests if r.port == listener.port] == []
    assert json.dumps([r.path for r in sandbox.requests]).count("metadata") == 0
