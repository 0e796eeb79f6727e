"""The Space: `python app.py` or `gradio app.py`. With nothing configured it builds and uses the
offline pocket pair (first run only, with progress); see space/config.py for real models."""
from pushback.pocket import ensure_built
from space import build_demo, launch_options, load_config, set_cpu_threads, warm_up

config = load_config()
if config.uses_pocket:
    ensure_built()
set_cpu_threads(config)
warm_up(config)
demo = build_demo(config)

if __name__ == "__main__":
    demo.launch(**launch_options())
