"""`python -m gateway.cli`: the `ecg-gateway` command."""

import sys

from gateway.cli import main

sys.exit(main())
