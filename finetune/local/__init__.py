"""Run the real pipeline offline: the synthesized template and the real handlers, on moto.

``finetune local RUN_DIR`` and ``make demo`` use :mod:`finetune.local.runner`; ``finetune
local-server`` serves the same emulation over HTTP (:mod:`finetune.local.server`). Everything
that reaches into moto's internals lives here, against the exact moto version pinned in
requirements-dev.txt.
"""
