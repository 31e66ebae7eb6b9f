"""Helpers for tests that talk over real rclpy (own context, spin-until with a timeout)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor


@contextmanager
def ros_context():
    """A fresh rclpy context + executor; everything is shut down afterwards."""
    ctx = Context()
    rclpy.init(context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    try:
        yield ctx, executor
    finally:
        executor.shutdown()
        rclpy.shutdown(context=ctx)


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout_s`` passes; returns the predicate."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step_s)
    return predicate()
