"""``python -m kmeansfw``: the command line (``python -m kmeansfw demo`` is the main job)."""

from kmeansfw.cli import main

if __name__ == "__main__":
    main()
