"""LEGION graph against the MuJoCo-simulated iiwa (sim_arm publishes the driver's topics and /clock).

    ros2 launch legion_bridge sim_robot.launch.py [agent:=PATH] [sequence:=FILE] [robot_model:=iiwa14] ...

The nodes come from legion_bridge.graph (the same definition `legion-launch sim` uses).
"""
from legion_bridge.launch_builder import generate_launch_description as _build


def generate_launch_description():
    return _build("sim")
