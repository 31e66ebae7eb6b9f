"""LEGION graph against the real KUKA LBR iiwa.

Expects running: the iiwa_ros2 driver (`ros2 launch iiwa_bringup iiwa.launch.py ...`), a gripper
driver and a perception node publishing the topics of config/topics.yaml. Starts DISABLED:
publish `true` on /legion/enable to allow motion (see README, safety checklist).

    ros2 launch legion_bridge real_robot.launch.py calibration:=/path/cell.yaml sequence:=FILE

The nodes come from legion_bridge.graph (the same definition `legion-launch real` uses).
"""
from legion_bridge.launch_builder import generate_launch_description as _build


def generate_launch_description():
    return _build("real")
