"""Every suite may import the integration tests' helpers: ``clients``, ``daemon`` and
``integration_support`` (the security and Redis tests do)."""

import sys
from pathlib import Path

for folder in ("integration", "unit"):
    path = str(Path(__file__).resolve().parent / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
