"""Pure helpers of benchmarks/throughput.py: config strings, MFU arithmetic, FLOP counting, the reference import."""
from __future__ import annotations

import sys

import pytest
import torch


def test_parse_configs_order_is_px_ndf_rkhs_depth_batch(tp):
    got = tp.parse_configs("32:128:1024:3:256, 128:192:1536:8:128")
    assert got == [tp.BenchConfig(size=32, ndf=128, n_rkhs=1024, n_depth=3, batch=256),
                   tp.BenchConfig(size=128, ndf=192, n_rkhs=1536, n_depth=8, batch=128)]
    assert got[1]._asdict() == {"size": 128, "ndf": 192, "n_rkhs": 1536, "n_depth": 8, "batch": 128}


@pytest.mark.parametrize("bad", ["32:128:1024:3", "32:128:1024:3:256:1", "32:128:1024:3:0", "a:b:c:d:e", "",
                                 "32:128:1024:3:256,"])
def test_parse_configs_rejects_malformed(tp, bad):
    with pytest.raises(ValueError, match="px:ndf:n_rkhs:depth:batch"):
        tp.parse_configs(bad)


def test_grid_configs_sizes_outer_batches_inner(tp):
    got = tp.grid_configs("32,64", "8,16", ndf=32, n_rkhs=256, n_depth=1)
    assert [(c.size, c.batch) for c in got] == [(32, 8), (32, 16), (64, 8), (64, 16)]
    assert {(c.ndf, c.n_rkhs, c.n_depth) for c in got} == {(32, 256, 1)}


def test_mfu_is_achieved_flops_over_peak(tp):
    assert tp.mfu(1e12, 0.5, 4.0) == pytest.approx(0.5)       # 2 TFLOP/s of 4
    assert tp.mfu(3e12, 2.0, 989.0) == pytest.approx(1.5 / 989)
    assert tp.mfu(1e12, 0.5, None) is None
    assert tp.mfu(0, 0.5, 4.0) is None


def test_default_peak_is_dense_bf16_of_h100_h200_only(tp):
    assert tp.default_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert tp.default_peak_tflops("NVIDIA H200") == 989.0
    assert tp.default_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert tp.default_peak_tflops("NVIDIA A100-SXM4-80GB") is None
    assert tp.default_peak_tflops("CPU (x86_64, 2 threads)") is None


def test_count_flops_counts_two_per_multiply_add(tp):
    a, b = torch.randn(4, 8, requires_grad=True), torch.randn(8, 16)
    assert tp.count_flops(lambda: a @ b) == 2 * 4 * 8 * 16
    assert tp.count_flops(lambda: (a @ b).sum().backward()) == 2 * (2 * 4 * 8 * 16)  # forward + grad of a


def test_load_amdim_ref_stubs_apex_and_cleans_sys_modules(tp, tmp_path):
    (tmp_path / "mixed_precision.py").write_text("from apex.fp16_utils import FP16_Optimizer\n")
    (tmp_path / "costs.py").write_text("def loss_xent(logits, labels):\n    return 0\n")
    (tmp_path / "model.py").write_text("import mixed_precision\nfrom costs import loss_xent\nclass Model:\n    pass\n")
    before = {n: sys.modules.get(n) for n in tp.REF_MODULES}
    ref = tp.load_amdim_ref(str(tmp_path))
    assert ref.Model.__name__ == "Model" and ref.loss_xent(None, None) == 0
    assert ref.root == str(tmp_path.resolve())
    assert {n: sys.modules.get(n) for n in tp.REF_MODULES} == before
    assert str(tmp_path.resolve()) not in sys.path


def test_load_amdim_ref_names_a_missing_checkout(tp, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        tp.load_amdim_ref(str(tmp_path))
