#!/usr/bin/env python3
"""A small pynvml monitor, as health checks and exporters write them: it polls every GPU and
waits for XID events, printing one JSON line per reading or event (t in seconds since start,
mono the monotonic clock).

    pynvml_monitor.py SECONDS

The NVML shim's tests run it on a replayed snapshot (and under the interposer) with faults, and
check that each fault shows at its time. Needs `pip install nvidia-ml-py`.
"""
import ctypes
import json
import os
import sys
import time

import pynvml as nv


def emit(**kw):
    # mono: CLOCK_MONOTONIC (the clock of the library's events, to time faults from its load),
    # taken before a reading, after an event.
    kw.setdefault("mono", time.monotonic())
    print(json.dumps(kw), flush=True)


def reading(h):
    out = {}
    for key, read in [
        ("width", lambda: nv.nvmlDeviceGetCurrPcieLinkWidth(h)),
        ("gen", lambda: nv.nvmlDeviceGetCurrPcieLinkGeneration(h)),
        ("temperature", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
        ("reasons", lambda: nv.nvmlDeviceGetCurrentClocksEventReasons(h)),
        ("used", lambda: nv.nvmlDeviceGetMemoryInfo(h).used),
        ("replays", lambda: nv.nvmlDeviceGetPcieReplayCounter(h)),
        ("ecc_unc", lambda: nv.nvmlDeviceGetTotalEccErrors(
            h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)),
        ("remap", lambda: list(nv.nvmlDeviceGetRemappedRows(h))),
        ("link3", lambda: nv.nvmlDeviceGetNvLinkState(h, 3)),
    ]:
        try:
            out[key] = read()
        except nv.NVMLError as e:
            out[key] = "error %d" % e.value
    try:
        fv = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]
        out["recovery"] = fv.value.uiVal if fv.nvmlReturn == 0 else "error %d" % fv.nvmlReturn
    except nv.NVMLError as e:
        out["recovery"] = "error %d" % e.value
    return out


def main():
    seconds = float(sys.argv[1])
    t0 = time.monotonic()
    nv.nvmlInit()
    emit(t=0.0, pid=os.getpid(), driver=nv.nvmlSystemGetDriverVersion(), count=nv.nvmlDeviceGetCount())
    handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    addr = {ctypes.cast(h, ctypes.c_void_p).value: i for i, h in enumerate(handles)}
    events = nv.nvmlEventSetCreate()
    for h in handles:
        nv.nvmlDeviceRegisterEvents(h, nv.nvmlEventTypeXidCriticalError, events)
    while time.monotonic() - t0 < seconds:
        for i in range(len(handles)):
            mono = time.monotonic()
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
            except nv.NVMLError as e:
                emit(t=mono - t0, mono=mono, gpu=i, lookup="error %d" % e.value)
                continue
            emit(t=mono - t0, mono=mono, gpu=i, **reading(h))
        try:
            data = nv.nvmlEventSetWait_v2(events, 100)
            gpu = addr.get(ctypes.cast(data.device, ctypes.c_void_p).value, -1)
            emit(t=time.monotonic() - t0, xid=data.eventData, event_type=data.eventType, gpu=gpu)
        except nv.NVMLError_Timeout:
            pass
    nv.nvmlEventSetFree(events)
    nv.nvmlShutdown()


main()
