"""``depthstream`` with WebRTC host candidates restricted to 127.0.0.1 (tests only).

aioice leaves 127.0.0.1 out of its host candidates; inside a loopback-only
network namespace that would leave none, so this wrapper offers exactly it.
"""

import sys

from depthstream.stream.cli import main
from depthstream.web.loopback import use_loopback_candidates

use_loopback_candidates()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
