"""Tests for the household data file, its loader, and the price schedule."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from safegrad.systems import (
    HOUSEHOLD_BUY_PRICE_BY_HOUR,
    HOUSEHOLD_SELL_PRICE,
    HouseholdEnergy,
    household_buy_price,
    load_household_data,
)

DATA = os.path.join(
    os.path.dirname(__file__), "..", "..", "src", "safegrad", "data", "household.csv"
)


@pytest.fixture(scope="module")
def data():
    return load_household_data()


def test_shipped_data_shape_units_and_ranges(data):
    assert len(data) == 8760
    for col in (data.t_out, data.load, data.pv):
        assert col.shape == (8760,) and col.dtype == torch.float64
        assert torch.isfinite(col).all()
    assert data.hour_of_day.dtype == torch.int64
    torch.testing.assert_close(data.hour_of_day, torch.arange(8760) % 24)
    # BDEW H0 scaled to 4000 kWh/a: hourly kW values sum to the annual kWh
    assert float(data.load.sum()) == pytest.approx(4000.0, rel=1e-3)
    assert 0.05 < float(data.load.min()) and float(data.load.max()) < 2.0
    # 5 kWp PV: non-negative, below the 4.8 kW inverter limit, zero at night, yield plausible
    assert (data.pv >= 0).all() and float(data.pv.max()) <= 4.8
    night = (data.hour_of_day <= 2) | (data.hour_of_day >= 22)
    assert (data.pv[night] == 0).all()
    assert 600 < float(data.pv.sum()) / 5.0 < 1200  # kWh/kWp in Germany
    # summer noon produces more than winter noon
    noon = data.hour_of_day == 12
    day = torch.arange(8760) // 24
    assert data.pv[noon & (day >= 151) & (day < 243)].mean() > 2 * data.pv[noon & (day < 59)].mean()
    # outside temperature inside the household disturbance box W (spec A §5.3)
    sys_ = HouseholdEnergy()
    assert (data.t_out >= sys_.disturbance_low).all() and (
        data.t_out <= sys_.disturbance_high
    ).all()
    assert data.t_out[: 31 * 24].mean() < data.t_out[181 * 24 : 212 * 24].mean() - 10  # Jan < Jul


def test_shipped_csv_is_small():
    assert os.path.getsize(DATA) < 1_000_000


def test_loader_dtype_device_and_to(data):
    d32 = load_household_data(dtype=torch.float32)
    assert d32.t_out.dtype == torch.float32 and d32.hour_of_day.dtype == torch.int64
    torch.testing.assert_close(d32.load, data.load.float())
    d = data.to(dtype=torch.float32)
    torch.testing.assert_close(d.pv, d32.pv)


def _write(tmp_path, text, name="h.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_user_csv_roundtrip(tmp_path):
    p = _write(
        tmp_path,
        "# my data\nstamp,hour_of_day,t_out,load,pv\n"
        "a,22,1.5,0.3,0\nb,23,1.0,0.25,0.0\nc,0,-0.5,0.2,0\n",
    )
    d = load_household_data(p)
    assert len(d) == 3 and d.source == str(p)
    torch.testing.assert_close(d.t_out, torch.tensor([1.5, 1.0, -0.5], dtype=torch.float64))
    torch.testing.assert_close(d.hour_of_day, torch.tensor([22, 23, 0]))
    torch.testing.assert_close(d.load, torch.tensor([0.3, 0.25, 0.2], dtype=torch.float64))


@pytest.mark.parametrize(
    "text,match",
    [
        ("hour_of_day,t_out,load\n0,1,1\n", r"missing column\(s\) \['pv'\]"),
        (
            "hour_of_day,t_out,load,pv\n0,warm,1,0\n",
            r"row 2, column 't_out': 'warm' is not a number",
        ),
        ("hour_of_day,t_out,load,pv\n0,1,1,-0.5\n", r"column 'pv' must be >= 0 kW, got -0.5"),
        ("hour_of_day,t_out,load,pv\n0,1,-1,0\n", r"column 'load' must be >= 0 kW"),
        ("hour_of_day,t_out,load,pv\n0,nan,1,0\n", "is not finite"),
        ("hour_of_day,t_out,load,pv\n24,1,1,0\n", "integer in 0..23, got 24"),
        ("hour_of_day,t_out,load,pv\n0.5,1,1,0\n", "integer in 0..23"),
        ("hour_of_day,t_out,load,pv\n0,1,1,0\n2,1,1,0\n", "consecutive hours.*from 0 to 2"),
        ("hour_of_day,t_out,load,pv\n0,1,1\n", "has 3 fields, header has 4"),
        ("hour_of_day,t_out,load,pv\n", "no data rows"),
        ("# only a comment\n", "empty household data file"),
    ],
)
def test_bad_csv_raises_clear_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_household_data(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_household_data(tmp_path / "nope.csv")


def test_prices():
    assert len(HOUSEHOLD_BUY_PRICE_BY_HOUR) == 24
    expect = {0: 0.2, 5: 0.2, 6: 0.4, 10: 0.4, 11: 0.2, 16: 0.2, 17: 0.5, 21: 0.5, 22: 0.2, 23: 0.2}
    for h, p in expect.items():
        assert HOUSEHOLD_BUY_PRICE_BY_HOUR[h] == p
    assert HOUSEHOLD_SELL_PRICE == 0.08
    hours = torch.tensor([[0, 6], [17, 47]])
    torch.testing.assert_close(
        household_buy_price(hours), torch.tensor([[0.2, 0.4], [0.5, 0.2]], dtype=torch.float64)
    )
    with pytest.raises(TypeError, match="integer"):
        household_buy_price(torch.tensor([1.0]))


def test_package_does_not_import_data_tools():
    code = (
        "import sys, safegrad.systems as s; s.load_household_data(); "
        "bad = [m for m in ('pvlib', 'demandlib', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
