#!/usr/bin/env python3
"""Compares gpu-doctor's info/topo reports with nvidia-smi on the same machine, field by field.
Usage: compare_smi.py INFO.json TOPO.json NVIDIA_SMI_TOPO_M.txt [NVIDIA_SMI_Q.txt]
(exits 1 on any difference). `nvidia-smi --query-gpu` gives most fields; `nvidia-smi -q` the
row-remapping, recovery-action, power-limit and clock-event-reason sections it lacks."""
import json, subprocess, sys

info = json.load(open(sys.argv[1]))
topo = json.load(open(sys.argv[2]))
smi_topo = open(sys.argv[3]).read()
bad = []

def same(what, ours, theirs):
    ok = str(ours).strip().lower() == str(theirs).strip().lower()
    print(f"{'ok  ' if ok else 'DIFF'} {what}: gpu-doctor={ours!r} nvidia-smi={theirs!r}")
    if not ok:
        bad.append(what)

fields = ["index", "uuid", "name", "pci.bus_id", "memory.total", "compute_cap", "persistence_mode",
          "ecc.mode.current", "mig.mode.current", "pstate", "pcie.link.gen.current", "pcie.link.gen.max",
          "pcie.link.width.current", "pcie.link.width.max", "vbios_version", "driver_version",
          "ecc.errors.uncorrected.volatile.total", "ecc.errors.uncorrected.aggregate.total",
          "retired_pages.pending", "compute_mode"]
out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                     capture_output=True, text=True, check=True).stdout
rows = [dict(zip(fields, [c.strip() for c in line.split(",")])) for line in out.strip().splitlines()]
gpus = {g["index"]: g for g in info["data"]["gpus"]}
tgpus = {g["index"]: g for g in topo["data"]["facts"]["gpus"]}
onoff = lambda b: "N/A" if b is None else ("Enabled" if b else "Disabled")
yesno = lambda b: "[N/A]" if b is None else ("Yes" if b else "No")
same("driver_version", info["host"]["driver_version"], rows[0]["driver_version"])
for r in rows:
    i = int(r["index"]); g = gpus[i]; t = tgpus[i]
    same(f"gpu{i}.uuid", g["uuid"], r["uuid"])
    same(f"gpu{i}.name", g["name"], r["name"])
    same(f"gpu{i}.pci_bus_id", g["pci_bus_id"], r["pci.bus_id"])
    same(f"gpu{i}.memory_total_mib", g["memory_total_bytes"] >> 20, r["memory.total"])
    same(f"gpu{i}.compute_capability", g["compute_capability"], r["compute_cap"])
    same(f"gpu{i}.persistence_mode", onoff(g["persistence_mode"]), r["persistence_mode"])
    same(f"gpu{i}.ecc_mode", onoff(g["ecc_mode_current"]), r["ecc.mode.current"])
    same(f"gpu{i}.mig_mode", onoff(g["mig_mode_current"]) if g["mig_mode_current"] is not None else "[N/A]", r["mig.mode.current"])
    same(f"gpu{i}.pstate", g["pstate"], r["pstate"])
    same(f"gpu{i}.vbios", g["vbios_version"], r["vbios_version"])
    same(f"gpu{i}.ecc_uncorrected_volatile", g["ecc_volatile_uncorrected"], r["ecc.errors.uncorrected.volatile.total"])
    same(f"gpu{i}.ecc_uncorrected_aggregate", g["ecc_aggregate_uncorrected"], r["ecc.errors.uncorrected.aggregate.total"])
    same(f"gpu{i}.retired_pages_pending", yesno(g["retired_pages_pending"]), r["retired_pages.pending"])
    same(f"gpu{i}.compute_mode", g["compute_mode"], r["compute_mode"].replace("_", ""))
    p = t["pcie"]
    same(f"gpu{i}.pcie_gen_current", p["current_gen"], r["pcie.link.gen.current"])
    same(f"gpu{i}.pcie_gen_max", p["max_gen"], r["pcie.link.gen.max"])
    same(f"gpu{i}.pcie_width_current", p["current_width"], r["pcie.link.width.current"])
    same(f"gpu{i}.pcie_width_max", p["max_width"], r["pcie.link.width.max"])

