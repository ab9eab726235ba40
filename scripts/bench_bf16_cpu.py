"""bf16 against fp32 matmuls on this CPU, side by side in one process: is bf16 native here or emulated?

    python scripts/bench_bf16_cpu.py --output docs/bench_bf16_cpu.json

MiniLM-sized shapes (a 512 x 384 activation times a 384 x 1536 weight, its feed-forward layer); the JSON holds the
date, the CPU model, torch's CPU capability and the ratio.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch


def cpu_model() -> str:
    if Path("/proc/cpuinfo").exists():
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict:
    """When and where figures were measured: the date, the CPU model, the cores and the command."""
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "command": "python " + " ".join(sys.argv)}


def time_matmul(dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(512, 384).to(dtype), torch.randn(384, 1536).to(dtype)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench_bf16_cpu.json")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    fp32, bf16 = time_matmul(torch.float32, args.repeats), time_matmul(torch.bfloat16, args.repeats)
    result = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
              "torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
              "fp32_ms": round(fp32, 3), "bf16_ms": round(bf16, 3), "bf16_over_fp32": round(bf16 / fp32, 2),
              "command": "python scripts/bench_bf16_cpu.py --output " + args.output}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
