"""sim_arm: the MuJoCo-simulated iiwa + gripper + task objects, speaking the real drivers' topics.

A thin rclpy shell around :class:`legion_bridge.sim.sim_arm.SimArm` (all behaviour lives
there). A simulation thread advances the cell in scaled real time (``real_time_factor``,
1.0 = real time, <= 0 = as fast as possible) and publishes, stamped with simulation time:

* ``/clock`` and ``/joint_states`` (joint_a1..a7 position, velocity, effort) every
  ``joint_state_rate_hz`` (200 Hz, like the FRI driver);
* ``/gripper/joint_states`` (one joint ``gripper_finger_gap``, position = finger gap [m]);
* ``/objects/<name>/pose`` (PoseStamped, frame ``sim_world``) for every tracked object, with
  optional Gaussian noise and a delay (stamp = capture time), like a perception system;
* ``/sim/success`` (std_msgs/String JSON: per-task success from legion_policy.success);
* ``/diagnostics``.

It subscribes to ``/iiwa_arm_controller/joint_trajectory`` (JTC semantics),
``/forward_position_controller/commands`` (Float64MultiArray), ``/gripper/command``
(Float64 in [-1, 1]) and ``/sim/reset`` (String: empty = next instance of the scene, a scene
name, or JSON ``{"scene": ..., "seed": ...}``). Rejected commands are logged with the reason
and counted in the diagnostics; the arm keeps doing what it did.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from legion_bridge.calibration import CALIBRATION_KEYS, Calibration, read_ros_params
from legion_bridge.nodes.bridge_params import ModelOf, joint_names
from legion_bridge.paths import config_path
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_bridge.sim.cell import SCENES
from legion_bridge.sim.video import StateLog, free_camera
from legion_bridge.sim.sim_arm import CommandRejected, SimArm, SimArmConfig
from legion_bridge.sim_arm_params import SIM_ARM
from legion_policy.nodes.parameters import declare_all
from legion_policy.ros_io import OK, STREAM_QOS, WARN, diagnostic_status, run_node

#: Frame of every published object pose (the sim frame).
SIM_FRAME = "sim_world"
#: Seconds of simulation between diagnostics reports.
DIAGNOSTICS_PERIOD_S = 1.0
#: History depth of the high-rate publishers (joint states, clock): a subscriber that lags
#: a few periods behind a faster-than-real-time simulation still gets every message.
HIGH_RATE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: Longest wall-clock sleep of the simulation thread [s] (keeps shutdown responsive).
MAX_SLEEP_S = 0.05


def _stamp(msg_stamp, t: float) -> None:
    """Write ``t`` [s] into a builtin_interfaces/Time (rounded to the nanosecond)."""
    ns = int(round(t * 1e9))
    msg_stamp.sec, msg_stamp.nanosec = divmod(ns, 1_000_000_000)


def _to_sec(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


class SimArmNode(Node):
    """rclpy shell: parameters, topics and the simulation thread around a :class:`SimArm`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim_arm", **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        defaults = read_ros_params(config_path("calibration.yaml"))
        model = ModelOf()
        p = declare_all(self, SIM_ARM, arm_joint_names=model.joint_names,
                        **{k: [float(v) for v in defaults[k]] for k in CALIBRATION_KEYS})
        self.rtf = float(p.real_time_factor)
        js_rate, grip_rate = float(p.joint_state_rate_hz), float(p.gripper_state_rate_hz)
        pose_rate, success_rate = float(p.object_pose_rate_hz), float(p.success_rate_hz)
        self.pos_noise, self.rot_noise = float(p.object_position_noise_std), float(p.object_orientation_noise_std)
        self.pose_delay, self.viewer_on = float(p.object_pose_delay_s), bool(p.viewer)
        self.video_path, self.video_fps = str(p.video_path), float(p.video_fps)
        self.video_camera, self.video_size = str(p.video_camera), [int(v) for v in p.video_size]
        self.topics = topics = p.pick(
            "joint_states_topic", "gripper_state_topic", "gripper_command_topic", "object_pose_prefix",
            "joint_trajectory_topic", "position_command_topic", "sim_success_topic", "sim_reset_topic")
        cal = p.pick(*CALIBRATION_KEYS)
        self._cell_args = (str(p.scene), str(p.robot_model), int(p.seed), cal)
        calibration = Calibration.from_params(cal)

        # rates > 0, noise and delay >= 0: the spec's ranges, held where they are declared
        if self.video_path:
            import os

            folder = os.path.dirname(os.path.abspath(self.video_path))
            if not os.path.isdir(folder):
                raise ValueError(f"video_path {self.video_path!r}: folder {folder!r} does not exist")
        self.sim = SimArm(p.scene, model(p), calibration, int(p.seed),
                          SimArmConfig(acceleration_limit=float(p.acceleration_limit),
                                       velocity_fraction=float(p.velocity_fraction)))
        # the driver profile's joint names on /joint_states and in commands (config/drivers/)
        self.names = joint_names(p, self.sim.robot)
        self._driver_joint_names = list(self.names.driver)
        dt = self.sim.timestep
        self.steps_per_period = int(round(1.0 / (js_rate * dt)))
        if self.steps_per_period < 1 or abs(self.steps_per_period * dt * js_rate - 1.0) > 1e-9:
            raise ValueError(f"joint_state_rate_hz {js_rate} must divide the physics rate {1.0 / dt:.0f} Hz")
        self.period = self.steps_per_period * dt
        self._every = {"gripper": self._periods(grip_rate), "poses": self._periods(pose_rate),
                       "success": self._periods(success_rate),
                       "diagnostics": self._periods(1.0 / DIAGNOSTICS_PERIOD_S)}
        self.rng = np.random.default_rng(int(p.seed))
        self.lock = threading.RLock()

        self.pub_clock = self.create_publisher(Clock, "/clock", HIGH_RATE_QOS)
        self.pub_js = self.create_publisher(JointState, topics["joint_states_topic"], HIGH_RATE_QOS)
        self.pub_grip = self.create_publisher(JointState, topics["gripper_state_topic"], STREAM_QOS)
        self.pub_success = self.create_publisher(String, topics["sim_success_topic"], 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_pose: dict[str, object] = {}
        self._pose_buffer: deque = deque()
        self._ensure_pose_publishers()
        self.create_subscription(JointTrajectory, topics["joint_trajectory_topic"], self._on_trajectory, 10)
        self.create_subscription(Float64MultiArray, topics["position_command_topic"], self._on_positions, 10)
        self.create_subscription(Float64, topics["gripper_command_topic"], self._on_gripper, 10)
        self.create_subscription(String, topics["sim_reset_topic"], self._on_reset, 10)

        self.periods_done = 0
        self._rtf_window = deque(maxlen=200)  # (wall, sim) pairs for the achieved real-time factor
        self._thread = threading.Thread(target=self._run, name="sim_arm", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"sim_arm: scene {self.sim.scene}, seed {p.seed}, robot {self.sim.robot.name}, "
            f"{'as fast as possible' if self.rtf <= 0 else f'real-time factor {self.rtf:g}'}, "
            f"tracked objects {sorted(self.sim.cell.tracked)}")

    def _periods(self, rate_hz: float) -> int:
        return max(1, int(round(1.0 / (rate_hz * self.period))))

    def _ensure_pose_publishers(self) -> None:
        prefix = self.topics["object_pose_prefix"].rstrip("/")
        for name in self.sim.cell.tracked:
            if name not in self.pub_pose:
                self.pub_pose[name] = self.create_publisher(PoseStamped, f"{prefix}/{name}/pose", STREAM_QOS)

    # ------------------------------------------------------------------ commands
    def _rejected(self, what: str, exc: CommandRejected) -> None:
        self.get_logger().warning(f"rejected {what}: {exc}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self.lock:
            try:
                start = _to_sec(msg.header.stamp)
                self.sim.command_trajectory(
                    self.names.to_model(msg.joint_names),
                    [_to_sec(pt.time_from_start) for pt in msg.points],
                    [list(pt.positions) for pt in msg.points],
                    [list(pt.velocities) for pt in msg.points],
                    start_time=start if start > 0 else None)
            except CommandRejected as exc:
                self._rejected("joint trajectory", exc)

    def _on_positions(self, msg: Float64MultiArray) -> None:
        with self.lock:
            try:
                self.sim.command_positions(list(msg.data))
            except CommandRejected as exc:
                self._rejected("position command", exc)

    def _on_gripper(self, msg: Float64) -> None:
        with self.lock:
            try:
                self.sim.command_gripper(msg.data)
            except CommandRejected as exc:
                self._rejected("gripper command", exc)

    def _on_reset(self, msg: String) -> None:
        text = msg.data.strip()
        scene, seed = None, None
        try:
            if text.startswith("{"):
                req = json.loads(text)
                scene, seed = req.get("scene"), req.get("seed")
                seed = None if seed is None else int(seed)
            elif text:
                scene = text
            if scene is not None and scene not in SCENES:
                raise ValueError(f"unknown scene {scene!r}; scenes: {list(SCENES)}")
        except (ValueError, TypeError, AttributeError) as exc:
            self.get_logger().error(f"rejected reset {text!r}: {exc}")
            return
        with self.lock:
            self.sim.reset(scene=scene, seed=seed)
            self._pose_buffer.clear()
            self._ensure_pose_publishers()
        self.get_logger().info(f"reset: scene {self.sim.scene}, instance {self.sim.cell.instance}")

    # ------------------------------------------------------------------ simulation thread
    def _run(self) -> None:
        viewer = renderer = writer = state_log = None
        try:
            if self.viewer_on:
                import mujoco.viewer

                viewer = mujoco.viewer.launch_passive(self.sim.cell.model, self.sim.cell.data)
            if self.video_path.endswith(".npz"):  # log states now, render after the run (video.py)
                state_log = StateLog(*self._cell_args, fps=self.video_fps)
            elif self.video_path:
                renderer, writer = self._open_video()
            recording = writer is not None or state_log is not None
            frame_every = max(1, int(round(1.0 / (self.video_fps * self.period)))) if recording else 0
            wall0, sim0 = time.monotonic(), self.sim.time
            while not self._stop.is_set() and rclpy.ok(context=self.context):
                with self.lock:
                    self.sim.step(self.steps_per_period)
                    self.periods_done += 1
                    self._publish()
                    if writer is not None and self.periods_done % frame_every == 0:
                        self._record(renderer, writer)
                    elif state_log is not None and self.periods_done % frame_every == 0:
                        state_log.append(self.sim.time, self.sim.cell.data.qpos)
                    if viewer is not None:
                        viewer.sync()
                    t_sim = self.sim.time
                now = time.monotonic()
                self._rtf_window.append((now, t_sim))
                if self.rtf > 0:
                    lag = (t_sim - sim0) / self.rtf - (now - wall0)
                    if lag < -0.25:  # cannot keep up: do not try to catch up in a burst
                        wall0, sim0 = now, t_sim
                    elif lag > 0:
                        time.sleep(min(lag, MAX_SLEEP_S))
                else:
                    time.sleep(0)  # let the executor thread take commands
        except Exception as exc:  # a cell without simulation must not look alive: end the process
            if self._stop.is_set() or not rclpy.ok(context=self.context):
                return  # shutting down (Ctrl-C/SIGTERM): a last publish raced the context shutdown
            self.get_logger().error(f"simulation thread stopped: {type(exc).__name__}: {exc}")
            self.exit_status = 1
            rclpy.try_shutdown(context=self.context)
        finally:
            if state_log is not None and state_log.times:
                state_log.save(self.video_path)
                self.get_logger().info(f"state log ({len(state_log.times)} frames) written to {self.video_path}")
            if writer is not None:
                writer.close()
                self.get_logger().info(f"video written to {self.video_path}")
            if renderer is not None:
                renderer.close()
            if viewer is not None:
                viewer.close()

    def _open_video(self):
        import os

        os.environ.setdefault("MUJOCO_GL", "egl")
        import imageio.v2 as imageio
        import mujoco

        w, h = self.video_size
        renderer = mujoco.Renderer(self.sim.cell.model, height=h, width=w)
        writer = imageio.get_writer(self.video_path, fps=self.video_fps)
        return renderer, writer

    def _record(self, renderer, writer) -> None:
        renderer.update_scene(self.sim.cell.data, camera=self._camera())
        writer.append_data(renderer.render())

    def _camera(self):
        """The named scene camera, or (``free``) a view of the workspace from the front left."""
        if self.video_camera != "free":
            try:
                self.sim.cell.model.camera(self.video_camera)
                return self.video_camera
            except KeyError:
                self.get_logger().warning(f"no camera {self.video_camera!r} in the scene: using the free view")
                self.video_camera = "free"
        return free_camera()

    def _publish(self) -> None:
        sim, t, k = self.sim, self.sim.time, self.periods_done
        clock = Clock()
        _stamp(clock.clock, t)
        self.pub_clock.publish(clock)
        js = JointState()
        _stamp(js.header.stamp, t)
        js.name = list(self._driver_joint_names)  # sim.joint_names in the driver's naming
        js.position = sim.joint_positions().tolist()
        js.velocity = sim.joint_velocities().tolist()
        js.effort = sim.joint_efforts().tolist()
        self.pub_js.publish(js)
        if k % self._every["gripper"] == 0:
            g = JointState()
            _stamp(g.header.stamp, t)
            g.name = [GRIPPER_GAP_JOINT]
            g.position = [sim.gripper_gap()]
            self.pub_grip.publish(g)
        if k % self._every["poses"] == 0:
            self._pose_buffer.append((t, sim.object_poses()))
            while self._pose_buffer and self._pose_buffer[0][0] <= t - self.pose_delay + 1e-9:
                t_cap, poses = self._pose_buffer.popleft()
                self._publish_poses(t_cap, poses)
        if k % self._every["success"] == 0:
            s = sim.success()
            self.pub_success.publish(String(data=json.dumps(
                {"scene": sim.scene, "stamp": t, "all": all(v["success"] for v in s.values()), "tasks": s})))
        if k % self._every["diagnostics"] == 0:
            self._publish_diagnostics()

    def _publish_poses(self, t_cap: float, poses: dict) -> None:
        for name, (pos, quat) in poses.items():
            pub = self.pub_pose.get(name)
            if pub is None:
                continue
            pos, quat = np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64)
            if self.pos_noise > 0:
                pos = pos + self.rng.normal(0.0, self.pos_noise, 3)
            if self.rot_noise > 0:
                quat = _perturb(quat, self.rng.normal(0.0, self.rot_noise, 3))
            msg = PoseStamped()
            msg.header.frame_id = SIM_FRAME
            _stamp(msg.header.stamp, t_cap)
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
            (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
             msg.pose.orientation.w) = (float(v) for v in quat)
            pub.publish(msg)

    def achieved_real_time_factor(self) -> float:
        if len(self._rtf_window) < 2:
            return float("nan")
        (w0, s0), (w1, s1) = self._rtf_window[0], self._rtf_window[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 else float("nan")

    def _publish_diagnostics(self) -> None:
        sim = self.sim
        q_des, _ = sim.desired()
        err = float(np.abs(sim.joint_positions() - q_des).max())
        rtf = self.achieved_real_time_factor()
        level, text = OK, f"{sim.scene}: t = {sim.time:.2f} s"
        if self.rtf > 0 and np.isfinite(rtf) and rtf < 0.9 * self.rtf:
            level, text = WARN, f"{text}, running at {rtf:.2f}x instead of {self.rtf:g}x"
        if sim.last_rejection:
            text += f"; last rejected command: {sim.last_rejection}"
        status = diagnostic_status("sim_arm", "sim_arm", level, text, {
            "scene": sim.scene, "sim_time_s": sim.time, "real_time_factor": rtf,
            "target_real_time_factor": self.rtf, "rejected_commands": sim.rejected,
            "last_rejection": sim.last_rejection, "tracking_error_rad": err,
            "gripper_gap_m": sim.gripper_gap()})
        arr = DiagnosticArray()
        _stamp(arr.header.stamp, sim.time)
        arr.status = [status]
        self.pub_diag.publish(arr)

    def destroy_node(self) -> None:
        # also called by rclpy's shutdown on a node whose start was refused half-way
        if hasattr(self, "_stop"):
            self._stop.set()
        if getattr(self, "_thread", None) is not None and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        super().destroy_node()


def _perturb(quat_xyzw: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Compose a quaternion (x, y, z, w) with a small rotation given as a rotation vector."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return quat_xyzw
    ax = rotvec / angle
    s = np.sin(angle / 2)
    dx, dy, dz, dw = ax[0] * s, ax[1] * s, ax[2] * s, np.cos(angle / 2)
    x, y, z, w = quat_xyzw
    out = np.array([dw * x + dx * w + dy * z - dz * y,
                    dw * y - dx * z + dy * w + dz * x,
                    dw * z + dx * y - dy * x + dz * w,
                    dw * w - dx * x - dy * y - dz * z])
    return out / np.linalg.norm(out)


def main(args=None) -> int:
    return run_node(SimArmNode, args, "sim_arm")


if __name__ == "__main__":
    sys.exit(main())
