"""The wire contract: pydantic models shared by the client and the server."""

from qruntime.schemas.auth import LoginRequest, LoginResponse, UserCreate, UserOut
from qruntime.schemas.programs import (
    ProgramCreate,
    ProgramCreated,
    ProgramDataUpdate,
    ProgramList,
    ProgramOut,
    ProgramSpec,
    ProgramUpdate,
)

__all__ = [
    "LoginRequest",
    "LoginResponse",
    "ProgramCreate",
    "ProgramCreated",
    "ProgramDataUpdate",
    "ProgramList",
    "ProgramOut",
    "ProgramSpec",
    "ProgramUpdate",
    "UserCreate",
    "UserOut",
]
