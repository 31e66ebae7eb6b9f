"""The frozen agent: one directory, self-describing, validated on load.

Layout of an agent directory (format version :data:`FORMAT_VERSION`, see docs/agent_format.md)::

    manifest.json        format, observation layout, action spec, control period, network config,
                         skills (name, instruction, embedding tensor name, success predicate, binding),
                         provenance (code version, training config, evaluation table)
    weights.safetensors  the DeployedPolicy state dict under "policy.<key>" and one language
                         embedding per skill under "skill_embedding.<name>" (float32, no pickle)
    SHA256SUMS           sha256 of manifest.json and weights.safetensors (``sha256sum -c`` format)

:func:`save_agent` writes it (the trainer calls it); :func:`load_agent` validates
everything and returns a :class:`LoadedAgent`, or raises :class:`AgentFormatError`
whose message is one line naming the problem. This module never imports rclpy or
legion_training; the language model is only imported to embed skills at export.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from legion_policy.networks import DeployedPolicy, NetworkConfig
from legion_policy.observation_layout import (ACTION_SPEC, LAYOUTS, METAWORLD_CONTROL_PERIOD_S, ActionSpec,
                                              ObservationLayout, get_layout)
from legion_policy.success import PREDICATES
from legion_policy.binding import Binding
from legion_policy.tasks import default_binding

FORMAT_NAME = "legion-agent"
#: Version written by this code; :data:`SUPPORTED_FORMAT_VERSIONS` are the ones it reads.
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"
CHECKSUMS_FILE = "SHA256SUMS"
#: Files every agent directory holds (the checksum file covers the first two).
REQUIRED_FILES = (MANIFEST_FILE, WEIGHTS_FILE, CHECKSUMS_FILE)
#: Tensor-name prefixes inside the weights file.
POLICY_PREFIX = "policy."
EMBEDDING_PREFIX = "skill_embedding."
#: The only network class this format version describes.
NETWORK_CLASS = "DeployedPolicy"
#: How far a stored skill embedding's norm may be from 1.
EMBEDDING_NORM_TOLERANCE = 1e-3


class AgentFormatError(Exception):
    """An agent directory does not validate; ``str(exc)`` is one line naming the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(str(reason).split()))


@dataclass(frozen=True)
class SkillSpec:
    """What the trainer hands to :func:`save_agent` for one skill.

    name: skill (task) name, e.g. ``push-v3``. instruction: its instruction text.
    embedding: its language embedding (``embedding_dim`` floats); None = embed ``instruction``
    with :func:`legion_policy.language.embed`. success_predicate: task name of the predicate in
    :data:`legion_policy.success.PREDICATES` (default: ``name`` when known, else none).
    binding: object binding (:func:`legion_policy.tasks.default_binding` when None).
    """

    name: str
    instruction: str | None = None
    embedding: np.ndarray | None = None
    success_predicate: str | None = "auto"
    binding: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Skill:
    """A skill of a loaded agent."""

    name: str
    instruction: str
    embedding: np.ndarray          # float32 (embedding_dim,), unit norm
    success_predicate: str | None  # key of legion_policy.success.PREDICATES
    binding: Binding


@dataclass
class LoadedAgent:
    """A validated agent, ready to run: the policy is in eval mode on the CPU."""

    path: Path
    manifest: dict
    layout: ObservationLayout
    action_spec: ActionSpec
    control_period_s: float
    network_config: NetworkConfig
    policy: DeployedPolicy
    skills: list[Skill]
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def skill_names(self) -> list[str]:
        return [s.name for s in self.skills]

    @property
    def format_version(self) -> int:
        return int(self.manifest["format_version"])

    @property
    def provenance(self) -> dict:
        return self.manifest.get("provenance", {})

    def skill(self, name: str) -> Skill:
        for s in self.skills:
            if s.name == name:
                return s
        raise KeyError(f"agent has no skill {name!r}; skills: {self.skill_names}")

    def embedding_matrix(self) -> np.ndarray:
        """(n_skills, embedding_dim) float32, rows in :attr:`skills` order."""
        return np.stack([s.embedding for s in self.skills])


# --- helpers -------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """``git describe --always --dirty`` of this source tree, or the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=here,
                             capture_output=True, text=True, timeout=5, check=True)
        return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        try:
            from importlib.metadata import version  # noqa: PLC0415
            return f"legion_bridge=={version('legion_bridge')}"
        except Exception:  # noqa: BLE001
            return "unknown"


