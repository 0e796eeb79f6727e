import sys

from pushback.cli import main

sys.exit(main())
