import pytest

from vaegan.viz.curves import curves_figure, smooth
from vaegan.viz.grid import figure_image


def test_smoothing_keeps_a_constant_and_follows_a_step():
    assert smooth([2.0] * 100) == pytest.approx([2.0] * 100)
    values = [0.0] * 100 + [1.0] * 200
    out = smooth(values)
    assert out[99] == pytest.approx(0.0) and 0.0 < out[110] < 1.0 and out[-1] == pytest.approx(1.0, abs=1e-3)
    assert smooth([1.0, 5.0]) == [1.0, 5.0]  # too short to smooth


def test_plot_skips_missing_and_non_finite_values():
    records = [{"kind": "train", "step": i, "loss": float(i), "d_loss": None if i % 2 else 1.0} for i in range(50)]
    records.append({"kind": "test", "step": 49, "loss": 3.0})
    assert figure_image(curves_figure(records)).size[0] > 600
    with pytest.raises(ValueError, match="no training records"):
        curves_figure([{"kind": "test", "step": 0, "loss": 1.0}])
