"""``python -m sb3_reinforce.variance``."""

import sys

from sb3_reinforce.variance import main

sys.exit(main())
