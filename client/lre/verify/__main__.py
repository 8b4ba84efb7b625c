import sys

from lre.verify.cli import main

sys.exit(main())
