"""``python -m kmeansfw``: the command line (``python -m kmeansfw demo`` is the main job)."""

from kmeansfw.workflow.cli import main

if __name__ == "__main__":
    main()
