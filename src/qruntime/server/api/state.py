"""What the app holds while it runs; built by `create_app` and its lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from qruntime.backends import Catalogue
from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.services.auth import TokenCache
from qruntime.server.services.programs import BuiltinHeads
from qruntime.server.settings import Settings
from qruntime.server.store.database import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    catalogue: Catalogue
    runtime: JobRuntime
    tokens: TokenCache = field(default_factory=TokenCache)
    builtins: BuiltinHeads = field(default_factory=BuiltinHeads)