def _json_safe(obj: Any) -> Any:
    """Plain JSON types (numpy scalars/arrays, tuples, paths become numbers, lists, strings)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


# --- writing -------------------------------------------------------------------------------


def save_agent(path: str | os.PathLike, policy: DeployedPolicy, layout: ObservationLayout | str,
               skills: Sequence[SkillSpec], *, control_period_s: float = METAWORLD_CONTROL_PERIOD_S,
               training_config: Mapping[str, Any] | None = None,
               evaluation: Mapping[str, Any] | None = None, notes: str = "",
               overwrite: bool = False) -> Path:
    """Write a frozen agent directory at ``path`` and return it.

    ``policy``: the trained networks (its ``cfg`` is stored). ``layout``: the observation
    layout it was trained on. ``skills``: one :class:`SkillSpec` per skill. ``evaluation``:
    the evaluation table, e.g. ``{"push-v3": {"success_rate": 0.9, "episodes": 50}}``.
    The directory is written next to ``path`` and renamed into place, and read back with
    :func:`load_agent` before the rename, so a written agent always validates.
    """
    from legion_policy.language import MODEL_NAME, default_instruction, embed  # noqa: PLC0415

    layout = get_layout(layout) if isinstance(layout, str) else layout
    cfg = policy.cfg
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    if not skills:
        raise ValueError("an agent needs at least one skill")
    if len({s.name for s in skills}) != len(skills):
        raise ValueError(f"duplicate skill names in {[s.name for s in skills]}")

    tensors: dict[str, torch.Tensor] = {}
    for key, value in policy.state_dict().items():
        tensors[POLICY_PREFIX + key] = value.detach().to(torch.float32).contiguous().clone()
    skill_entries = []
    for spec in skills:
        instruction = spec.instruction or default_instruction(spec.name)
        emb = spec.embedding if spec.embedding is not None else embed(instruction)[0]
        emb = np.asarray(emb, dtype=np.float32).reshape(-1)
        if emb.size != cfg.embedding_dim:
            raise ValueError(f"skill {spec.name!r}: embedding has {emb.size} values, "
                             f"network expects {cfg.embedding_dim}")
        tensors[EMBEDDING_PREFIX + spec.name] = torch.from_numpy(emb.copy())
        pred = spec.success_predicate
        if pred == "auto":
            pred = spec.name if spec.name in PREDICATES else None
        if pred is not None and pred not in PREDICATES:
            raise ValueError(f"skill {spec.name!r}: unknown success predicate {pred!r}")
        binding = (Binding.parse(spec.binding, f"skill {spec.name!r} binding") if spec.binding is not None
                   else default_binding(spec.name)).to_dict()
        skill_entries.append({"name": spec.name, "instruction": instruction,
                              "embedding": EMBEDDING_PREFIX + spec.name,
                              "success_predicate": PREDICATES[pred].to_dict() if pred else None,
                              "binding": binding})

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "observation_layout": layout.to_dict(),
        "action_spec": ACTION_SPEC.to_dict(),
        "control_period_s": float(control_period_s),
        "network": {"class": NETWORK_CLASS, "config": cfg.to_dict(), "weights_prefix": POLICY_PREFIX,
                    "deterministic_action": "a = tanh(actor_mean(s, mu(s, e)))"},
        "language_model": {"name": MODEL_NAME, "embedding_dim": cfg.embedding_dim},
        "skills": skill_entries,
        "files": {"weights": WEIGHTS_FILE, "checksums": CHECKSUMS_FILE},
        "provenance": {"code_version": code_version(),
                       "training_config": _json_safe(dict(training_config or {})),
                       "evaluation": _json_safe(dict(evaluation or {})),
                       "notes": notes},
    }

    from safetensors.torch import save_file  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_NAME,
                                                              "format_version": str(FORMAT_VERSION)})
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        write_checksums(tmp)
        load_agent(tmp)  # never leave an artifact that does not validate
        _make_readable(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _make_readable(path: Path) -> None:
    """mkdtemp/safetensors create owner-only modes: give the directory the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)
    for f in path.iterdir():
        f.chmod(0o666 & ~umask)


def write_checksums(path: str | os.PathLike) -> dict[str, str]:
    """(Re)write SHA256SUMS for the manifest and the weights of the agent at ``path``."""
    path = Path(path)
    sums = {name: sha256_file(path / name) for name in (MANIFEST_FILE, WEIGHTS_FILE)}
    (path / CHECKSUMS_FILE).write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return sums


