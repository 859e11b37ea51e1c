#!/usr/bin/env python3
"""Compares gpu-doctor's info/topo reports with nvidia-smi on the same machine, field by field.
Usage: compare_smi.py INFO.json TOPO.json NVIDIA_SMI_TOPO_M.txt   (exits 1 on any difference)"""
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
print(f"{len(bad)} difference(s)" + (": " + ", ".join(bad) if bad else ""))
sys.exit(1 if bad else 0)
