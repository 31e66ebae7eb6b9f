"""Forward kinematics, Jacobian and gripper-down inverse kinematics of the tcp (ROS-free).

FK and Jacobians are pinocchio's, on the model it read from the URDF (``RobotModel.pin_model``, the
fingers locked); the IK strategy below is the project's own, in numpy. Everything is expressed in the
robot base frame (``link_0``) and vectorised over leading axes: ``q`` may be ``(7,)`` or ``(..., 7)``.

IK (:meth:`Kinematics.ik`) solves for a tcp position with a held orientation (default:
gripper pointing down in the world, :attr:`Kinematics.gripper_down_R`, which depends on the
base mounting given as ``sim_from_base``; :data:`GRIPPER_DOWN_R` for an upright base):

1. seed: the warm start ``q_seed`` (the current joints, in a control loop) or, without
   one, a closed-form elbow-up solution of the iiwa's planar sub-problem (A3 = A5 = 0:
   A1 aims at the wrist centre, A2/A4 from the shoulder-elbow-wrist triangle, A6 points
   the flange down, A7 sets the yaw);
2. refinement: damped least squares on the 6-d pose error with Levenberg-Marquardt
   damping ``lambda^2 = E + lambda_min^2`` (E = half the squared error, Sugihara 2011), so
   steps are Gauss-Newton near the solution and damped far from it or near singularities;
3. the secondary task runs in the (damped) null space of the pose task, at most
   ``max_null_step`` per iteration: raise the elbow towards world up (gradient of the elbow
   height) and stay away from the joint limits (quadratic cost around the middle of each range);
4. every iterate is clipped to the joint limits minus ``limit_margin``.

An entry stops when converged or when its error stalls; one that did not converge from its
warm start is retried from the closed-form seed, whose answer is taken only when it stays
within ``retry_max_jump`` of the warm start (no jumps to the other arm configuration).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from legion_bridge.robot.urdf_model import RobotModel, load_robot_model

#: Jacobians in the base frame's axes, about the frame's own origin (the geometric Jacobian)
_WORLD = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED

#: tcp orientation "gripper pointing down" in the base frame (a half turn about base y): tcp z = -base z,
#: tcp x = -base x, tcp y = base y, so at A1 = 0 the wrist needs A7 = 0 (mid-range), and
#: the fingers (sliding along tcp y) open along the base y axis (sim x with the default
#: base yaw of +90 deg; Metaworld's Sawyer fingers open along sim y, its pads sit at hand y +- 0.047 m).
GRIPPER_DOWN_R = np.diag([-1.0, 1.0, -1.0])

#: "gripper pointing down" in the sim frame: tcp z = -sim z, fingers sliding along sim x
#: (columns: tcp x, tcp y, tcp z). The gripper is symmetric, so the same orientation turned
#: half a turn about tcp z is equally "down"; :func:`gripper_down_R` picks the one that
#: keeps A7 mid-range for the mounting. With the upright default mount (base yaw +90 deg)
#: this is GRIPPER_DOWN_R in the base frame.
GRIPPER_DOWN_R_SIM = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: Half a turn about z.
_RZ_PI = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class IKConfig:
    """Tuning of :meth:`Kinematics.ik` (units: m, rad)."""

    #: converged when the tcp position error is below this [m]
    position_tolerance: float = 1e-4
    #: ... and the orientation error (rotation angle) below this [rad]
    orientation_tolerance: float = 1e-3
    #: iteration budget per solve
    max_iterations: int = 40
    #: give up on an entry whose error has not dropped by ``stall_improvement`` (relative) for this
    #: many iterations (an unreachable target then costs a few iterations, not the whole budget)
    stall_iterations: int = 6
    stall_improvement: float = 1e-2
    #: minimum damping lambda_min [m] (regularises singular configurations)
    min_damping: float = 1e-3
    #: largest joint step per iteration [rad] (max-norm); longer steps are scaled down
    max_step: float = 0.4
    #: distance kept from every joint limit [rad]
    limit_margin: float = 0.01
    #: gain of the elbow-up term in the null space [rad per m of elbow height gradient]
    elbow_up_gain: float = 0.5
    #: gain of the keep-away-from-limits term in the null space (per unit of normalised offset)
    centering_gain: float = 0.05
    #: largest null-space step per iteration [rad] (max-norm): a longer self-motion step would
    #: move the tcp by its second-order term (~ step^2 x arm length) and stall convergence
    max_null_step: float = 0.01
    #: retry entries that fail from their warm start from the closed-form seed
    retry_from_closed_form: bool = True
    #: ... but take the retry's answer only when no joint is farther than this from the warm
    #: start [rad], so that a control loop never gets a jump to another arm configuration
    retry_max_jump: float = 0.5


@dataclass(frozen=True)
class IKResult:
    """Result of :meth:`Kinematics.ik`; arrays have the leading shape of the targets."""

    q: np.ndarray  # (..., 7) joint positions [rad], inside the limits
    success: np.ndarray  # (...) bool: both tolerances met
    position_error: np.ndarray  # (...) [m]
    orientation_error: np.ndarray  # (...) rotation angle [rad]
    iterations: np.ndarray  # (...) iterations used (including a retry)


def rotation_error(R_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) of ``R_target @ R^T`` (..., 3): the rotation taking R to R_target."""
    M = R_target @ np.swapaxes(R, -1, -2)
    w = 0.5 * np.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    s = np.linalg.norm(w, axis=-1)
    c = np.clip(0.5 * (np.trace(M, axis1=-2, axis2=-1) - 1.0), -1.0, 1.0)
    theta = np.arctan2(s, c)
    scale = np.where(s > 1e-12, theta / np.maximum(s, 1e-300), 1.0)
    out = w * scale[..., None]
    # near theta = pi the skew part vanishes: take the axis from the symmetric part
    flip = (s < 1e-6) & (c < 0.0)
    if np.any(flip):
        S = 0.5 * (M[flip] + np.eye(3))  # = a a^T at theta = pi
        idx = np.argmax(np.diagonal(S, axis1=-2, axis2=-1), axis=-1)
        cols = S[np.arange(len(idx)), :, idx]
        axes = cols / np.linalg.norm(cols, axis=-1, keepdims=True)
        out[flip] = np.pi * axes
    return out


