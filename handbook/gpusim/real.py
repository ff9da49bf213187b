"""nvidia-ml-py's own `pynvml`, found past the simulator's shim: the constants, structures and errors the simulated
module copies, and that scenario files are checked against (NVML_ERROR_* names)."""
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent / "shim"

_real = None
_real_lock = threading.Lock()


def real_pynvml():
    """nvidia-ml-py's pynvml: the one already imported, else a private copy loaded past the shim directory."""
    global _real
    with _real_lock:
        if _real is not None:
            return _real
        current = sys.modules.get("pynvml")
        if current is not None and hasattr(current, "_nvmlGetFunctionPointer") and not hasattr(current, "__gpusim__"):
            _real = current
            return _real
        search = [p for p in sys.path if Path(p or ".").resolve() != SHIM_DIR]
        spec = importlib.machinery.PathFinder.find_spec("pynvml", search)
        if spec is None or spec.origin is None:
            raise ImportError("the GPU simulator reuses nvidia-ml-py's pynvml module: pip install nvidia-ml-py")
        name = "_gpusim_real_pynvml"
        private = importlib.util.spec_from_file_location(name, spec.origin)
        module = importlib.util.module_from_spec(private)
        sys.modules[name] = module
        private.loader.exec_module(module)
        for value in vars(module).values():  # tracebacks say pynvml.NVMLError_GpuIsLost, as with the real one
            if isinstance(value, type) and issubclass(value, module.NVMLError):
                value.__module__ = "pynvml"
        _real = module
        return _real
