"""Run notebook cells in a real IPython kernel (nbclient), with the environment a test chooses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def notebook(*cells: str) -> Any:
    """A notebook of code cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def execute(nb: Any, *, env: dict[str, str], cwd: Path, timeout: int = 180, allow_errors: bool = True) -> Any:
    """Execute ``nb`` in a fresh python3 kernel whose environment is ``os.environ`` + ``env``."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    full_env = {**os.environ, **env}
    client.execute(env=full_env, cwd=str(cwd))
    return nb


def outputs(nb: Any, index: int) -> list[dict[str, Any]]:
    """The outputs of cell ``index``."""
    return list(nb.cells[index].get("outputs", []))


def text_of(nb: Any, index: int) -> str:
    """Everything cell ``index`` showed as text (stream, text/plain, error)."""
    parts = []
    for out in outputs(nb, index):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data", "update_display_data"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def html_of(nb: Any, index: int) -> str:
    """Everything cell ``index`` showed as HTML."""
    return "\n".join(
        out["data"].get("text/html", "")
        for out in outputs(nb, index)
        if out["output_type"] in ("execute_result", "display_data", "update_display_data")
    )


def errors_of(nb: Any, index: int) -> list[dict[str, Any]]:
    """The error outputs of cell ``index``."""
    return [out for out in outputs(nb, index) if out["output_type"] == "error"]


def _spec_manager(python: Path, where: Path) -> Any:
    import json

    from jupyter_client.kernelspec import KernelSpecManager

    folder = where / ".kernels" / "other"
    folder.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "other", "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(folder.parent)])


class LiveKernel:
    """A real kernel driven cell by cell, so a test can interrupt a cell while it runs.

    nbclient runs whole notebooks; a test of Ctrl-C needs to start a cell, wait for something
    outside (the sandbox received a request), send the interrupt and time the reply.
    """

    def __init__(
        self, *, env: dict[str, str], cwd: Path, startup_timeout: float = 60, python: Path | None = None
    ) -> None:
        from jupyter_client.manager import KernelManager

        if python is None:
            self.manager = KernelManager(kernel_name="python3")
        else:  # a kernel of another environment (its own ipykernel), through a kernel spec of our own
            self.manager = KernelManager(kernel_name="other", kernel_spec_manager=_spec_manager(python, cwd))
        self.manager.start_kernel(env={**os.environ, **env}, cwd=str(cwd))
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=startup_timeout)

    def start(self, code: str) -> str:
        """Send a cell; returns its message id (the cell runs on)."""
        return self.client.execute(code, store_history=True)

    def wait(self, msg_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait for a cell to finish: ``status``, ``ename``, ``evalue``, ``stdout``, ``stderr``, ``text``."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        result: dict[str, Any] = {"stdout": "", "stderr": "", "text": "", "ename": None, "evalue": None}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the cell did not finish within {timeout:g} s")
            try:
                msg = self.client.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                result[content["name"]] += content["text"]
            elif kind in ("execute_result", "display_data"):
                result["text"] += content["data"].get("text/plain", "") + "\n"
            elif kind == "error":
                result["ename"], result["evalue"] = content["ename"], content["evalue"]
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        result["status"] = reply["content"]["status"]
        if result["ename"] is None and reply["content"]["status"] == "error":
            result["ename"], result["evalue"] = reply["content"].get("ename"), reply["content"].get("evalue")
        return result

    def run(self, code: str, timeout: float = 120) -> dict[str, Any]:
        """Run a cell to the end."""
        return self.wait(self.start(code), timeout)

    def interrupt(self) -> None:
        """What the notebook's stop button does (SIGINT to the kernel)."""
        self.manager.interrupt_kernel()

    def close(self) -> None:
        """Stop the kernel."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
