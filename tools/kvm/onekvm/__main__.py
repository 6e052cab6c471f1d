"""`python -m onekvm`."""

import sys

from onekvm.cli import main

sys.exit(main())
