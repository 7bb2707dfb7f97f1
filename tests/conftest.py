"""Every suite may import the integration tests' helpers: ``clients``, ``daemon`` and
``integration_support`` (the security and Redis tests do)."""

import sys
from pathlib import Path

INTEGRATION = str(Path(__file__).resolve().parent / "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)
