"""The Space: `python app.py` or `gradio app.py`. With nothing configured it serves the models that
`space.yaml` names from the Hub, or, where the Hub cannot be reached, the offline pocket pair (built on
first run, with progress); see space/config.py."""
import sys

from pushback.pocket import ensure_built
from space import build_demo, launch_options, load_config, set_cpu_threads, warm_up

try:
    config = load_config()
except ValueError as e:  # a bad spec or settings file: one line, not a traceback
    sys.exit(f"error: {e}")
print(f"models: baseline {config.baseline.label} · friction {config.friction.label}. {config.why}", flush=True)
if config.uses_pocket:
    ensure_built()
set_cpu_threads(config)
for thread in warm_up(config):  # every model loaded before the page serves its first request
    thread.join()
demo = build_demo(config)

if __name__ == "__main__":
    demo.launch(**launch_options())
