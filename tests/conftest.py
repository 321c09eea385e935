import torch as th

# The networks in the tests are tiny: one thread avoids oversubscribing the 2-core CI machine
th.set_num_threads(1)
