"""Explaining a change: each dimension value's contribution, adding up to the total change.

"Why did it move?" is the first question in the stat session. For a KPI split by a dimension
(district, channel) every value gets a contribution to the change between two periods (the
prior period, or the same period last year -- the caller picks the two), and the
contributions sum to the total change, so the sentence on the screen is arithmetic, not a
guess.

* **count, sum** -- the value's own change, ``x_i' − x_i`` (a value absent from a period
  counts 0 there).
* **rate, avg** (``R = N/D = ΣN_i / ΣD_i``) -- ``c_i = N_i'/D' − N_i/D``, so that
  ``Σ c_i = R' − R`` exactly. With the value's own rate ``r_i = N_i/D_i`` and its share of the
  denominator ``w_i = D_i/D``, ``c_i = r_i'·w_i' − r_i·w_i`` splits exactly into

  - rate effect ``(r_i' − r_i)·w_i'`` (its own rate moved, weighted by its share now) and
  - mix effect ``r_i·(w_i' − w_i)`` (its share of the denominator moved, at its old rate).

  A value new in the later period (``D_i = 0``) is all mix: ``c_i = r_i'·w_i'``; a value gone
  from it (``D_i' = 0``) too: ``c_i = −r_i·w_i``.

  Caution: this contribution counts a value's growth in volume at its *whole* rate, so a
  channel that grows with a below-average rate still "pulls the rate up". ``centred=True``
  measures the mix effect against the overall prior rate ``R`` instead:
  ``c_i* = c_i − R·(w_i' − w_i)``, mix ``(r_i − R)·(w_i' − w_i)``, same rate effect. Because
  ``Σ (w_i' − w_i) = 0`` the centred contributions still sum exactly to ``R' − R``, and a
  value that only grew at the average rate contributes nothing. A numerator without a denominator
  (``N_i ≠ 0`` with ``D_i = 0``, malformed input) still gets its exact ``c_i`` but no split.
  When a whole period has no denominator the total rate is undefined and nothing is split.
* **median, percentile, min, max, count_distinct** do not decompose: the overall median is
  not a combination of the groups' medians. Each value gets its own change and
  ``contribution`` None; ``Attribution.decomposable`` is False so the sentence says so.

An empty dimension value (None or "") is a group of its own, shown with the label passed in
(``empty_label``); if the data also holds that label literally, the two are one group.

The "main driver" of a change is a value that moved the KPI the way the total moved: for a
worsening, one that pulled it the bad way, never an improvement, however large.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ADDITIVE = ("count", "sum")
RATIO = ("rate", "avg", "mean")
NOT_DECOMPOSABLE = ("median", "percentile", "min", "max", "count_distinct")
KINDS = ADDITIVE + RATIO + NOT_DECOMPOSABLE

# Below this a total change is "no change": rates computed as ratios differ in the last bits.
_ZERO = 1e-12

_STAT_NOUN = {"rate": "rate", "avg": "average", "mean": "average", "median": "median",
              "percentile": "percentile", "min": "minimum", "max": "maximum",
              "count_distinct": "distinct count"}


@dataclass(frozen=True)
class Contribution:
    """One dimension value's part in the change.

    ``before``/``after`` are the value's own figures (its count or sum; its own rate or mean
    ``N_i/D_i``, None without a denominator; its own statistic), ``own_change`` their difference
    (None when either is missing). ``contribution`` is its additive part of the total change
    (None when the statistic does not decompose or the total is undefined); ``rate_effect`` +
    ``mix_effect`` == ``contribution`` for rates and means. ``share`` is contribution ÷ total
    change (None when the total did not change). ``present_before``/``present_after`` say
    whether the value had any rows in each period.
    """

    value: str
    before: float | None
    after: float | None
    own_change: float | None
    contribution: float | None
    rate_effect: float | None = None
    mix_effect: float | None = None
    numerator_before: float | None = None
    numerator_after: float | None = None
    denominator_before: float | None = None
    denominator_after: float | None = None
    share: float | None = None
    present_before: bool = True
    present_after: bool = True


@dataclass(frozen=True)
class Attribution:
    """The change of one KPI between two periods, split by one dimension (values by label)."""

    kind: str
    decomposable: bool
    total_before: float | None
    total_after: float | None
    contributions: tuple[Contribution, ...]

    @property
    def total_change(self) -> float | None:
        if self.total_before is None or self.total_after is None:
            return None
        return self.total_after - self.total_before

    @property
    def unchanged(self) -> bool:
        """The total did not change (within float noise)."""
        change = self.total_change
        return change is not None and abs(change) <= _ZERO * max(1.0, abs(self.total_before or 0.0))


Figures = Mapping[str | None, float | tuple[float, float] | None]


def _label(key: str | None, empty_label: str) -> str:
    return empty_label if key is None or key == "" else str(key)


def _merge(figures: Figures, kind: str, empty_label: str) -> dict[str, float | tuple[float, float] | None]:
    out: dict[str, float | tuple[float, float] | None] = {}
    for key, figure in figures.items():
        label = _label(key, empty_label)
        if label not in out:
            out[label] = figure
        elif kind in NOT_DECOMPOSABLE:
            raise ValueError(f"two groups are both labelled {label!r}; a {kind} cannot be merged")
        elif kind in RATIO:
            a, b = out[label] or (0.0, 0.0), figure or (0.0, 0.0)  # type: ignore[misc]
            out[label] = (a[0] + b[0], a[1] + b[1])  # type: ignore[index]
        else:
            out[label] = float(out[label] or 0.0) + float(figure or 0.0)  # type: ignore[arg-type]
    return out


def attribute_change(
    kind: str,
    before: Figures,
    after: Figures,
    *,
    empty_label: str = "(not recorded)",
    total_before: float | None = None,
    total_after: float | None = None,
    centred: bool = False,
) -> Attribution:
    """Each value's contribution to the change of the KPI from ``before`` to ``after``.

    ``before``/``after`` map a dimension value to its figure in that period: a number for
    count/sum and for the statistics that do not decompose, a ``(numerator, denominator)`` pair
    for rate/avg. Totals are computed for count/sum/rate/avg; for the others pass the KPI's own
    ``total_before``/``total_after`` (the overall median cannot be rebuilt from groups).
    ``centred`` picks the centred mix effect for rate/avg (see the module doc).

    >>> a = attribute_change("rate", {"web": (45, 50), "phone": (40, 50)}, {"web": (30, 40), "phone": (54, 60)})
    >>> round(a.total_change, 4), [round(c.contribution, 4) for c in a.contributions]
    (-0.01, [0.14, -0.15])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    old, new = _merge(before, kind, empty_label), _merge(after, kind, empty_label)
    labels = sorted(set(old) | set(new))
    if kind in ADDITIVE:
        return _additive(kind, old, new, labels)
    if kind in RATIO:
        return _ratio(kind, old, new, labels, centred)
    rows = []
    for label in labels:
        b, a = old.get(label), new.get(label)
        b = None if b is None or (isinstance(b, float) and math.isnan(b)) else float(b)  # type: ignore[arg-type]
        a = None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)  # type: ignore[arg-type]
        rows.append(Contribution(value=label, before=b, after=a,
                                 own_change=None if a is None or b is None else a - b, contribution=None,
                                 present_before=b is not None, present_after=a is not None))
    return Attribution(kind=kind, decomposable=False, total_before=total_before, total_after=total_after,
                       contributions=tuple(rows))


