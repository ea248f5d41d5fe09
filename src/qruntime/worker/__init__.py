"""What runs inside worker processes: the zygote, the sandbox, the program runner.

Nothing here is imported by the server except the frame protocol; the rest runs
in processes the executor starts (``python -m qruntime.worker.zygote``).
"""

from __future__ import annotations
