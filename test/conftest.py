"""Shared pytest set-up: ROS isolation, offline models, small thread counts."""
from __future__ import annotations

import os
import random

# Every test session talks DDS on its own domain and only on this host, so parallel
# runs (developers, CI) never hear each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
