"""Sub-commands of the ``router`` CLI, one module each (see :mod:`router.cli`)."""
