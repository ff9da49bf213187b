"""Stand-in for nvidia-ml-py's pynvml, first on PYTHONPATH for programs started by `python -m handbook.gpusim run`.

Importing it replaces this module with the simulator playing $HANDBOOK_GPUSIM (or with the real pynvml when
that variable is unset).
"""
import sys

from handbook.gpusim import module_for_shim

sys.modules[__name__] = module_for_shim()
