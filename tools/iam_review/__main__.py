"""``python -m iam_review``."""

import sys

from iam_review.main import main

sys.exit(main())
