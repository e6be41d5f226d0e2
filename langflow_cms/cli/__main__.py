"""``python -m langflow_cms.cli``: the same as the ``langflow-cms`` command."""

import sys

from langflow_cms.cli import main

sys.exit(main())