def init_random_agent(path: str | os.PathLike, skills: Sequence[str], layout: str = "metaworld39",
                      seed: int = 0, network_config: NetworkConfig | None = None,
                      overwrite: bool = False) -> Path:
    """Development export: a randomly initialised DeployedPolicy with the deployed architecture.

    Same format as a trained agent (so nodes and tests run against a real artifact before
    training exists); its provenance says it is untrained.
    """
    from legion_policy.language import EMBEDDING_DIM  # noqa: PLC0415

    lay = get_layout(layout)
    cfg = network_config or NetworkConfig(obs_dim=lay.size, embedding_dim=EMBEDDING_DIM)
    torch.manual_seed(seed)
    policy = DeployedPolicy(cfg).eval()
    return save_agent(path, policy, lay, [SkillSpec(name=s) for s in skills],
                      training_config={"kind": "random-init", "seed": seed, "trained": False},
                      evaluation={}, notes="randomly initialised development agent: not trained",
                      overwrite=overwrite)


# --- reading and validating -----------------------------------------------------------------


def _read_checksums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for i, line in enumerate((path / CHECKSUMS_FILE).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
            raise AgentFormatError(f"checksum mismatch: {CHECKSUMS_FILE} line {i} is not '<sha256>  <file>'")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _check_files(path: Path) -> dict[str, str]:
    if not path.exists():
        raise AgentFormatError(f"missing file: agent directory {path} does not exist")
    if not path.is_dir():
        raise AgentFormatError(f"missing file: {path} is not an agent directory")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise AgentFormatError(f"missing file: {name} in {path}")
    sums = _read_checksums(path)
    for name in (MANIFEST_FILE, WEIGHTS_FILE):
        if name not in sums:
            raise AgentFormatError(f"checksum mismatch: {CHECKSUMS_FILE} has no entry for {name}")
    for name, expected in sums.items():
        target = path / name
        if not target.is_file():
            raise AgentFormatError(f"missing file: {name} (listed in {CHECKSUMS_FILE})")
        actual = sha256_file(target)
        if actual != expected:
            raise AgentFormatError(f"checksum mismatch: {name} has sha256 {actual[:12]}..., "
                                   f"{CHECKSUMS_FILE} says {expected[:12]}...")
    return sums


def _require(d: Mapping, key: str, where: str = MANIFEST_FILE) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise AgentFormatError(f"invalid manifest: {where} has no {key!r}")
    return d[key]


def _load_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AgentFormatError(f"invalid manifest: {MANIFEST_FILE} is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise AgentFormatError(f"invalid manifest: {MANIFEST_FILE} is not a JSON object")
    fmt = manifest.get("format")
    if fmt != FORMAT_NAME:
        raise AgentFormatError(f"unknown format: {fmt!r} (expected {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise AgentFormatError(f"unknown format version {version!r} (this code reads {list(SUPPORTED_FORMAT_VERSIONS)})")
    return manifest


def _load_layout_and_shapes(manifest: dict) -> tuple[ObservationLayout, ActionSpec, NetworkConfig, float]:
    lay_d = _require(manifest, "observation_layout")
    name = lay_d.get("name") if isinstance(lay_d, Mapping) else None
    if name not in LAYOUTS:
        raise AgentFormatError(f"layout mismatch: unknown observation layout {name!r} (known: {sorted(LAYOUTS)})")
    try:
        ObservationLayout.from_dict(lay_d)  # raises unless it equals this code's definition
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentFormatError(f"layout mismatch: {str(exc).strip(chr(39))}") from None
    layout = get_layout(name)
    try:
        action_spec = ActionSpec.from_dict(_require(manifest, "action_spec"))
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentFormatError(f"invalid manifest: action_spec ({exc})") from None
    if action_spec != ACTION_SPEC:
        raise AgentFormatError(f"shape mismatch: action spec {action_spec.to_dict()} != this code's "
                               f"{ACTION_SPEC.to_dict()}")
    net = _require(manifest, "network")
    if _require(net, "class", "network") != NETWORK_CLASS:
        raise AgentFormatError(f"invalid manifest: network class {net['class']!r} (expected {NETWORK_CLASS!r})")
    try:
        cfg = NetworkConfig.from_dict(_require(net, "config", "network"))
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentFormatError(f"invalid manifest: network config ({exc})") from None
    if cfg.obs_dim != layout.size:
        raise AgentFormatError(f"shape mismatch: network obs_dim {cfg.obs_dim} != layout "
                               f"{layout.name!r} size {layout.size}")
    if cfg.action_dim != action_spec.size:
        raise AgentFormatError(f"shape mismatch: network action_dim {cfg.action_dim} != action spec "
                               f"size {action_spec.size}")
    period = _require(manifest, "control_period_s")
    if not isinstance(period, (int, float)) or not (0 < float(period) < 10):
        raise AgentFormatError(f"invalid manifest: control_period_s {period!r} is not a period in seconds")
    return layout, action_spec, cfg, float(period)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415
    try:
        return load_file(str(path / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AgentFormatError(f"weights do not load: {WEIGHTS_FILE} is not a valid safetensors file "
                               f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _build_policy(cfg: NetworkConfig, tensors: Mapping[str, torch.Tensor]) -> DeployedPolicy:
    policy = DeployedPolicy(cfg)
    expected = policy.state_dict()
    stored = {k[len(POLICY_PREFIX):]: v for k, v in tensors.items() if k.startswith(POLICY_PREFIX)}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise AgentFormatError(f"weights do not match the declared architecture: {'; '.join(parts)}")
    for key, ref in expected.items():
        t = stored[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise AgentFormatError(f"weights do not match the declared architecture: {key} has shape "
                                   f"{tuple(t.shape)}, network config needs {tuple(ref.shape)}")
        if t.dtype != torch.float32:
            raise AgentFormatError(f"weights do not match the declared architecture: {key} is {t.dtype}, "
                                   "expected float32")
        if not torch.isfinite(t).all():
            raise AgentFormatError(f"weights do not match the declared architecture: {key} has NaN or inf")
    policy.load_state_dict(stored, strict=True)
    return policy.eval()


def _load_skills(manifest: dict, layout: ObservationLayout, cfg: NetworkConfig,
                 tensors: Mapping[str, torch.Tensor]) -> list[Skill]:
    entries = _require(manifest, "skills")
    if not isinstance(entries, list) or not entries:
        raise AgentFormatError("invalid manifest: 'skills' must be a non-empty list")
    skills, names = [], set()
    for i, e in enumerate(entries):
        name = _require(e, "name", f"skills[{i}]")
        if not isinstance(name, str) or not name or name in names:
            raise AgentFormatError(f"invalid manifest: skills[{i}] name {name!r} is empty or duplicate")
        names.add(name)
        instruction = _require(e, "instruction", f"skill {name!r}")
        if not isinstance(instruction, str) or not instruction.strip():
            raise AgentFormatError(f"invalid manifest: skill {name!r} has no instruction text")
        key = _require(e, "embedding", f"skill {name!r}")
        if key not in tensors:
            raise AgentFormatError(f"weights do not match the declared architecture: embedding {key!r} of "
                                   f"skill {name!r} is not in {WEIGHTS_FILE}")
        emb = tensors[key]
        if tuple(emb.shape) != (cfg.embedding_dim,) or emb.dtype != torch.float32:
            raise AgentFormatError(f"shape mismatch: embedding of skill {name!r} has shape {tuple(emb.shape)} "
                                   f"{emb.dtype}, network expects ({cfg.embedding_dim},) float32")
        emb_np = emb.numpy().copy()
        norm = float(np.linalg.norm(emb_np))
        if not math.isfinite(norm) or abs(norm - 1.0) > EMBEDDING_NORM_TOLERANCE:
            raise AgentFormatError(f"invalid manifest: embedding of skill {name!r} has norm {norm:.4g}, expected 1")
        pred = e.get("success_predicate")
        task = None
        if pred is not None:
            task = pred.get("task") if isinstance(pred, Mapping) else pred
            if task not in PREDICATES:
                raise AgentFormatError(f"invalid manifest: skill {name!r} has unknown success predicate {task!r}")
            try:
                PREDICATES[task].check_layout(layout)
            except ValueError as exc:
                raise AgentFormatError(f"layout mismatch: {exc}") from None
        try:
            binding = Binding.parse(e.get("binding", {}), f"skill {name!r} binding")
        except ValueError as exc:
            raise AgentFormatError(f"invalid manifest: {exc}") from None
        skills.append(Skill(name, instruction, emb_np, task, binding))
    return skills


def read_agent_layout(path: str | os.PathLike) -> ObservationLayout:
    """The observation layout a frozen agent expects, from its manifest (checksums verified,
    weights not loaded): real2sim emits exactly this layout."""
    p = Path(path)
    if not (p / MANIFEST_FILE).is_file():
        raise AgentFormatError(f"missing file: {p / MANIFEST_FILE}")
    _check_files(p)
    return _load_layout_and_shapes(_load_manifest(p))[0]


def load_agent(path: str | os.PathLike) -> LoadedAgent:
    """Validate and load the agent at ``path``; :class:`AgentFormatError` (one line) if it is not valid.

    Checks, in order: files present, checksums, manifest format + version, layout and
    shapes (network vs layout vs action spec), weights vs the declared architecture,
    skills (embeddings, predicates vs layout, bindings).
    """
    path = Path(path)
    sums = _check_files(path)
    manifest = _load_manifest(path)
    layout, action_spec, cfg, period = _load_layout_and_shapes(manifest)
    tensors = _load_tensors(path)
    known = {k for k in tensors if k.startswith(POLICY_PREFIX) or k.startswith(EMBEDDING_PREFIX)}
    stray = sorted(set(tensors) - known)
    if stray:
        raise AgentFormatError(f"weights do not match the declared architecture: unexpected tensors {stray[:3]}")
    policy = _build_policy(cfg, tensors)
    skills = _load_skills(manifest, layout, cfg, tensors)
    return LoadedAgent(path=path, manifest=manifest, layout=layout, action_spec=action_spec,
                       control_period_s=period, network_config=cfg, policy=policy, skills=skills,
                       checksums=sums)


def validate_agent(path: str | os.PathLike) -> str | None:
    """None if the agent at ``path`` validates, else the one-line reason."""
    try:
        load_agent(path)
    except AgentFormatError as exc:
        return str(exc)
    return None


def describe_agent(agent: LoadedAgent) -> str:
    """Human-readable summary: files, layout, network, skills, provenance, evaluation table."""
    m = agent.manifest
    cfg = agent.network_config
    n_params = sum(p.numel() for p in agent.policy.parameters())
    sizes = {name: (agent.path / name).stat().st_size for name in REQUIRED_FILES}
    lines = [f"agent {agent.path}",
             f"  format            {m['format']} v{m['format_version']}  (created {m.get('created_utc', '?')})",
             "  files             " + ", ".join(f"{n} {s / 1024:.1f} KiB" for n, s in sizes.items()),
             f"  observation       {agent.layout.name} ({agent.layout.size}): {', '.join(agent.layout.field_names)}",
             f"  action            {', '.join(agent.action_spec.names)} in [{agent.action_spec.low}, "
             f"{agent.action_spec.high}], position scale {agent.action_spec.position_scale} m/step",
             f"  control period    {agent.control_period_s * 1000:.2f} ms",
             f"  network           {NETWORK_CLASS}: encoder {list(cfg.encoder_hidden)}, actor "
             f"{list(cfg.actor_hidden)}, latent {cfg.latent_dim}, embedding {cfg.embedding_dim}, "
             f"{n_params:,} parameters",
             f"  language model    {m.get('language_model', {}).get('name', '?')}",
             f"  skills ({len(agent.skills)}):"]
    for s in agent.skills:
        pred = f"{s.success_predicate} (<= {PREDICATES[s.success_predicate].threshold} m)" \
            if s.success_predicate else "none"
        lines.append(f"    {s.name:<26} \"{s.instruction}\"  success: {pred}  binding: {s.binding.to_json()}")
    prov = agent.provenance
    lines.append(f"  code version      {prov.get('code_version', '?')}")
    tc = prov.get("training_config", {})
    lines.append(f"  training config   {json.dumps(tc, sort_keys=True)[:200] if tc else 'none'}")
    if prov.get("notes"):
        lines.append(f"  notes             {prov['notes']}")
    ev = prov.get("evaluation", {})
    if not ev:
        lines.append("  evaluation        none")
    else:
        lines.append("  evaluation:")
        cols = sorted({k for row in ev.values() if isinstance(row, Mapping) for k in row})
        lines.append("    " + f"{'skill':<26}" + "".join(f"{c:>16}" for c in cols))
        for skill, row in ev.items():
            row = row if isinstance(row, Mapping) else {"value": row}
            cells = "".join(f"{_cell(row.get(c)):>16}" for c in cols)
            lines.append(f"    {skill:<26}{cells}")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
