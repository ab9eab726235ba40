"""scripts/gpu_check.py runs end to end on tiny models on the CPU (--dry_run), so it is ready when a GPU is lent."""

import json
import os
import subprocess
import sys

from conftest import REPO, free_port


def test_gpu_check_dry_run_writes_every_section(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts/gpu_check.py"), "--dry_run", "--output",
                             str(tmp_path)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MASTER_PORT": str(free_port())})  # its process groups' port
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"rm_padded_sdpa", "rm_packed_sdpa", "rm_packed_flash_attention_2", "rm_fsdp2_padded",
                             "rm_shared_prefix_sdpa", "rm_shared_prefix_flex_attention", "rm_qlora_nf4_fp32", "rloo",
                             "rloo_shared_prompt", "rloo_vllm", "scores_fp32_vs_bf16"}
    for name in ("rm_padded_sdpa", "rm_packed_sdpa", "rm_shared_prefix_sdpa", "rm_fsdp2_padded", "rm_qlora_nf4_fp32"):
        assert sections[name]["tokens_per_s"] > 0 and sections[name]["plan_gib"] > 0
    assert sections["rm_qlora_nf4_fp32"]["export_within_tolerance"] is True
    assert sections["rloo"]["rollouts_per_s"] > 0 and sections["rloo_shared_prompt"]["rollouts_per_s"] > 0
    assert 0 < sections["scores_fp32_vs_bf16"]["max_abs_diff_over_std"] < 0.5
    assert "| rm_packed_sdpa |" in (tmp_path / "gpu_check.md").read_text()
