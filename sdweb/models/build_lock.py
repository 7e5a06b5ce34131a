"""One model build at a time per process. diffusers and accelerate build models under
`accelerate.init_empty_weights()`, which swaps `torch.nn.Module.register_parameter` for the whole process while
it runs: two builds in two threads (two workers, a load beside a ControlNet) can restore each other's swap and
leave every later module on the meta device. Every model build in sdweb holds this lock."""

from __future__ import annotations

import threading

MODEL_BUILD_LOCK = threading.RLock()
