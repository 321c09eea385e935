"""``python -m sb3_reinforce.compare``."""

import sys

from sb3_reinforce.compare import main

sys.exit(main())
