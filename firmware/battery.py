"""Battery level: ADC counts to millivolts through the board's divider, to percent through the
cell's discharge curve, smoothed and held with hysteresis so the reported level never flaps.
"""
from micropython import const

from frame import BATTERY_UNKNOWN

# Open-circuit discharge curves, (mV, %) from full to empty; linear between points.
# LiPo: the common single-cell 3.7 V curve at light load (flat 3.7-3.9 V plateau).
_LIPO = (
    (4200, 100), (4150, 95), (4110, 90), (4080, 85), (4020, 80), (3980, 75), (3950, 70),
    (3910, 65), (3870, 60), (3850, 55), (3840, 50), (3820, 45), (3800, 40), (3790, 35),
    (3770, 30), (3750, 25), (3730, 20), (3710, 15), (3690, 10), (3610, 5), (3270, 0),
)
# CR2032 lithium coin cell at a light pulsed load: long 2.9-3.0 V plateau, then a knee. Percent
# is coarse on the plateau (the voltage barely moves); the knee is what low-battery warns about.
_CR2032 = (
    (3000, 100), (2950, 90), (2900, 75), (2850, 55), (2800, 40), (2700, 25), (2600, 15),
    (2500, 10), (2400, 5), (2200, 2), (2000, 0),
)
CURVES = {"lipo": _LIPO, "cr2032": _CR2032}

DEFAULT_HYSTERESIS_PCT = const(3)
DEFAULT_LOW_PCT = const(15)
_LOW_REARM_PCT = const(5)  # the low flag clears only this far above the threshold
_SMOOTH_SHIFT = const(2)  # exponential smoothing: each sample moves the level by 1/4


def percent(curve, mv):
    """Percent for a cell voltage on a curve; monotone non-decreasing in mv."""
    if mv >= curve[0][0]:
        return 100
    for i in range(1, len(curve)):
        lo_mv, lo_pct = curve[i]
        if mv >= lo_mv:
            hi_mv, hi_pct = curve[i - 1]
            return lo_pct + (mv - lo_mv) * (hi_pct - lo_pct) // (hi_mv - lo_mv)
    return 0


class Battery:
    """Tracks one cell. update(counts) takes a raw ADC reading and returns the reported %."""

    def __init__(self, chemistry, adc_max_counts, adc_ref_mv, divider_num, divider_den,
                 hysteresis_pct=DEFAULT_HYSTERESIS_PCT, low_pct=DEFAULT_LOW_PCT):
        if chemistry not in CURVES:
            raise ValueError("chemistry")
        if adc_max_counts <= 0 or adc_ref_mv <= 0 or divider_num <= 0 or divider_den <= 0:
            raise ValueError("adc")
        if not 1 <= hysteresis_pct <= 20 or not 0 <= low_pct <= 50:
            raise ValueError("hysteresis_pct/low_pct")
        self._curve = CURVES[chemistry]
        self._scale_num = adc_ref_mv * divider_num
        self._scale_den = adc_max_counts * divider_den
        self.hysteresis_pct = hysteresis_pct
        self.low_pct = low_pct
        self.smoothed_mv = -1
        self.pct = BATTERY_UNKNOWN
        self.low = False

    def millivolts(self, counts):
        """Cell voltage for an ADC reading, through the board's divider."""
        return counts * self._scale_num // self._scale_den

    def update(self, counts):
        """Feeds one reading; returns the reported percent (0-100)."""
        mv = self.millivolts(counts)
        if self.smoothed_mv < 0:
            self.smoothed_mv = mv
        else:
            self.smoothed_mv += (mv - self.smoothed_mv) >> _SMOOTH_SHIFT
        pct = percent(self._curve, self.smoothed_mv)
        reported = self.pct
        if (reported == BATTERY_UNKNOWN or pct >= reported + self.hysteresis_pct
                or pct <= reported - self.hysteresis_pct
                or (pct != reported and pct in (0, 100))):
            self.pct = pct
        if self.pct <= self.low_pct:
            self.low = True
        elif self.pct >= self.low_pct + _LOW_REARM_PCT:
            self.low = False
        return self.pct
