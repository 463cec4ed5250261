"""`python -m launcher` = `mlx-launch`."""
import sys

from .cli import main

sys.exit(main())
