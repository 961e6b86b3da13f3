"""The GatheRing project's own event-bus tests, run against agentbus.

`gathering/events/__init__.py` here is a two-line shim re-exporting
`agentbus`; the test files under `tests/` are vendored unmodified.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