# nvidia-smi topo -m: the GPU rows of the matrix, CPU affinity and NUMA affinity.
lines = [l.rstrip() for l in smi_topo.splitlines() if l.strip()]
header = lines[0].split()
ngpu = sum(1 for h in header if h.startswith("GPU"))
view = topo["data"]["view"]
for l in lines[1:]:
    cols = l.split()
    if not cols or not cols[0].startswith("GPU") or not cols[0][3:].isdigit():
        continue
    i = int(cols[0][3:])
    cells = cols[1:1 + ngpu]
    ours = view["matrix"][view["gpus"].index(i)]
    same(f"topo.GPU{i}.links", " ".join(ours), " ".join(cells))
    rest = cols[1 + ngpu:]
    g = tgpus[i]
    if rest:
        same(f"topo.GPU{i}.cpu_affinity", g["cpu_affinity"] or "N/A", rest[0])
    if len(rest) > 1:
        same(f"topo.GPU{i}.numa_affinity", g["numa_affinity"] or "N/A", rest[1])
    if len(rest) > 2:
        same(f"topo.GPU{i}.gpu_numa_id", "N/A" if g["gpu_numa_id"] is None else g["gpu_numa_id"], rest[2])

def smi_q_sections(text):
    """Splits `nvidia-smi -q` into per-GPU dicts of 'Section/Key' -> value."""
    gpus, cur, stack = [], None, []
    for line in text.splitlines():
        if line.startswith("GPU ") and ":" in line:
            cur = {}; gpus.append(cur); stack = []; continue
        if cur is None or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, val = line.strip().partition(":")
        key, val = key.strip(), val.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if val == "" and _ == "":
            stack.append((indent, key)); continue
        path = "/".join([k for _, k in stack] + [key])
        cur.setdefault(path, val)
        if not val:
            stack.append((indent, key))
    return gpus

if len(sys.argv) > 4:
    q = smi_q_sections(open(sys.argv[4]).read())
    yn = lambda b: "N/A" if b is None else ("Yes" if b else "No")
    names = {"Idle": "GPU_IDLE", "SW Power Cap": "SW_POWER_CAP", "HW Slowdown": "HW_SLOWDOWN",
             "HW Thermal Slowdown": "HW_THERMAL_SLOWDOWN", "HW Power Brake Slowdown": "HW_POWER_BRAKE_SLOWDOWN",
             "SW Thermal Slowdown": "SW_THERMAL_SLOWDOWN", "Sync Boost": "SYNC_BOOST",
             "Applications Clocks Setting": "APPLICATIONS_CLOCKS_SETTING", "Display Clock Setting": "DISPLAY_CLOCK_SETTING"}
    for i, sec in enumerate(q):
        g = gpus[i]
        same(f"gpu{i}.remapped_rows_correctable", g["remapped_rows_correctable"], sec.get("Remapped Rows/Correctable Error"))
        same(f"gpu{i}.remapped_rows_uncorrectable", g["remapped_rows_uncorrectable"], sec.get("Remapped Rows/Uncorrectable Error"))
        same(f"gpu{i}.remap_pending", yn(g["remap_pending"]), sec.get("Remapped Rows/Pending"))
        same(f"gpu{i}.remap_failed", yn(g["remap_failed"]), sec.get("Remapped Rows/Remapping Failure Occurred"))
        if "GPU Recovery Action" in sec:
            same(f"gpu{i}.recovery_action", (g["recovery_action"] or "N/A").replace("_", " "), sec["GPU Recovery Action"])
        limit = next((v for k, v in sec.items() if k.endswith("Power Readings/Current Power Limit") and v != "N/A"), None)
        if limit and g["power_limit_w"] is not None:
            same(f"gpu{i}.power_limit_w", f"{g['power_limit_w']:.2f} W", limit)
        active = sorted(names[k.split("/")[-1]] for k, v in sec.items()
                        if k.startswith("Clocks Event Reasons/") and v == "Active" and k.split("/")[-1] in names)
        ours = sorted(r for r in g["clock_event_reasons"] if r in names.values())
        # Sampled at different moments: compare only while the GPU is idle in both.
        if "GPU_IDLE" in active and "GPU_IDLE" in ours:
            same(f"gpu{i}.clock_event_reasons", ",".join(ours), ",".join(active))

print(f"{len(bad)} difference(s)" + (": " + ", ".join(bad) if bad else ""))
sys.exit(1 if bad else 0)
