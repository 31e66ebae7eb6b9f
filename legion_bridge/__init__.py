"""legion_bridge: robot model and kinematics, real2sim / sim2real, the MuJoCo-simulated
iiwa, safety, and the one graph definition shared by the launch files and legion-launch."""
