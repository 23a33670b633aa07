#!/usr/bin/env python
"""Regenerate ``src/safegrad/data/household.csv`` from real weather and load-profile data.

Sources (both shipped inside pip packages, so no download is needed):

* Weather: the DWD (Deutscher Wetterdienst) test reference year TRY 2010, "mittleres Jahr"
  (reference period 1988-2007), as shipped by ``demandlib`` in
  ``demandlib/vdi/resources_weather/TRY2010_<region>_Jahr.dat``.  Columns used: air temperature
  ``t`` [degC], direct ``B`` and diffuse ``D`` irradiance on the horizontal plane [W/m^2], wind
  speed ``WG`` [m/s].  Default region 6 (station Bad Marienberg, 50.67 N, 7.97 E, 547 m): the only
  TRY 2010 region whose temperatures all lie inside the paper's disturbance box
  ``W = 10.8985 ± 20.1985 degC`` (spec A §5.3).
* Household load: the BDEW H0 standard load profile (dynamised, "h0_dyn") from
  ``demandlib.bdew.ElecSlp`` for calendar year 2010 with the German public holidays of
  Rhineland-Palatinate, scaled to an annual demand of 4000 kWh.
* PV: a 5 kWp south-facing (azimuth 180 deg), 30 deg-tilt system, modelled with pvlib:
  solar position (NREL SPA) at the row's timestamp, DNI = B / cos(zenith) (``pvlib.irradiance.dni``,
  0 for zenith > 88 deg, capped at 1000 W/m^2), isotropic-sky transposition (albedo 0.2),
  Faiman cell temperature, PVWatts DC model (gamma = -0.4 %/K), 14 % system losses (PVWatts
  default), PVWatts inverter (nominal efficiency 0.96, AC limit 4.8 kW).

Time convention: TRY hour ``HH`` (1..24, CET = UTC+1, no daylight saving) is taken as the
instant ``HH:00`` CET (the irradiance is then zero exactly when the sun is below the horizon,
which the script checks).  The last row (Dec 31, 24:00) is moved to the front so that the series
starts at Jan 1, 00:00 and row ``k`` is hour of year ``k``.  The load at hour ``h`` is the mean of
the four BDEW quarter-hours centred on ``h`` (``h-0:30 .. h+0:15``).

Usage::

    /work/venv/bin/pip install pvlib demandlib   # or: pip install safegrad[data]
    python scripts/make_household_data.py [--region 6] [--annual-load-kwh 4000] [--out PATH]

The package itself never imports pvlib or demandlib.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import warnings
from unittest import mock

import numpy as np

YEAR = 2010  # calendar used for weekdays/holidays of the load profile (TRY 2010, non-leap)
T_OUT_CENTRE, T_OUT_HALFWIDTH = 10.8985, 20.1985  # spec A §5.3
PV_KWP = 5.0
PV_TILT, PV_AZIMUTH, ALBEDO = 30.0, 180.0, 0.2
GAMMA_PDC = -0.004
LOSSES = 0.14
ETA_INV = 0.96
DNI_CAP = 1000.0

DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "src", "safegrad", "data", "household.csv"
)


def easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def holidays_rlp(year: int) -> dict[dt.date, str]:
    """Public holidays of Rhineland-Palatinate (federal + Corpus Christi, All Saints)."""
    e = easter(year)
    d = dt.timedelta
    return {
        dt.date(year, 1, 1): "Neujahr",
        e - d(days=2): "Karfreitag",
        e + d(days=1): "Ostermontag",
        dt.date(year, 5, 1): "Tag der Arbeit",
        e + d(days=39): "Christi Himmelfahrt",
        e + d(days=50): "Pfingstmontag",
        e + d(days=60): "Fronleichnam",
        dt.date(year, 10, 3): "Tag der Deutschen Einheit",
        dt.date(year, 11, 1): "Allerheiligen",
        dt.date(year, 12, 25): "1. Weihnachtstag",
        dt.date(year, 12, 26): "2. Weihnachtstag",
    }


def read_try(region: int):
    """Parse a DWD TRY 2010 ``.dat`` file shipped with demandlib; returns header info and rows."""
    import demandlib

    path = os.path.join(
        os.path.dirname(demandlib.__file__),
        "vdi",
        "resources_weather",
        f"TRY2010_{region:02d}_Jahr.dat",
    )
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    station = lines[1].split("Station:")[1].split("WMO")[0].strip()
    pos = lines[2]  # "Lage: 50°40'N <- B.   7°58'O <- L.   547 Meter über NN"
    lat_deg, lat_min = pos.split("Lage:")[1].split("'N")[0].strip().split("°")
    lon_deg, lon_min = pos.split("<- B.")[1].split("'O")[0].strip().split("°")
    alt = float(pos.split("<- L.")[1].split("Meter")[0])
    lat = float(lat_deg) + float(lat_min) / 60.0
    lon = float(lon_deg) + float(lon_min) / 60.0
    start = next(k for k, ln in enumerate(lines) if ln.startswith("***")) + 1
    rows = np.array([ln.split() for ln in lines[start:] if ln.strip()], dtype=float)
    if rows.shape != (8760, 19):
        raise RuntimeError(f"unexpected TRY table shape {rows.shape} in {path}")
    return dict(path=path, station=station, lat=lat, lon=lon, alt=alt, rows=rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--region", type=int, default=6, help="DWD TRY 2010 region 1..15 (default 6)")
    ap.add_argument("--annual-load-kwh", type=float, default=4000.0)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    import pandas as pd
    import pvlib
    from demandlib import bdew

    w = read_try(args.region)
    rows = w["rows"]
    month, day, hh = rows[:, 2].astype(int), rows[:, 3].astype(int), rows[:, 4].astype(int)
    t_air, wind = rows[:, 8], rows[:, 7]
    ghi = rows[:, 13] + rows[:, 14]
    dhi = rows[:, 14]

    # Row timestamps: TRY hour HH -> instant HH:00 CET (UTC+1, no DST).
    times = pd.DatetimeIndex(
        [pd.Timestamp(YEAR, m, d) + pd.Timedelta(hours=int(h)) for m, d, h in zip(month, day, hh)]
    ).tz_localize("Etc/GMT-1")
    sp = pvlib.solarposition.get_solarposition(times, w["lat"], w["lon"], altitude=w["alt"])
    zen = sp["apparent_zenith"].to_numpy()
    night_mismatch = int(((ghi > 0) & (zen >= 90.0)).sum())
    dni = pvlib.irradiance.dni(ghi, dhi, zen)
    dni = np.clip(np.nan_to_num(np.asarray(dni, dtype=float)), 0.0, DNI_CAP)
    poa = pvlib.irradiance.get_total_irradiance(
        PV_TILT,
        PV_AZIMUTH,
        zen,
        sp["azimuth"].to_numpy(),
        dni,
        ghi,
        dhi,
        albedo=ALBEDO,
        model="isotropic",
    )["poa_global"]
    poa = np.clip(np.nan_to_num(np.asarray(poa, dtype=float)), 0.0, None)
    t_cell = np.asarray(pvlib.temperature.faiman(poa, t_air, wind), dtype=float)
    pdc = np.asarray(pvlib.pvsystem.pvwatts_dc(poa, t_cell, PV_KWP, GAMMA_PDC), dtype=float)
    pdc = np.clip(pdc * (1.0 - LOSSES), 0.0, None)
    pac = np.asarray(pvlib.inverter.pvwatts(pdc, PV_KWP, eta_inv_nom=ETA_INV), dtype=float)
    pv = np.clip(np.nan_to_num(pac), 0.0, None)

    # BDEW H0 (dynamised) for YEAR, quarter-hour mean power [kW] for the annual demand.
    # demandlib 0.2 calls warnings.simplefilter("error") internally, which turns pandas>=3.1
    # deprecation warnings into errors; neutralise that call for the duration of the build.
    with (
        warnings.catch_warnings(),
        mock.patch.object(warnings, "simplefilter", lambda *a, **k: None),
    ):
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        slp = bdew.ElecSlp(YEAR, holidays=holidays_rlp(YEAR))
        q = slp.get_scaled_power_profiles({"h0_dyn": args.annual_load_kwh})["h0_dyn"].to_numpy()
    if q.shape != (8760 * 4,):
        raise RuntimeError(f"unexpected load profile length {q.shape}")
    # Centred hourly mean at hour h: quarter-hours starting h-0:30, h-0:15, h, h+0:15 (cyclic).
    load = (np.roll(q, 2) + np.roll(q, 1) + q + np.roll(q, -1)).reshape(-1)[0::4] / 4.0
    # load[k] is centred on hour k of the year (k = 0: Jan 1, 00:00).

    # Weather rows are hours 1..8760 of the year: move the last (Dec 31 24:00) to the front.
    t_out = np.roll(t_air, 1)
    ghi_r = np.roll(ghi, 1)
    pv = np.roll(pv, 1)
    start = dt.datetime(YEAR, 1, 1)
    stamps = [start + dt.timedelta(hours=k) for k in range(8760)]

    lo, hi = T_OUT_CENTRE - T_OUT_HALFWIDTH, T_OUT_CENTRE + T_OUT_HALFWIDTH
    outside = int(((t_out < lo) | (t_out > hi)).sum())

    out = os.path.abspath(args.out)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(
            f"# safegrad household data: DWD TRY2010 region {args.region} ({w['station']}), "
            f"BDEW H0 {args.annual_load_kwh:g} kWh/a, PV {PV_KWP:g} kWp (pvlib PVWatts). "
            "Hourly, CET, row k = hour k of a typical year. See household_README.md.\n"
        )
        fh.write("month,day,hour_of_day,t_out,ghi,load,pv\n")
        for k, s in enumerate(stamps):
            fh.write(
                f"{s.month},{s.day},{s.hour},{t_out[k]:.1f},{ghi_r[k]:.0f},"
                f"{load[k]:.4f},{pv[k]:.4f}\n"
            )

    size = os.path.getsize(out)
    print(f"wrote {out} ({size / 1024:.0f} KiB, 8760 rows)")
    print(f"weather: {w['path']} station {w['station']} lat {w['lat']:.3f} lon {w['lon']:.3f}")
    print(f"  night hours with GHI > 0 (time-convention check, expect 0): {night_mismatch}")
    print(
        f"  t_out range [{t_out.min():.1f}, {t_out.max():.1f}] degC, mean {t_out.mean():.2f}; "
        f"hours outside W=[{lo:.4f}, {hi:.4f}]: {outside}"
    )
    print(f"  GHI {ghi.sum() / 1000:.0f} kWh/m^2/a")
    print(f"load: {load.sum():.0f} kWh/a, mean {load.mean():.3f} kW, max {load.max():.3f} kW")
    print(f"pv: {pv.sum():.0f} kWh/a ({pv.sum() / PV_KWP:.0f} kWh/kWp), max {pv.max():.3f} kW")
    if math.isnan(float(pv.sum())) or night_mismatch:
        print("WARNING: check the time convention / PV model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