def _additive(kind: str, old: dict, new: dict, labels: list[str]) -> Attribution:
    total_b = sum(float(old.get(k) or 0.0) for k in labels)
    total_a = sum(float(new.get(k) or 0.0) for k in labels)
    change = total_a - total_b
    rows = []
    for label in labels:
        b, a = float(old.get(label) or 0.0), float(new.get(label) or 0.0)
        rows.append(Contribution(value=label, before=b, after=a, own_change=a - b, contribution=a - b,
                                 share=None if change == 0 else (a - b) / change,
                                 present_before=old.get(label) is not None,
                                 present_after=new.get(label) is not None))
    return Attribution(kind=kind, decomposable=True, total_before=total_b, total_after=total_a,
                       contributions=tuple(rows))


def _ratio(kind: str, old: dict, new: dict, labels: list[str], centred: bool) -> Attribution:
    def pair(figures: dict, label: str) -> tuple[float, float]:
        figure = figures.get(label)
        return (0.0, 0.0) if figure is None else (float(figure[0]), float(figure[1]))

    n_b = sum(pair(old, k)[0] for k in labels)
    d_b = sum(pair(old, k)[1] for k in labels)
    n_a = sum(pair(new, k)[0] for k in labels)
    d_a = sum(pair(new, k)[1] for k in labels)
    total_b = n_b / d_b if d_b else None
    total_a = n_a / d_a if d_a else None
    change = None if total_b is None or total_a is None else total_a - total_b
    rows = []
    for label in labels:
        (nb, db), (na, da) = pair(old, label), pair(new, label)
        rb = nb / db if db else None
        ra = na / da if da else None
        contribution = rate = mix = None
        if change is not None:
            contribution = na / d_a - nb / d_b  # type: ignore[operator]
            wb, wa = db / d_b, da / d_a  # type: ignore[operator]
            if centred:
                contribution -= total_b * (wa - wb)  # type: ignore[operator]
            if rb is not None and ra is not None:
                rate, mix = (ra - rb) * wa, (rb - (total_b if centred else 0.0)) * (wa - wb)  # type: ignore[operator]
            elif (db > 0 or nb == 0) and (da > 0 or na == 0):
                rate, mix = 0.0, contribution  # new, gone or empty in both: all mix
        share = None
        if contribution is not None and change is not None and abs(change) > _ZERO:
            share = contribution / change
        rows.append(Contribution(
            value=label, before=rb, after=ra,
            own_change=None if ra is None or rb is None else ra - rb,
            contribution=contribution, rate_effect=rate, mix_effect=mix,
            numerator_before=nb, numerator_after=na, denominator_before=db, denominator_after=da,
            share=share, present_before=label in old and old[label] is not None,
            present_after=label in new and new[label] is not None))
    return Attribution(kind=kind, decomposable=True, total_before=total_b, total_after=total_a,
                       contributions=tuple(rows))


