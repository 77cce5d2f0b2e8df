from __future__ import annotations

import sys

from strata_client.cli import main

sys.exit(main())
