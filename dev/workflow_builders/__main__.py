"""``python -m workflow_builders [--check]`` (``python3 scripts/dev.py workflows``): see ``write``."""
import sys

from .write import main

sys.exit(main())
