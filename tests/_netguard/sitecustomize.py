"""Loaded by every Python child process the tests start (PYTHONPATH points here).

Installs the same loopback-only guard as ``tests/netguard.py`` and appends each refused
connection to the file named by ``AMLFLOW_NETGUARD_LOG``, which the test suite checks.
"""

import os

if os.environ.get("AMLFLOW_NETGUARD_LOG"):
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import netguard

        netguard.install(os.environ["AMLFLOW_NETGUARD_LOG"])
    finally:
        sys.path.pop(0)
