import sys

from recdenoiser.cli.main import main

sys.exit(main())
