"""Topic rate and age tracking (ROS-free core of the monitor node)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RateTracker:
    """Arrival times of one topic over a sliding window.

    window_s: length of the window the rate is computed over [s].
    """

    window_s: float = 2.0
    count: int = 0
    _stamps: deque = field(default_factory=deque)

    def add(self, t: float) -> None:
        self.count += 1
        self._stamps.append(t)
        while self._stamps and t - self._stamps[0] > self.window_s:
            self._stamps.popleft()

    def rate_hz(self, now: float) -> float:
        """Messages per second over the window ending at ``now`` (0 if fewer than two)."""
        while self._stamps and now - self._stamps[0] > self.window_s:
            self._stamps.popleft()
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def age_s(self, now: float) -> float | None:
        """Seconds since the last message, None if none arrived."""
        return now - self._stamps[-1] if self._stamps else None


def parse_topic_spec(spec: str) -> tuple[str, str, str]:
    """``/topic:pkg/msg/Type`` -> (topic, package, type name); ValueError with the expected form."""
    try:
        topic, type_path = spec.rsplit(":", 1)
        pkg, kind, name = type_path.split("/")
    except ValueError:
        raise ValueError(f"topic spec {spec!r} must look like /topic:pkg/msg/Type") from None
    if not topic.startswith("/") or kind != "msg" or not name:
        raise ValueError(f"topic spec {spec!r} must look like /topic:pkg/msg/Type")
    return topic, pkg, name
