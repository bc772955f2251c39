"""``python -m depthstream``: the same as the ``depthstream`` command."""

import sys

from depthstream.stream.cli import main

sys.exit(main())
