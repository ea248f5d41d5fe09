"""Wire models for runtime programs (the shapes of IBM's legacy programs API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: ``def main(backend, user_messenger, **kwargs): return 1``, for the OpenAPI description.
_EXAMPLE_SOURCE = "ZGVmIG1haW4oYmFja2VuZCwgdXNlcl9tZXNzZW5nZXIsICoqa3dhcmdzKToKICAgIHJldHVybiAxCg=="


#: The backend requirements the server enforces, and their types. Others are kept and
#: shown (the seed service took free-form requirements) but not enforced.
ENFORCED_BACKEND_REQUIREMENTS: dict[str, type] = {"min_num_qubits": int, "simulator": bool}


class ProgramSpec(BaseModel):
    """What a program takes and gives, each part a JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    backend_requirements: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    return_values: dict[str, Any] | None = None
    interim_results: dict[str, Any] | None = None


#: One requirement of a program on the worker environment, as pip writes it.
Dependency = Annotated[str, Field(min_length=1, max_length=200, examples=["numpy>=1.26"])]
_ENTRY_POINT_DOC = (
    "For a folder program (data is a zip archive): the module that defines main(), "
    "a path inside the folder; default program.py."
)
_DEPENDENCIES_DOC = (
    "Packages the program needs, as pip requirements; each must be installed in the "
    "server's program environment (GET /programs/environment) in a matching version."
)


class ProgramCreate(BaseModel):
    """``POST /programs``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["my-program"])
    data: str = Field(
        description="The program's Python source, base64-encoded (UTF-8).",
        examples=[_EXAMPLE_SOURCE],
    )
    cost: int = Field(gt=0, description="max_execution_time in seconds.", examples=[60])
    description: str = Field(min_length=1, max_length=10_000, examples=["What it does."])
    is_public: bool = False
    spec: ProgramSpec | None = None
    entry_point: str | None = Field(default=None, max_length=200, description=_ENTRY_POINT_DOC)
    dependencies: list[Dependency] | None = Field(
        default=None, max_length=100, description=_DEPENDENCIES_DOC
    )


class ProgramUpdate(BaseModel):
    """``PATCH /programs/{id}``: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    cost: int | None = Field(default=None, gt=0)
    description: str | None = Field(default=None, min_length=1, max_length=10_000)
    spec: ProgramSpec | None = None
    entry_point: str | None = Field(default=None, max_length=200, description=_ENTRY_POINT_DOC)
    dependencies: list[Dependency] | None = Field(
        default=None, max_length=100, description=_DEPENDENCIES_DOC
    )


class ProgramDataUpdate(BaseModel):
    """``PUT /programs/{id}/data`` with a JSON body (a raw base64 body is accepted too)."""

    model_config = ConfigDict(extra="forbid")

    data: str
    entry_point: str | None = Field(default=None, max_length=200, description=_ENTRY_POINT_DOC)


class ProgramOut(BaseModel):
    id: str
    name: str
    description: str
    cost: int
    is_public: bool
    creation_date: datetime
    update_date: datetime
    owner: str
    spec: dict[str, Any]
    data: str | None = Field(
        default=None,
        description="The source (of a folder program: its entry module); sent to the owner only.",
    )
    entry_point: str | None = Field(default=None, description="A folder program's entry module.")
    dependencies: list[str] = Field(default_factory=list, description=_DEPENDENCIES_DOC)
    files: list[str] | None = Field(
        default=None, description="A folder program's files; sent to the owner only."
    )


class PackageOut(BaseModel):
    name: str
    version: str


class ProgramEnvironment(BaseModel):
    """``GET /programs/environment``: what uploaded programs can import."""

    python: str = Field(examples=["3.11.2"])
    packages: list[PackageOut]


class ProgramList(BaseModel):
    programs: list[ProgramOut]
    count: int


class ProgramCreated(BaseModel):
    id: str
