"""The parameters of the policy and sequencer nodes, defined once (see :mod:`legion_policy.params`).

The nodes declare from these; docs/architecture.md's tables are generated from them. The topic
parameters are :data:`legion_policy.params.GRAPH_TOPICS`' (defaults of config/topics.yaml).
"""
from __future__ import annotations

from legion_policy.params import NON_NEGATIVE, POSITIVE, NodeParams, ParamSpec, Range, topics
from legion_policy.policy import DEFAULT_SIMILARITY_THRESHOLD
from legion_policy.sequencer import DEFAULT_K_CONSECUTIVE, DEFAULT_SETTLE_S, DEFAULT_TIMEOUT_S

#: How the policy publishes: one action per valid observation, or one per control period.
PUBLISH_MODES = ("observation", "period")
#: The default of ``agent_path`` (resolved at start from the package's share folder).
SHIPPED_AGENT = "the shipped agent: <share>/agents/default"
#: A cosine similarity.
COSINE = Range(-1.0, 1.0)

POLICY = NodeParams("policy", (
    ParamSpec("agent_path", "string", None, "frozen agent directory to load and validate (launch argument `agent`)",
              computed=SHIPPED_AGENT),
    ParamSpec("similarity_threshold", "double", DEFAULT_SIMILARITY_THRESHOLD,
              "cosine similarity below which a free-form instruction is refused", range=COSINE),
    ParamSpec("publish_on", "string", "observation",
              "'observation': one action per valid observation; 'period': one per control period",
              choices=PUBLISH_MODES),
    ParamSpec("observation_timeout_s", "double", 0.1,
              "publish_on=period: no action once the latest observation is older [s]", range=POSITIVE),
    ParamSpec("initial_task", "string", "", "skill or instruction active at start ('' = idle)"),
    ParamSpec("preload_language_model", "bool", True,
              "load the MiniLM model at start (else on the first free-form instruction)"),
    ParamSpec("torch_threads", "int", 1, "torch intra-op threads for inference", constraints="values < 1 count as 1"),
    ParamSpec("trace_network", "bool", True,
              "run a frozen TorchScript trace when it equals the eager network bit for bit"),
    ParamSpec("diagnostics_period_s", "double", 1.0, "period of the /diagnostics report [s]", range=POSITIVE),
    *topics(observation_topic="in", action_topic="out",
            task_topic="in, from latched publishers and `ros2 topic pub` alike",
            binding_topic="in, and out: the skill's default binding for a task that comes without one"),
    ParamSpec("default_binding_grace_s", "double", 0.5,
              "a task whose skill has no binding on binding_topic within this time gets the skill's default "
              "binding published (an operator's `ros2 topic pub` of a task; a sequencer sends its own binding "
              "first) [s]", constraints="values < 0.001 count as 0.001"),
))

SEQUENCER = NodeParams("sequencer", (
    ParamSpec("agent_path", "string", None, "frozen agent: skills, success predicates, layout (launch argument "
              "`agent`)", computed=SHIPPED_AGENT),
    ParamSpec("sequence_file", "string", "",
              "YAML sequence of steps (a path, or a name under config/ or config/sequences/); empty: run 'task' "
              "as one step (launch argument `sequence`)"),
    ParamSpec("task", "string", "", "skill name or instruction run as a single step when no sequence_file"),
    ParamSpec("report_dir", "string", "", "folder for report.json (empty: no report file)"),
    ParamSpec("k_consecutive", "int", DEFAULT_K_CONSECUTIVE,
              "default consecutive successful observations needed to advance a step",
              constraints=">= 1 (checked per step that uses it)"),
    ParamSpec("timeout_s", "double", DEFAULT_TIMEOUT_S, "default step timeout [s] (node clock)",
              constraints=">= 0.001 (checked per step that uses it)"),
    ParamSpec("settle_s", "double", DEFAULT_SETTLE_S,
              "default time after a step switch during which observations are not judged [s]",
              constraints=">= 0 (checked per step that uses it)"),
    ParamSpec("similarity_threshold", "double", DEFAULT_SIMILARITY_THRESHOLD,
              "cosine similarity below which a step's instruction is refused", range=COSINE),
    ParamSpec("wait_for_observation_s", "double", 60.0,
              "fail if no valid observation (and, with wait_for_policy, no action) arrives within this time [s]",
              range=POSITIVE),
    ParamSpec("exit_on_finish", "bool", True, "end the process when the sequence ends (modes/real.yaml: false)"),
    ParamSpec("exit_delay_s", "double", 0.5,
              "keep spinning this long after the end so the stop messages are delivered [s]", range=NON_NEGATIVE),
    ParamSpec("enable_on_start", "bool", False,
              "publish enable=true at the first step, which starts once the enable topic has a subscriber "
              "(sim2real) (real robot: keep false, enable by hand)"),
    ParamSpec("wait_for_policy", "bool", True,
              "start the first step only once the policy publishes actions (it may load for many seconds after "
              "the observations flow)"),
    ParamSpec("tick_period_s", "double", 0.05, "period of the timeout check [s]", range=POSITIVE),
    ParamSpec("diagnostics_period_s", "double", 0.5, "period of the progress report on /diagnostics [s]",
              range=POSITIVE),
    *topics(observation_topic="in", task_topic="out, latched", binding_topic="out", enable_topic="out, latched",
            action_topic="in, only watched: is the policy up?"),
))
