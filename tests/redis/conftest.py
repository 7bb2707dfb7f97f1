"""The Redis tests reuse the integration tests' clients and daemon starter."""

import sys
from pathlib import Path

INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)
