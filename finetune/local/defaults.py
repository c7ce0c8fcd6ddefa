"""Time-scale defaults, kept apart so that the CLI can show them without loading moto."""

from __future__ import annotations

#: ``finetune local``: ten minutes of AWS time take about 0.06 s.
DEFAULT_SCALE = 0.0001
#: ``finetune local-server``: a person uploads with the AWS CLI and watches with describe-execution,
#: so the 60 s settle wait takes 0.6 s and a 10-minute poll 6 s.
SERVER_SCALE = 0.01
