"""``python -m sb3_reinforce.zoo``."""

from sb3_reinforce.zoo import main

main()
