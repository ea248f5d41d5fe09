"""The environment that points the unmodified ``qiskit-ibm-runtime`` client at a qruntime server.

What each variable does in qiskit-ibm-runtime 0.49 to 0.51 (channel ``ibm_quantum_platform``):
``QISKIT_IBM_URL`` is used as the API root as it is because it contains ``experimental``;
``IAM_URL`` sends the API-key exchange (``{IAM_URL}/identity/token``) to qruntime instead
of IBM Cloud; an instance given as a CRN needs no look-up; ``QISKIT_FUNCTIONS_EXPERIMENTAL``
skips the IBM Cloud instance search that would otherwise run.
"""

from __future__ import annotations

import shlex

__all__ = ["IBM_API_PREFIX", "INSTANCE_CRN", "ibm_environment", "shell_exports"]

#: Where the server mounts IBM's API (``qruntime.server.api.ibm.PREFIX``; a test keeps them equal).
IBM_API_PREFIX = "/experimental/api"
#: The client wants a CRN; qruntime ignores it (access follows from the token).
INSTANCE_CRN = "crn:v1:qruntime:public:quantum-computing:local:a/qruntime::"


def ibm_environment(*, url: str, token: str) -> dict[str, str]:
    """The variables, by name, for the server at ``url`` and the API token ``token``."""
    api = url.rstrip("/") + IBM_API_PREFIX
    return {
        "QISKIT_IBM_CHANNEL": "ibm_quantum_platform",
        "QISKIT_IBM_URL": api,
        "QISKIT_IBM_TOKEN": token,
        "QISKIT_IBM_INSTANCE": INSTANCE_CRN,
        "IAM_URL": api,
        "QISKIT_FUNCTIONS_EXPERIMENTAL": "1",
    }


def shell_exports(environment: dict[str, str]) -> str:
    """``export NAME=value`` lines, quoted for POSIX shells."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())
