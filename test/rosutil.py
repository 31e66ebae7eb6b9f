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


@contextmanager
def node_with_client(node_class, argv, client_name: str = "client"):
    """A node started with ``argv`` (a ``launcher.node_commands`` command's arguments, as the launch starts it)
    and a client node, both on one executor of a fresh context: yields ``(node, call)`` where
    ``call(srv_type, service, request)`` calls a service and returns its response (asserting it answered)."""
    with ros_context() as (ctx, ex):
        node = node_class(context=ctx, cli_args=list(argv))
        client = rclpy.create_node(client_name, context=ctx)
        try:
            ex.add_node(node)
            ex.add_node(client)

            def call(srv_type, service: str, request):
                cli = client.create_client(srv_type, service)
                assert spin_until(ex, cli.service_is_ready, 10.0), f"{service} not available"
                future = cli.call_async(request)
                assert spin_until(ex, future.done, 10.0), f"{service} did not answer"
                return future.result()

            yield node, call
        finally:
            client.destroy_node()
            node.destroy_node()
