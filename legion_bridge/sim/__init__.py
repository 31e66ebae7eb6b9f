"""The simulated cell: the iiwa + gripper MuJoCo model generated from the URDF, Metaworld v3
scenes with the Sawyer removed, and the ROS-free simulator core of the sim_arm node.

ROS-free: nothing here imports rclpy (the node shell is legion_bridge.nodes.sim_arm_node).
"""
