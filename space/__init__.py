"""The Space: baseline and friction model side by side, streaming together."""
from space.config import SpaceConfig, load_config
from space.ui import build_demo, launch_options, set_cpu_threads, warm_up

__all__ = ["SpaceConfig", "build_demo", "launch_options", "load_config", "set_cpu_threads", "warm_up"]
