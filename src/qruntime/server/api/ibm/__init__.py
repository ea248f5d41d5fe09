"""IBM Qiskit Runtime's REST shapes, so that the unmodified ``qiskit-ibm-runtime`` client works.

Everything is mounted under `PREFIX`: the client uses a service URL as its API root
unchanged only when the URL contains the word ``experimental`` (otherwise it rebuilds
the host name from the instance CRN and drops the port). The IAM token exchange is
served under the same prefix, so ``IAM_URL`` and ``QISKIT_IBM_URL`` are the same URL.
The routes translate shapes and call the same services as qruntime's own API: a job
submitted either way is visible both ways.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from qruntime.server.api.ibm import backends, identity, jobs, sessions, usage
from qruntime.server.api.ibm.shapes import check_service_crn

__all__ = ["PREFIX", "router"]

#: Where the compatible API lives; ``experimental`` keeps the client from rewriting the URL.
PREFIX = "/experimental/api"

router = APIRouter(prefix=PREFIX, tags=["ibm-compat"])
router.include_router(identity.router)
for _area in (backends, jobs, sessions, usage):
    router.include_router(_area.router, dependencies=[Depends(check_service_crn)])
