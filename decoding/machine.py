"""The machine a measurement ran on: its hardware and library versions (for a log's metadata and a cost profile).

Ground floor of ``decoding``: imports nothing else of it (torch only inside ``environment``).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    """Hardware and library versions, for the log metadata."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("draftpick", "torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "hardware": {
            "cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": int(torch.get_num_threads()),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "python": sys.version.split()[0],
        },
        "versions": versions,
    }