def _key(att: Attribution, c: Contribution) -> float | None:
    return c.contribution if att.decomposable else c.own_change


def drivers(att: Attribution) -> tuple[Contribution, ...]:
    """The values that moved the KPI the way its total moved, largest first.

    For a worsening these all pulled the bad way (an improvement is never among them, however
    large); for an improvement they all pulled the good way. Ranked by contribution, or by own
    change for statistics that do not decompose. Empty when the total did not change or is
    unknown -- and, for a statistic that does not decompose, when no value's own figure moved
    the way the total did.

    >>> a = attribute_change("count", {"a": 10, "b": 10}, {"a": 40, "b": 0})
    >>> [c.value for c in drivers(a)]
    ['a']
    """
    change = att.total_change
    if change is None or att.unchanged:
        return ()
    found = [c for c in att.contributions if (k := _key(att, c)) is not None and k * change > 0]
    # rounded so that float noise (0.19999999999999996 vs 0.2) does not decide a tie
    return tuple(sorted(found, key=lambda c: (-round(abs(_key(att, c) or 0.0), 12), c.value)))


def percentage_points(delta: float) -> str:
    """A change of a percent KPI stored as a fraction, in points: ``-0.021 -> "2.1 points"``."""
    return f"{abs(delta) * 100:.1f} points"


def _share_text(share: float) -> str:
    return f"{share * 100:.0f}%"


def _count_text(x: float | None) -> str:
    return "0" if x is None else f"{x:,.0f}"


def _moved(delta: float, up: str = "rose", down: str = "fell", still: str = "did not change") -> str:
    return up if delta > 0 else down if delta < 0 else still


def describe_contribution(
    att: Attribution,
    c: Contribution,
    *,
    kpi: str,
    label: Callable[[str], str] = str,
    fmt: Callable[[float], str] = str,
    fmt_change: Callable[[float], str] | None = None,
    noun: str = "cases",
) -> str:
    """One value's part of the change, in a sentence.

    ``kpi`` names the KPI as in running text ("the on-time rate"); ``label`` turns a value into
    its subject ("District D4", "Phone requests"); ``fmt`` formats a KPI value in its unit
    ("90.5%"); ``fmt_change`` the size of a change, unsigned (default ``fmt`` of the absolute
    value; use ``percentage_points`` for a percent KPI); ``noun`` names the denominator of a
    rate or mean ("requests").

    >>> a = attribute_change("rate", {"D4": (181, 200), "D1": (720, 800)}, {"D4": (23, 29), "D1": (104, 116)})
    >>> describe_contribution(a, a.contributions[1], kpi="the on-time rate", label=lambda v: f"District {v}",
    ...     fmt=lambda x: f"{x * 100:.1f}%", fmt_change=percentage_points, noun="requests")
    'District D4 pulled the on-time rate down 2.2 points: its own rate fell from 90.5% to 79.3% on 29 requests'
    """
    size = fmt_change or (lambda d: fmt(abs(d)))
    subject = label(c.value)
    stat = _STAT_NOUN.get(att.kind, att.kind)
    if not att.decomposable:
        if c.own_change is None:
            where = "had no value before" if c.before is None else "has no value now"
            return f"{subject} {where}; {stat}s do not add up, so it has no share of the total change"
        return (f"{subject}: its own {stat} {_moved(c.own_change)} "
                f"from {fmt(c.before)} to {fmt(c.after)} "  # type: ignore[arg-type]
                f"({stat}s do not add up across groups, so this is its own change, not a share of the total)")
    change = att.total_change
    if att.kind in ADDITIVE:
        own = c.own_change or 0.0
        text = f"{subject} {_moved(own)}" + (f" by {size(own)}" if own else "")
        text += f" (from {fmt(c.before)} to {fmt(c.after)})"  # type: ignore[arg-type]
        if c.share is not None and change:
            total_word = "rise" if change > 0 else "fall"
            if c.share > 1:
                text += f", more than the whole {total_word} of {size(change)} (other values moved the other way)"
            elif c.share > 0:
                text += f", {_share_text(c.share)} of the total {total_word}"
            elif own:
                text += f", against the total {total_word} of {size(change)}"
        return text
    if c.contribution is None:
        return f"{subject}: the change cannot be split because a period has no {noun}"
    pulled = f"{subject} pulled {kpi} {_moved(c.contribution, 'up', 'down', 'nowhere')}"
    if c.contribution:
        pulled += f" {size(c.contribution)}"
    if c.before is None and c.after is not None:
        return (f"{pulled}: it had no {noun} before; its {stat} is {fmt(c.after)} "
                f"on {_count_text(c.denominator_after)} {noun}")
    if c.after is None and c.before is not None:
        return (f"{pulled}: it has no {noun} now; its {stat} was {fmt(c.before)} "
                f"on {_count_text(c.denominator_before)} {noun}")
    if c.before is None or c.after is None:
        return pulled
    own = (f"its own {stat} {_moved(c.after - c.before)} from {fmt(c.before)} to {fmt(c.after)} "
           f"on {_count_text(c.denominator_after)} {noun}")
    if c.rate_effect is None or c.mix_effect is None or abs(c.mix_effect) <= abs(c.rate_effect):
        return f"{pulled}: {own}"
    wb = (c.denominator_before or 0.0) / _den(att, before=True)
    wa = (c.denominator_after or 0.0) / _den(att, before=False)
    share = f"its share of {noun} {_moved(wa - wb, 'grew', 'shrank', 'held')} from {_share_text(wb)} to {_share_text(wa)}"
    if c.rate_effect * c.contribution < 0:
        # Its own rate moved the other way: say first what really moved the total, so the
        # sentence never reads "pulled the rate up: its own rate fell".
        return f"{pulled} only because {share}; {own}"
    return f"{pulled}: {own}; mostly because {share}"


