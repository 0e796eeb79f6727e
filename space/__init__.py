"""The Space: baseline and friction model side by side, streaming together."""
from space.config import SpaceConfig, load_config
from space.ui import build_demo, launch_options, warm_up

__all__ = ["SpaceConfig", "build_demo", "launch_options", "load_config", "warm_up"]