class Kinematics:
    """FK, Jacobian and IK of a :class:`RobotModel`'s tcp in the base frame (``link_0``)."""

    def __init__(self, model: RobotModel | str = "iiwa7", config: IKConfig | None = None, *,
                 sim_from_base=None):
        """``sim_from_base``: the base mounting (a calibration Transform or its 3x3 rotation).

        It decides what "gripper down" and "elbow up" mean in the base frame (world down /
        world up seen from the base). None = upright base (base z = world up).
        """
        if isinstance(model, str):
            model = load_robot_model(model)
        self.model = model
        self.config = config or IKConfig()
        self.n = model.n_joints
        self.lower = model.lower.copy()
        self.upper = model.upper.copy()
        self.mid = 0.5 * (self.lower + self.upper)
        self.half_range = 0.5 * (self.upper - self.lower)
        #: names of the frames returned by :meth:`link_poses`, base to tcp
        self.link_names = model.chain_links
        # pinocchio's model of the arm alone: every other joint (the fingers) locked at zero
        full = model.pin_model
        arm = [full.getJointId(n) for n in model.joint_names]
        locked = [j for j in range(1, full.njoints) if j not in arm]
        pm = pin.buildReducedModel(full, locked, pin.neutral(full)) if locked else full.copy()
        if tuple(pm.names[1:]) != tuple(model.joint_names) or pm.nq != self.n:
            raise ValueError(f"{model.name}: the arm joints are not the pinocchio model's {list(pm.names[1:])}")
        self._frames = [pm.getFrameId(n, pin.FrameType.BODY) for n in self.link_names]
        self._tcp = pm.getFrameId(model.tcp_link, pin.FrameType.BODY)
        pd = pm.createData()
        pin.framesForwardKinematics(pm, pd, np.zeros(self.n))
        base = pd.oMf[self._frames[0]]
        if not np.array_equal(base.homogeneous, np.eye(4)):
            # a URDF rooted above link_0 (iiwa_ros2: world -> iiwa_base -> link_0): re-root the model at link_0
            if pm.frames[self._frames[0]].parentJoint != 0:
                raise ValueError(f"{model.name}: {model.base_link} moves with a joint")
            to_base = base.inverse()
            for j in range(1, pm.njoints):
                if pm.parents[j] == 0:
                    pm.jointPlacements[j] = to_base * pm.jointPlacements[j]
            for i, f in enumerate(pm.frames):
                if f.parentJoint == 0:
                    f.placement = to_base * f.placement
                    pm.frames[i] = f
        self._pm = pm
        self._local = threading.local()  # pinocchio's work space (pinocchio.Data), one per thread
        #: index of the elbow joint (A4): its frame origin is the elbow point
        self._elbow = 3 if self.n == 7 else self.n // 2
        self._elbow_joint = self._elbow + 1  # its pinocchio joint index (0 = the universe)
        self._analytic = self._planar_geometry()
        R_mount = np.eye(3) if sim_from_base is None else np.asarray(getattr(sim_from_base, "R", sim_from_base),
                                                                     dtype=np.float64)
        if R_mount.shape != (3, 3) or not np.allclose(R_mount @ R_mount.T, np.eye(3), atol=1e-6):
            raise ValueError("sim_from_base must be a rotation (3x3) or a Transform")
        #: world up (sim +z) expressed in the base frame: the elbow is kept on this side
        self.up_axis = R_mount.T @ np.array([0.0, 0.0, 1.0])
        self._elbow_side = 1.0 if self.up_axis[2] >= 0 else -1.0
        #: default IK orientation: gripper pointing down in the world, in the base frame
        self.gripper_down_R = GRIPPER_DOWN_R if sim_from_base is None else gripper_down_R(self, R_mount)

    # ------------------------------------------------------------------ finger yaw
    def gripper_down_yawed(self, yaw_rad: float) -> np.ndarray:
        """Gripper down with the fingers turned by ``yaw_rad`` about world up (sim +z, counter-clockwise
        seen from above) from :attr:`gripper_down_R` (yaw 0: fingers along sim x), in the base frame.

        The tool axis points down (tcp z = -sim z), so a turn about world up is the opposite turn
        about tcp z: ``gripper_down_R @ Rz(-yaw)``. With the flange pointing down this is A7 alone.
        """
        c, s = np.cos(float(yaw_rad)), np.sin(float(yaw_rad))
        return self.gripper_down_R @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def finger_yaw(self, q) -> float:
        """The fingers' yaw of joints ``q`` [rad] in (-pi, pi]: the inverse of :meth:`gripper_down_yawed`
        (for a tcp not pointing exactly down, the yaw of its projection)."""
        _, R = self.fk(np.asarray(q, dtype=np.float64))
        M = self.gripper_down_R.T @ R  # = Rz(-yaw) when pointing down
        return float(-np.arctan2(M[1, 0], M[0, 0]))

    # ------------------------------------------------------------------ forward kinematics
    def _data(self):
        """This thread's pinocchio.Data of the arm model."""
        pd = getattr(self._local, "data", None)
        if pd is None:
            pd = self._local.data = self._pm.createData()
        return pd

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _forward(self, q: np.ndarray):
        """q (B, n) -> tcp p (B,3), R (B,3,3), Jacobian (B,6,n) and the elbow's position Jacobian (B,3,n)."""
        pm, pd, tcp, e = self._pm, self._data(), self._tcp, self._elbow_joint
        B = q.shape[0]
        p, R = np.empty((B, 3)), np.empty((B, 3, 3))
        J, Je = np.empty((B, 6, self.n)), np.empty((B, 3, self.n))
        for i in range(B):
            pin.computeJointJacobians(pm, pd, q[i])
            M = pin.updateFramePlacement(pm, pd, tcp)
            p[i], R[i] = M.translation, M.rotation
            J[i] = pin.getFrameJacobian(pm, pd, tcp, _WORLD)
            Je[i] = pin.getJointJacobian(pm, pd, e, _WORLD)[:3]
        return p, R, J, Je

    def _as_batch(self, q) -> tuple[np.ndarray, tuple]:
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1:] != (self.n,):
            raise ValueError(f"joint vector must have shape (..., {self.n}), got {q.shape}")
        lead = q.shape[:-1]
        return q.reshape(-1, self.n), lead

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """tcp position (..., 3) [m] and rotation (..., 3, 3) in the base frame."""
        qb, lead = self._as_batch(q)
        pm, pd, tcp = self._pm, self._data(), self._tcp
        B = qb.shape[0]
        p, R = np.empty((B, 3)), np.empty((B, 3, 3))
        for i in range(B):
            pin.forwardKinematics(pm, pd, qb[i])
            M = pin.updateFramePlacement(pm, pd, tcp)
            p[i], R[i] = M.translation, M.rotation
        return p.reshape(lead + (3,)), R.reshape(lead + (3, 3))

    def link_poses(self, q) -> np.ndarray:
        """(..., len(link_names), 4, 4): pose of every chain frame (``link_names``) in the base frame."""
        qb, lead = self._as_batch(q)
        pm, pd = self._pm, self._data()
        B = qb.shape[0]
        out = np.empty((B, len(self.link_names), 4, 4))
        for i in range(B):
            pin.framesForwardKinematics(pm, pd, qb[i])
            for k, f in enumerate(self._frames):
                out[i, k] = pd.oMf[f].homogeneous
        return out.reshape(lead + (len(self.link_names), 4, 4))

    def jacobian(self, q) -> np.ndarray:
        """Geometric Jacobian of the tcp (..., 6, n): rows vx, vy, vz, wx, wy, wz (base frame)."""
        qb, lead = self._as_batch(q)
        pm, pd, tcp = self._pm, self._data(), self._tcp
        J = np.empty((qb.shape[0], 6, self.n))
        for i in range(qb.shape[0]):
            J[i] = pin.computeFrameJacobian(pm, pd, qb[i], tcp, _WORLD)
        return J.reshape(lead + (6, self.n))

    # ------------------------------------------------------------------ closed-form seed
    def _planar_geometry(self):
        """Lengths of the iiwa-type structure, or None when the chain does not have it."""
        q0 = np.zeros((1, self.n))
        p, R, J, _ = self._forward(q0)
        p, R = p[0], R[0]
        ax = J[0, 3:].T  # world axes of the joints (angular columns of the Jacobian)
        T = self.link_poses(q0[0])
        o = T[[self.link_names.index(f"link_{k}") for k in range(1, self.n + 1)], :3, 3]  # joint frame origins
        R7 = T[self.link_names.index(f"link_{self.n}"), :3, :3]  # link_7 frame at the zero pose
        if self.n != 7:
            return None
        z, y = np.array([0, 0, 1.0]), np.array([0, 1.0, 0])
        ok = all(abs(abs(ax[k] @ z) - 1) < 1e-9 for k in (0, 2, 4, 6)) and all(
            abs(abs(ax[k] @ y) - 1) < 1e-9 for k in (1, 3, 5))
        ok &= bool(np.allclose(o[:, :2], 0, atol=1e-9) and np.allclose(p[:2], 0, atol=1e-9))
        ok &= bool(np.allclose(o[1], o[2]) and np.allclose(o[3], o[4]) and np.allclose(o[5], o[6]))
        if not ok:
            return None
        # link_7 frame at zero pose: R7_0, and tcp relative to the wrist centre in link_7
        return dict(
            shoulder=float(o[1, 2]), L1=float(o[3, 2] - o[1, 2]), L2=float(o[5, 2] - o[3, 2]),
            s=np.array([np.sign(ax[k] @ (z if k % 2 == 0 else y)) for k in range(7)]),
            tcp_in_7=R7.T @ (p - o[6]), R_tcp_in_7=R7.T @ R, R7_0=R7,
        )

    def closed_form_seed(self, target_pos, R_target=None) -> np.ndarray:
        """Elbow-up joint vector (..., 7) with A3 = A5 = 0 for tcp targets (..., 3) in the base frame.

        Exact for targets (gripper down or any orientation whose tool axis lies in the arm's
        vertical plane) reachable with A3 = A5 = 0 inside the limits; otherwise a good starting
        point (clipped to the limits). Of the two A1 branches (facing the wrist, or turned by
        half a turn and reaching backwards) the one with the smaller limit violation is taken.
        Falls back to the middle of the ranges for a chain that is not iiwa-shaped.
        """
        t = np.asarray(target_pos, dtype=np.float64)
        lead = t.shape[:-1]
        t = t.reshape(-1, 3)
        B = t.shape[0]
        g = self._analytic
        if g is None:
            return np.broadcast_to(self.mid, lead + (self.n,)).copy()
        Rt = self.gripper_down_R if R_target is None else np.asarray(R_target, dtype=np.float64)
        Rt = np.broadcast_to(Rt, (B, 3, 3))
        R7 = Rt @ g["R_tcp_in_7"].T  # link_7 orientation wanted
        W = t - R7 @ g["tcp_in_7"]  # wrist centre
        az = np.arctan2(W[:, 1], W[:, 0])
        best_q, best_score = None, None
        lim = self.upper - self.config.limit_margin
        for flip in (False, True):
            a1 = np.arctan2(np.sin(az + np.pi), np.cos(az + np.pi)) if flip else az
            q = self._planar(W, R7, a1, -1.0 if flip else 1.0)
            slack = (lim - self.mid) - np.abs(q - self.mid)  # < 0: beyond a limit
            # fewest violation first, then the larger distance to the nearest limit
            score = np.where(np.any(slack < 0, axis=-1), 10.0 - np.sum(np.minimum(slack, 0.0), axis=-1),
                             -np.min(slack, axis=-1))
            if best_q is None:
                best_q, best_score = q, score
            else:
                take = score < best_score
                best_q[take], best_score[take] = q[take], score[take]
        q = self.model.clip(best_q, self.config.limit_margin)
        return q.reshape(lead + (7,))

    def _planar(self, W: np.ndarray, R7: np.ndarray, a1: np.ndarray, side: float) -> np.ndarray:
        """A3 = A5 = 0 solution with A1 = a1; side = +1 wrist in front of the arm plane, -1 behind."""
        g = self._analytic
        sg = g["s"]
        B = W.shape[0]
        r = side * np.hypot(W[:, 0], W[:, 1])
        h = W[:, 2] - g["shoulder"]
        L1, L2 = g["L1"], g["L2"]
        D = np.clip(np.hypot(r, h), abs(L1 - L2) + 1e-6, L1 + L2 - 1e-9)
        phi = np.arctan2(r, h)
        beta = np.arccos(np.clip((L1 * L1 + D * D - L2 * L2) / (2 * L1 * D), -1, 1))
        beta_w = np.arccos(np.clip((L2 * L2 + D * D - L1 * L1) / (2 * L2 * D), -1, 1))
        # elbow on the 'up' side of the shoulder-wrist line (up = world up seen from the base)
        e = np.where(r >= 0, 1.0, -1.0) * self._elbow_side
        t1 = phi - e * beta  # upper-arm tilt from the base z axis, in the arm plane
        t2 = phi + e * beta_w  # forearm tilt
        z7 = R7[:, :, 2]  # wanted direction of link_7's z axis
        c1, s1 = np.cos(a1), np.sin(a1)
        z_plane = c1 * z7[:, 0] + s1 * z7[:, 1]
        t3 = np.arctan2(z_plane, z7[:, 2])
        t3 = np.where(np.abs(t3) > np.pi - 1e-9, np.pi * np.where(r >= 0, 1.0, -1.0), t3)
        q = np.zeros((B, 7))
        q[:, 0] = sg[0] * a1
        q[:, 1] = sg[1] * t1
        q[:, 3] = sg[3] * (t2 - t1)
        q[:, 5] = sg[5] * np.arctan2(np.sin(t3 - t2), np.cos(t3 - t2))
        # A7: the roll that makes link_7 match R7
        _, R_tcp = self.fk(q)
        R7_now = R_tcp @ g["R_tcp_in_7"].T
        M = np.swapaxes(R7_now, -1, -2) @ R7
        q[:, 6] = sg[6] * np.arctan2(M[:, 1, 0], M[:, 0, 0])
        return q

    # ------------------------------------------------------------------ inverse kinematics
    def _secondary(self, q: np.ndarray, J_elbow: np.ndarray) -> np.ndarray:
        """Null-space velocity (B, n): raise the elbow, keep away from the limits.

        ``J_elbow`` (B, 3, n): position Jacobian of the elbow point (the elbow joint's origin), so
        d(up . elbow)/dq = up @ J_elbow, nonzero for the joints before the elbow only."""
        cfg = self.config
        grad = self.up_axis @ J_elbow
        grad[:, self._elbow:] = 0.0
        centre = -(q - self.mid) / (self.half_range ** 2)
        return cfg.elbow_up_gain * grad + cfg.centering_gain * centre

    def _solve(self, t, Rt, q, max_iter):
        cfg = self.config
        B = q.shape[0]
        lo, hi = self.lower + cfg.limit_margin, self.upper - cfg.limit_margin
        iters = np.zeros(B, dtype=np.int64)
        active = np.arange(B)
        pos_err = np.full(B, np.inf)
        rot_err = np.full(B, np.inf)
        eye6 = np.eye(6)
        best = np.full(B, np.inf)  # best combined error so far (m + 0.1 m/rad * rad)
        stall = np.zeros(B, dtype=np.int64)
        for it in range(max_iter + 1):
            qa = q[active]
            p, R, Jm, Je = self._forward(qa)
            ep = t[active] - p
            eo = rotation_error(Rt[active], R)
            pe = np.linalg.norm(ep, axis=-1)
            oe = np.linalg.norm(eo, axis=-1)
            pos_err[active], rot_err[active] = pe, oe
            done = (pe < cfg.position_tolerance) & (oe < cfg.orientation_tolerance)
            err = pe + 0.1 * oe
            improved = err < best[active] * (1.0 - cfg.stall_improvement)
            best[active] = np.minimum(best[active], err)
            stall[active] = np.where(improved, 0, stall[active] + 1)
            done |= stall[active] >= cfg.stall_iterations
            if it == max_iter or np.all(done):
                break
            keep = ~done
            active, qa, Jm, Je = active[keep], qa[keep], Jm[keep], Je[keep]
            ep, eo = ep[keep], eo[keep]
            iters[active] += 1
            JT = np.swapaxes(Jm, -1, -2)  # (b, n, 6)
            e = np.concatenate([ep, eo], axis=-1)
            lam2 = 0.5 * np.sum(e * e, axis=-1) + cfg.min_damping ** 2
            A = Jm @ JT + lam2[:, None, None] * eye6
            z = self._secondary(qa, Je)
            zmax = np.max(np.abs(z), axis=-1)
            z *= np.minimum(1.0, cfg.max_null_step / np.maximum(zmax, 1e-300))[:, None]
            rhs = e - (Jm @ z[..., None])[..., 0]
            y = np.linalg.solve(A, rhs[..., None])[..., 0]
            dq = z + (JT @ y[..., None])[..., 0]
            m = np.max(np.abs(dq), axis=-1)
            dq *= np.minimum(1.0, cfg.max_step / np.maximum(m, 1e-300))[:, None]
            q[active] = np.clip(qa + dq, lo, hi)
        return q, pos_err, rot_err, iters

    def ik(self, target_pos_base, q_seed=None, *, R_target=None,
           max_iterations: int | None = None) -> IKResult:
        """Joint positions putting the tcp at ``target_pos_base`` (..., 3) [m] with orientation ``R_target``.

        ``q_seed`` (..., 7) or (7,) is the warm start (e.g. the measured joints); None uses the
        closed-form elbow-up seed. ``R_target`` is (3, 3) or (..., 3, 3) in the base frame;
        None = :attr:`gripper_down_R` (gripper pointing down in the world for this mounting;
        :data:`GRIPPER_DOWN_R` for an upright base).
        Returns an :class:`IKResult`; ``q`` always lies inside the joint limits (minus the
        configured margin), also when ``success`` is False (then it is the best effort).
        """
        t = np.asarray(target_pos_base, dtype=np.float64)
        if t.shape[-1:] != (3,):
            raise ValueError(f"IK target must have shape (..., 3), got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError("IK target contains NaN or inf")
        lead = t.shape[:-1]
        t = t.reshape(-1, 3)
        B = t.shape[0]
        Rt = self.gripper_down_R if R_target is None else np.asarray(R_target, dtype=np.float64)
        if Rt.shape[-2:] != (3, 3) or not np.all(np.isfinite(Rt)):
            raise ValueError(f"R_target must be finite with shape (..., 3, 3), got {Rt.shape}")
        Rt = np.broadcast_to(Rt, lead + (3, 3)).reshape(B, 3, 3)
        max_iter = self.config.max_iterations if max_iterations is None else int(max_iterations)
        if q_seed is None:
            q0 = self.closed_form_seed(t, Rt)
        else:
            qs = np.asarray(q_seed, dtype=np.float64)
            if qs.shape[-1:] != (self.n,) or not np.all(np.isfinite(qs)):
                raise ValueError(f"q_seed must be finite with shape (..., {self.n}), got {qs.shape}")
            q0 = self.model.clip(np.broadcast_to(qs, lead + (self.n,)).reshape(B, self.n), self.config.limit_margin)
        q, pe, oe, iters = self._solve(t, Rt, q0.copy(), max_iter)
        ok = (pe < self.config.position_tolerance) & (oe < self.config.orientation_tolerance)
        if q_seed is not None and self.config.retry_from_closed_form and not np.all(ok):
            bad = np.flatnonzero(~ok)
            q2, pe2, oe2, it2 = self._solve(t[bad], Rt[bad], self.closed_form_seed(t[bad], Rt[bad]), max_iter)
            near = np.max(np.abs(q2 - q0[bad]), axis=-1) <= self.config.retry_max_jump
            better = near & ((pe2 + oe2 * 0.1) < (pe[bad] + oe[bad] * 0.1))
            sel = bad[better]
            q[sel], pe[sel], oe[sel] = q2[better], pe2[better], oe2[better]
            iters[bad] += it2
            ok = (pe < self.config.position_tolerance) & (oe < self.config.orientation_tolerance)
        return IKResult(q=q.reshape(lead + (self.n,)), success=ok.reshape(lead),
                        position_error=pe.reshape(lead), orientation_error=oe.reshape(lead),
                        iterations=iters.reshape(lead))


def gripper_down_R(kin: Kinematics, sim_from_base) -> np.ndarray:
    """Gripper-down tcp orientation in the base frame for a base mounted with ``sim_from_base``.

    Of the two equivalent orientations (fingers along sim x, turned by 0 or half a turn about
    the tool axis) returns the one whose closed-form solution straight ahead of the base
    needs the smaller |A7|, so the flange roll stays mid-range.
    """
    R_mount = np.asarray(getattr(sim_from_base, "R", sim_from_base), dtype=np.float64)
    cands = [R_mount.T @ GRIPPER_DOWN_R_SIM, R_mount.T @ GRIPPER_DOWN_R_SIM @ _RZ_PI]
    g = kin._analytic
    if g is None:
        return cands[0]
    best, best_a7 = cands[0], np.inf
    reach = 0.6 * (g["L1"] + g["L2"])
    for Rc in cands:
        R7 = Rc @ g["R_tcp_in_7"].T
        W = np.array([reach, 0.0, g["shoulder"]])
        t = W + R7 @ g["tcp_in_7"]
        a7 = abs(float(kin.closed_form_seed(t, Rc)[6]))
        if a7 < best_a7 - 1e-9:
            best, best_a7 = Rc, a7
    return best