def _den(att: Attribution, *, before: bool) -> float:
    return sum((c.denominator_before if before else c.denominator_after) or 0.0 for c in att.contributions) or 1.0


def explain_change(
    att: Attribution,
    direction: str,
    *,
    kpi: str,
    label: Callable[[str], str] = str,
    fmt: Callable[[float], str] = str,
    fmt_change: Callable[[float], str] | None = None,
    noun: str = "cases",
    top: int = 1,
) -> str:
    """The headline: what drove the change, the way the KPI moved -- never an improvement
    named as the cause of a worsening.

    ``direction`` is "higher", "lower" or "neutral" (better). The other arguments are those of
    ``describe_contribution``; ``top`` sentences are joined with ". ".

    >>> a = attribute_change("count", {"web": 80, "phone": 120}, {"web": 95, "phone": 143})
    >>> explain_change(a, "neutral", kpi="requests", fmt=lambda x: f"{x:.0f}")
    'phone rose by 23 (from 120 to 143), 61% of the total rise'
    """
    if direction not in ("higher", "lower", "neutral"):
        raise ValueError(f"direction must be higher, lower or neutral, not {direction!r}")
    change = att.total_change
    if change is None:
        if att.kind in RATIO:
            return f"The change in {kpi} cannot be split: a period has no {noun}"
        return f"The change in {kpi} is not known"
    if att.unchanged:
        text = f"{kpi[0].upper() + kpi[1:]} did not change ({fmt(att.total_after)})"  # type: ignore[arg-type]
        ups = [c for c in att.contributions if (_key(att, c) or 0.0) > 0]
        downs = [c for c in att.contributions if (_key(att, c) or 0.0) < 0]
        if att.decomposable and ups and downs:
            up = max(ups, key=lambda c: _key(att, c) or 0.0)
            down = min(downs, key=lambda c: _key(att, c) or 0.0)
            text += f": {label(up.value)} and {label(down.value)} offset each other"
        return text
    found = drivers(att)
    if not found:  # only possible for a statistic that does not decompose
        stat = _STAT_NOUN.get(att.kind, att.kind)
        if direction == "neutral":
            moved = "rose" if change > 0 else "fell"
            opposite = "fell or held" if change > 0 else "rose or held"
        else:
            worse = (change < 0) == (direction == "higher")
            moved, opposite = ("worsened", "improved or held") if worse else ("improved", "worsened or held")
        return (f"{kpi[0].upper() + kpi[1:]} {moved} "
                f"from {fmt(att.total_before)} to {fmt(att.total_after)}, "  # type: ignore[arg-type]
                f"yet no value's own {stat} did: every one {opposite} ({stat}s do not add up across groups, "
                f"so the overall figure can move against every group)")
    return ". ".join(describe_contribution(att, c, kpi=kpi, label=label, fmt=fmt, fmt_change=fmt_change, noun=noun)
                     for c in found[:top])
