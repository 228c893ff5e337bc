"""`python -m scripts.testllm`: run the test LLM server (see `scripts.testllm.cli`)."""

import sys

from scripts.testllm.cli import main

sys.exit(main())
