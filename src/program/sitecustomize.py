# gpu-doctor leak-check (docs/memory.md): put first on PYTHONPATH, so Python imports it at
# start-up. At interpreter exit it notes what the CUDA frameworks' caching allocators hold and
# then releases their caches: the shim sees which device memory was only cached (freed now) and
# which the program still referenced (still allocated). It does nothing unless the program
# imported torch, cupy or jax, and it chains to the sitecustomize it shadows.
import os as _os
import sys as _sys


def _gpu_doctor_pools():
    path = _os.environ.get("GPU_DOCTOR_SHIM_EVENTS")
    if not path:
        return
    import json
    import threading
    import time

    def emit(**fields):
        line = {
            "ev": "pool",
            "pid": _os.getpid(),
            "tid": threading.get_native_id(),
            "t_us": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
        }
        line.update({k: v for k, v in fields.items() if v is not None})
        try:
            # No O_CREAT: without gpu-doctor's file there is no reader.
            fd = _os.open(path, _os.O_WRONLY | _os.O_APPEND)
            try:
                _os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                _os.close(fd)
        except OSError:
            pass

    torch = _sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            # Only the devices the program used: touching another would create its context.
            devices = [d for d in range(torch.cuda.device_count())
                       if torch.cuda.memory_reserved(d) > 0]

            def note(phase):
                for d in devices:
                    emit(framework="torch", phase=phase, dev=d,
                         in_use=torch.cuda.memory_allocated(d),
                         reserved=torch.cuda.memory_reserved(d))

            note("before")
            for d in devices:
                torch.cuda.synchronize(d)
            torch.cuda.empty_cache()
            note("after")
    except Exception:
        pass
    cupy = _sys.modules.get("cupy")
    try:
        pool = cupy.get_default_memory_pool() if cupy is not None else None
        # A pool that never allocated: the program may not have used CUDA at all.
        if pool is not None and pool.total_bytes() > 0:
            dev = cupy.cuda.runtime.getDevice()
            emit(framework="cupy", phase="before", dev=dev,
                 in_use=pool.used_bytes(), reserved=pool.total_bytes())
            cupy.cuda.runtime.deviceSynchronize()
            pool.free_all_blocks()
            emit(framework="cupy", phase="after", dev=dev,
                 in_use=pool.used_bytes(), reserved=pool.total_bytes())
    except Exception:
        pass
    jax = _sys.modules.get("jax")
    try:
        if jax is not None:
            from jax._src import xla_bridge
        if jax is not None and xla_bridge.backends_are_initialized():
            # XLA's allocator cannot hand its pool back: what it holds is only noted.
            for d in jax.local_devices():
                s = d.memory_stats() or {}
                emit(framework="jax", phase="before", dev=d.id,
                     in_use=s.get("bytes_in_use"),
                     reserved=s.get("pool_bytes", s.get("bytes_reserved")))
    except Exception:
        pass


def _gpu_doctor_chain():
    here = _os.path.dirname(_os.path.abspath(__file__))
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != here]
    ours = _sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the one this file shadows, if any)
    except ImportError as e:
        if e.name != "sitecustomize":
            raise
        if ours is not None:
            _sys.modules["sitecustomize"] = ours


import atexit as _atexit

# Registered first, so it runs last: after the program's own exit handlers.
_atexit.register(_gpu_doctor_pools)
_gpu_doctor_chain()
