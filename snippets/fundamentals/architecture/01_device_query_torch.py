"""What PyTorch sees: each CUDA device's name, compute capability, SM count, memory and cache sizes."""
import torch


def describe(index: int) -> dict:
    props = torch.cuda.get_device_properties(index)
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_GiB": round(props.total_memory / 2**30, 1),
        # Newer PyTorch releases expose more fields; getattr keeps this working on older ones.
        "L2_cache_MiB": round(getattr(props, "L2_cache_size", 0) / 2**20, 1),
        "warp_size": getattr(props, "warp_size", 32),
        "max_threads_per_SM": getattr(props, "max_threads_per_multi_processor", None),
    }


def main():
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
    if not torch.cuda.is_available():
        print("No CUDA device is visible to PyTorch (CPU-only build, no GPU, or no driver).")
        return
    for index in range(torch.cuda.device_count()):
        print(f"cuda:{index}", describe(index))


if __name__ == "__main__":
    main()
