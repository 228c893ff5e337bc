import sys

from scripts.localllm.server import main

sys.exit(main())
