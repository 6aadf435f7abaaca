"""benchmarks/gpu_bench.py (the helper of benchmarks/gpu_check.sh) in its quick CPU mode, so it can't rot."""

import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", os.path.join(HERE, "..", "benchmarks", "gpu_bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_parts_and_summary(gpu_bench, tmp_path, capsys):
    import torch

    results = str(tmp_path)
    threads = torch.get_num_threads()
    try:
        for part in ("env", "optimizer", "diffsim", "deepves", "push"):
            assert gpu_bench.main([part, "--results", results, "--quick"]) == 0
    finally:
        torch.set_num_threads(threads)
    figures = {}
    for part in ("env", "optimizer", "diffsim", "deepves", "push"):
        with open(os.path.join(results, f"{part}.json")) as fh:
            figures.update(json.load(fh)["figures"])
    assert "Reference" in figures["OpenMM platforms that run"]
    assert figures["optimizer ms/iteration Ala2 grid 10x10 [cpu]"] > 0
    assert figures["diffsim replica-steps/s Ala2 16 replicas [cpu]"] > 0
    if not torch.cuda.is_available():
        assert figures["optimizer ms/iteration 6-D MC 100x10 [cuda]"] == "not run: no CUDA"
    assert figures["Deep-VES speed ratio table backend [CPU]"] > 0  # a timing: no bound under machine load
    assert figures["live push table [CPU] max |E - E_network| kJ/mol"] < 1e-3
    capsys.readouterr()
    with open(os.path.join(results, "tests.status"), "w") as fh:
        fh.write("timed out after 5 s (log tests.log)")
    gpu_bench.summary(results)
    out = capsys.readouterr().out.splitlines()
    assert "gpu_check summary" in out[0]
    assert "tests     not run: timed out after 5 s (log tests.log)" in out
    assert any(line.startswith("push      live push cmap [CPU] ms: ") for line in out)


def test_abi_patch_renames_only_the_c10_check(gpu_bench, tmp_path):
    plugin, c10 = tmp_path / "libOpenMMTorchCUDA.so", tmp_path / "libc10_cuda.so"
    plugin.write_bytes(b"\0head\0" + gpu_bench.OLD_C10_CHECK + b"\0tail\0")
    c10.write_bytes(b"\0" + gpu_bench.NEW_C10_CHECK + b"\0")
    assert gpu_bench.patch_torch_abi(str(plugin), str(c10)).startswith("abi: patched")
    assert plugin.read_bytes() == b"\0head\0" + gpu_bench.NEW_C10_CHECK + b"\0tail\0"
    assert "left alone" in gpu_bench.patch_torch_abi(str(plugin), str(c10))  # idempotent
    c10.write_bytes(b"\0" + gpu_bench.OLD_C10_CHECK + b"\0")  # a torch that still has the old symbol
    plugin.write_bytes(gpu_bench.OLD_C10_CHECK)
    assert "left alone" in gpu_bench.patch_torch_abi(str(plugin), str(c10))
    assert plugin.read_bytes() == gpu_bench.OLD_C10_CHECK
