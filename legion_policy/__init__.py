"""legion_policy: the frozen-agent format, the policy and sequencer cores, and their ROS nodes.

Needs torch at run time, never the trainer (legion_training).
"""
