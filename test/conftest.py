"""Shared pytest set-up: ROS isolation, offline models, small thread counts."""
from __future__ import annotations

import os
import random
import signal

# Every test session talks DDS on its own domain and only on this host, so parallel
# runs (developers, CI) never hear each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# A suite started in the background of a non-interactive shell (`make test &`, nohup) inherits SIGINT
# ignored, and so would every process it starts: `ros2 launch` would then never see the Ctrl-C the
# tests send. Ctrl-C is restored for this session, so its children start with the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
