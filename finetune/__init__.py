"""The ``finetune`` command-line tool (installed into .venv by ``make install``)."""
