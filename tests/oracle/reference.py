"""The reference oracle: every signal check kind, sample by sample, in plain Python.

Written from the meanings in docs/plan-reference.md (and the kind modules' docstrings), not from
the vectorized code: no numpy, no searchsorted, no masks — loops over samples that a reviewer can
follow with a pencil. Slow on purpose; the property tests feed it small logs.

A log here is plain data: ``messages`` maps a message name to a list of rows ``(t, {signal:
value})`` (a missing or None value is an absent sample, NaN is a received NaN), ``frames`` maps a
message name to ``[(t, payload bytes)]`` for the frame kinds, ``steps`` is ``[(name, start, end or
None)]`` and ``log_end`` is the last frame time of the log.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

INF = math.inf
FOR_TOLERANCE = 1e-9


def slack(limit: float) -> float:
    return 1e-9 * max(1.0, abs(limit))


def is_nan(v: float) -> bool:
    return v != v


@dataclass
class Log:
    messages: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    frames: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)
    steps: list[tuple[str, float, float | None]] = field(default_factory=list)
    log_end: float = math.nan
    log_start: float = math.nan
    abort_time: float | None = None

    @property
    def data_end(self) -> float:
        """The abort of an aborted run (if before the log's end), else the log's end."""
        if self.abort_time is not None and self.abort_time < self.log_end:
            return self.abort_time
        return self.log_end

    # -- signals ---------------------------------------------------------------------------------

    def samples(self, reference: str) -> list[tuple[float, float]]:
        message, _, signal = reference.partition(".")
        rows = [(t, row.get(signal)) for t, row in self.messages.get(message, [])]
        present = [(t, float(v)) for t, v in rows if v is not None]
        return sorted(present, key=lambda pair: pair[0])  # stable: equal times keep their order

    def value_at(self, reference: str, t: float) -> float:
        """The latest sample at or before ``t`` (NaN before the first)."""
        value = math.nan
        for time, v in self.samples(reference):
            if time <= t:
                value = v
            else:
                break
        return value

    def holds(self, condition: Any, t: float) -> bool:
        env = {name: self.value_at(name, t) for name in condition.signals}
        return bool(condition.evaluate(env))

    # -- steps -----------------------------------------------------------------------------------

    def step_end(self, end: float | None, start: float) -> float:
        # an unfinished step holds every frame to the last one: just past log_end (half-open)
        return end if end is not None else max(math.nextafter(self.log_end, math.inf), start)

    def selected(self, patterns: list[str]) -> list[tuple[float, float]]:
        names = [name for name, _, _ in self.steps]
        chosen = set()
        for pattern in patterns:
            if pattern in names:
                chosen.add(pattern)
            elif any(c in pattern for c in "*?["):
                chosen.update(n for n in names if fnmatch.fnmatchcase(n, pattern))
        return [(s, self.step_end(e, s)) for n, s, e in self.steps if n in chosen]

    def window_of(self, t: float, windows: list[tuple[float, float]]) -> tuple[float, float] | None:
        """The union of windows (touching ones joined) holding ``t``, or None."""
        spans = sorted(windows)
        joined: list[list[float]] = []
        for a, b in spans:
            if joined and a <= joined[-1][1]:
                joined[-1][1] = max(joined[-1][1], b)
            else:
                joined.append([a, b])
        for a, b in joined:
            if a <= t < b:
                return (a, b)
        return None


class Unjudgeable(Exception):
    pass


@dataclass
class Verdict:
    verdict: str
    observed: Any = None
    margin: float | None = None
    evidence: list[tuple[float, float]] = field(default_factory=list)


# -- limits ----------------------------------------------------------------------------------------


def outside(v: float, low: float | None, high: float | None) -> bool:
    if is_nan(v):
        return True
    if low is not None and v < low - slack(low):
        return True
    return high is not None and v > high + slack(high)


def distance(v: float, low: float | None, high: float | None) -> float:
    if is_nan(v):
        return INF
    d = -INF
    if low is not None:
        d = max(d, low - v)
    if high is not None:
        d = max(d, v - high)
    return d


# -- judged samples (range, statistic, rate) -------------------------------------------------------


@dataclass
class Judged:
    times: list[float]
    values: list[float]
    judged: list[bool]
    hold_end: list[float]
    windows: list[tuple[float, float]] | None


def judged_samples(log: Log, signal: str, during: list[str] | None, when: Any) -> Judged:
    if during:
        if not log.steps:
            raise Unjudgeable("no step events")
        windows = log.selected(during)
        if not windows:
            raise Unjudgeable("steps never ran")
    else:
        windows = None
    samples = log.samples(signal)
    if not samples:
        raise Unjudgeable("no samples")
    times = [t for t, _ in samples]
    values = [v for _, v in samples]
    judged, hold_end = [], []
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else max(log.log_end, t)
        inside = True
        if windows is not None:
            window = log.window_of(t, windows)
            inside = window is not None
            end = min(end, window[1]) if window is not None else end
        judged.append(inside)
        hold_end.append(end)
    if windows is not None and not any(judged):
        raise Unjudgeable("no samples during")
    if when is not None:
        judged = [j and log.holds(when, t) for j, t in zip(judged, times, strict=True)]
        if not any(judged):
            raise Unjudgeable("when never held")
    return Judged(times, values, judged, hold_end, windows)


def continuous(s: Judged, i: int) -> bool:
    """Sample i holds until sample i + 1."""
    return i + 1 < len(s.times) and s.hold_end[i] >= s.times[i + 1]


def runs_of(s: Judged, bad: list[bool]) -> list[tuple[float, float, int]]:
    """(start, end, last index) of each run of judged bad samples, held while continuous."""
    found, start = [], None
    for i in range(len(s.times)):
        if not bad[i]:
            continue
        if start is None:
            start = s.times[i]
        if not (continuous(s, i) and bad[i + 1]):
            found.append((start, s.hold_end[i], i))
            start = None
    return found


def held_level(s: Judged, score: list[float], for_s: float | None) -> float | None:
    """Largest L such that score ≥ L on judged samples throughout a run lasting for_s."""
    best = None
    for a in range(len(s.times)):
        if not s.judged[a]:
            continue
        if not for_s:
            candidate = score[a]
        else:
            candidate, lowest, b = None, INF, a
            while True:
                lowest = min(lowest, score[b])
                if s.hold_end[b] - s.times[a] >= for_s - FOR_TOLERANCE:
                    candidate = lowest
                    break
                if not (continuous(s, b) and s.judged[b + 1]):
                    break
                b += 1
        if candidate is not None and (best is None or candidate > best):
            best = candidate
    return best


def range_check(log: Log, c: dict) -> Verdict:
    low, high = c.get("min"), c.get("max")
    band_low = c.get("marginal_min", low)
    band_high = c.get("marginal_max", high)
    for_s = c.get("for")
    s = judged_samples(log, c["signal"], c.get("during"), c.get("when"))
    n = len(s.times)
    bad = [s.judged[i] and outside(s.values[i], low, high) for i in range(n)]
    band = [s.judged[i] and outside(s.values[i], band_low, band_high) for i in range(n)]

    def lasts(run: tuple[float, float, int]) -> bool:
        return not for_s or run[1] - run[0] >= for_s - FOR_TOLERANCE

    def still_open(run: tuple[float, float, int]) -> bool:
        start, end, last = run
        if last == n - 1 and end >= log.log_end:
            return True  # its value held until the end of the log
        if log.abort_time is not None and start <= log.abort_time <= end:
            return True  # the abort (its safe state) ended it
        if not for_s:
            return False
        first_i = last_i = last  # the judged stretch holding it
        while first_i > 0 and continuous(s, first_i - 1) and s.judged[first_i - 1]:
            first_i -= 1
        while continuous(s, last_i) and s.judged[last_i + 1]:
            last_i += 1
        return s.hold_end[last_i] - s.times[first_i] < for_s - FOR_TOLERANCE

    violations = runs_of(s, bad)
    excursions = runs_of(s, band)
    counted = [r for r in violations if lasts(r)]
    cut = [r for r in violations if not lasts(r) and still_open(r)]
    band_hits = [r for r in excursions if lasts(r) or still_open(r)]

    level = held_level(s, [distance(v, low, high) for v in s.values], for_s)
    top = (
        held_level(s, [INF if is_nan(v) else v for v in s.values], for_s)
        if high is not None
        else None
    )
    bottom = (
        held_level(s, [INF if is_nan(v) else -v for v in s.values], for_s)
        if low is not None
        else None
    )
    bottom = -bottom if bottom is not None else None
    if low is not None and high is not None:
        observed: Any = None if level is None else {"min": bottom, "max": top}
    else:
        observed = top if high is not None else bottom
    margin = None if level is None or math.isinf(level) else -level

    if counted:
        return Verdict("fail", observed, margin, [(a, b) for a, b, _ in counted])
    if cut:
        return Verdict("inconclusive", observed, margin, [(a, b) for a, b, _ in cut])
    if band_hits:
        return Verdict("marginal", observed, margin, [(a, b) for a, b, _ in band_hits])
    judged_i = [i for i in range(n) if s.judged[i]]
    return Verdict("pass", observed, margin, [(s.times[judged_i[0]], s.hold_end[judged_i[-1]])])


# -- statistic -------------------------------------------------------------------------------------


def statistic_check(log: Log, c: dict) -> Verdict:
    s = judged_samples(log, c["signal"], c.get("during"), c.get("when"))
    xs = [v for v, j in zip(s.values, s.judged, strict=True) if j and not is_nan(v)]
    if not xs:
        raise Unjudgeable("only NaN")
    kind = c["statistic"]
    ordered = sorted(xs)
    if kind == "mean":
        value = math.fsum(xs) / len(xs)
    elif kind == "min":
        value = ordered[0]
    elif kind == "max":
        value = ordered[-1]
    elif kind == "std":
        mean = math.fsum(xs) / len(xs)
        value = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs))
    else:
        p = 50.0 if kind == "median" else c["percentile"]
        rank = p / 100 * (len(xs) - 1)
        below = math.floor(rank)
        above = min(below + 1, len(xs) - 1)
        value = ordered[below] + (ordered[above] - ordered[below]) * (rank - below)
    low, high = c.get("min"), c.get("max")
    band_low, band_high = c.get("marginal_min", low), c.get("marginal_max", high)
    verdict = (
        "fail"
        if outside(value, low, high)
        else "marginal"
        if outside(value, band_low, band_high)
        else "pass"
    )
    judged_i = [i for i in range(len(s.times)) if s.judged[i]]
    evidence = [(s.times[judged_i[0]], s.hold_end[judged_i[-1]])]
    return Verdict(verdict, value, -distance(value, low, high), evidence)


# -- rate ------------------------------------------------------------------------------------------


def rate_check(log: Log, c: dict) -> Verdict:
    s = judged_samples(log, c["signal"], c.get("during"), c.get("when"))
    over = c.get("over")
    slopes: list[tuple[float, float, float]] = []  # (start, end, rate)

    def same_window(t0: float, t1: float) -> bool:
        if s.windows is None:
            return True
        return log.window_of(t0, s.windows) == log.window_of(t1, s.windows)

    n = len(s.times)
    if over:
        for e in range(n):
            t = s.times[e]
            if not s.judged[e] or t - over < s.times[0]:
                continue
            b = max(i for i in range(n) if s.times[i] <= t - over)
            if not s.judged[b] or not same_window(s.times[b], t):
                continue
            slopes.append((t - over, t, abs(s.values[e] - s.values[b]) / over))
    else:
        for i in range(1, n):
            if not (s.judged[i - 1] and s.judged[i]) or not same_window(s.times[i - 1], s.times[i]):
                continue
            dt = s.times[i] - s.times[i - 1]
            if dt > 0:
                slopes.append((s.times[i - 1], s.times[i], abs(s.values[i] - s.values[i - 1]) / dt))
    slopes = [x for x in slopes if not is_nan(x[2])]
    if not slopes:
        raise Unjudgeable("no slope")
    peak = max(r for _, _, r in slopes)
    limit, band = c["max_rate"], c.get("marginal_max_rate")
    above = [(a, b) for a, b, r in slopes if outside(r, None, limit)]
    if above:
        return Verdict("fail", peak, limit - peak, above)
    if band is not None and outside(peak, None, band):
        return Verdict("marginal", peak, limit - peak,
                       [(a, b) for a, b, r in slopes if outside(r, None, band)])  # fmt: skip
    return Verdict("pass", peak, limit - peak, [(slopes[0][0], slopes[-1][1])])


# -- reaches ---------------------------------------------------------------------------------------


def anchor_time(log: Log, after: str | None, condition_after: Any = None) -> float:
    if after is None:
        return log.log_start
    if condition_after is not None:
        signals = condition_after.signals
        times = sorted({t for name in signals for t, _ in log.samples(name)})
        for t in times:
            if log.holds(condition_after, t):
                return t
        raise Unjudgeable("after condition never held")
    name, end = (after[:-4], True) if after.endswith(".end") else (after, False)
    for step_name, start, stop in sorted(log.steps, key=lambda s: s[1]):
        exact = any(n == name for n, _, _ in log.steps)
        if step_name == name or (not exact and any(ch in name for ch in "*?[")
                                 and fnmatch.fnmatchcase(step_name, name)):  # fmt: skip
            if not end:
                return start
            if stop is None:
                raise Unjudgeable("step never ended")
            return stop
    raise Unjudgeable("no such step")


def reaches_check(log: Log, c: dict) -> Verdict:
    if c.get("during"):
        windows = log.selected(c["during"]) if log.steps else None
        if not windows:
            raise Unjudgeable("no during")
    else:
        windows = None
    anchor = anchor_time(log, c.get("after"), c.get("after_condition"))
    condition = c["reaches"]
    times = {anchor} | {t for name in condition.signals for t, _ in log.samples(name)}
    times = sorted(t for t in times if t >= anchor)
    if windows is not None:
        times = [t for t in times if log.window_of(t, windows) is not None]
    within = c["within"]
    for position, t in enumerate(times):
        if log.holds(condition, t):
            if position == 0 and not c.get("accept_already_true"):
                return Verdict("inconclusive", 0.0, None, [(anchor, t)])
            taken = t - anchor
            verdict = "fail" if outside(taken, None, within) else "pass"
            return Verdict(verdict, taken, within - taken, [(anchor, t)])
    if log.data_end < anchor + within:
        raise Unjudgeable("the data ends before the deadline")
    return Verdict("fail", None, None, [(anchor, anchor + within)])


# -- responds --------------------------------------------------------------------------------------


def responds_check(log: Log, c: dict) -> Verdict:
    stimulus, response, within = c["stimulus"], c["responds"], c["within"]
    band = c.get("marginal_within")
    times = sorted({t for name in stimulus.signals for t, _ in log.samples(name)})
    starts = []
    for i in range(1, len(times)):
        if log.holds(stimulus, times[i]) and not log.holds(stimulus, times[i - 1]):
            starts.append(times[i])
    if c.get("during"):
        windows = log.selected(c["during"]) if log.steps else []
        if not windows:
            raise Unjudgeable("no during")
        starts = [t for t in starts if log.window_of(t, windows) is not None]
    if not starts:
        raise Unjudgeable("no stimulus")
    answer_times = sorted({t for name in response.signals for t, _ in log.samples(name)})
    late, cut, latencies, evidence = [], [], [], []
    for s in starts:
        answer = next((t for t in sorted({s, *answer_times}) if t >= s and log.holds(response, t)),
                      INF)  # fmt: skip
        latency = answer - s
        if outside(latency, None, within):
            if s + within <= log.data_end:
                late.append((s, min(answer, s + within)))
            else:
                cut.append((s, log.data_end))
            if s + within <= log.data_end and answer != INF:
                latencies.append(latency)
        else:
            latencies.append(latency)
            evidence.append((s, answer))
    worst = max(latencies) if latencies else None
    if latencies:
        ordered = sorted(latencies)
        rank = 0.95 * (len(ordered) - 1)
        below = math.floor(rank)
        above = min(below + 1, len(ordered) - 1)
        p95 = ordered[below] + (ordered[above] - ordered[below]) * (rank - below)
    else:
        p95 = None
    observed = {"stimuli": len(starts), "max": worst, "p95": p95}
    margin = within - worst if worst is not None else None
    if late:
        return Verdict("fail", observed, margin, late)
    if cut:
        return Verdict("inconclusive", observed, margin, cut)
    verdict = "marginal" if band is not None and outside(worst, None, band) else "pass"
    return Verdict(verdict, observed, margin, evidence)


# -- frame kinds -----------------------------------------------------------------------------------


def pairs_in_windows(
    log: Log, times: list[float], during: list[str] | None
) -> list[tuple[float, float]]:
    """Consecutive pairs of ``times`` both inside the same ``during:`` window (all without)."""
    if during:
        if not log.steps:
            raise Unjudgeable("no steps")
        windows = log.selected(during)
        if not windows:
            raise Unjudgeable("steps never ran")
    pairs = []
    for a, b in itertools.pairwise(times):
        if during:
            wa, wb = log.window_of(a, windows), log.window_of(b, windows)
            if wa is None or wa != wb:
                continue
        pairs.append((a, b))
    return pairs


def cycle_time_check(log: Log, c: dict, period: float) -> Verdict:
    times = sorted(t for t, _ in log.frames.get(c["cycle_time"], []))
    tolerance = c.get("tolerance_s", period * 0.1)
    low, high = period - tolerance, period + tolerance
    pairs = pairs_in_windows(log, times, c.get("during"))
    if not pairs:
        raise Unjudgeable("no gap")
    bad = [(a, b) for a, b in pairs if b - a < low - 1e-9 or b - a > high + 1e-9]
    allowed = c.get("max_violations", 0)
    verdict = "fail" if len(bad) > allowed else "marginal" if bad else "pass"
    outside_by = sorted((max(low - (b - a), (b - a) - high) for a, b in pairs), reverse=True)
    margin = -outside_by[allowed] if len(outside_by) > allowed else None
    evidence = bad if bad else [(pairs[0][0], pairs[-1][1])]
    return Verdict(verdict, len(bad), margin, evidence)


def timeout_check(log: Log, c: dict) -> Verdict:
    times = sorted(t for t, _ in log.frames.get(c["timeout"], []))
    if c.get("during"):
        if not log.steps:
            raise Unjudgeable("no steps")
        spans = log.selected(c["during"])
        if not spans:
            raise Unjudgeable("steps never ran")
        joined: list[list[float]] = []
        for a, b in sorted(spans):
            if joined and a <= joined[-1][1]:
                joined[-1][1] = max(joined[-1][1], b)
            else:
                joined.append([a, b])
        windows = [(a, b) for a, b in joined]
    else:
        start = min(s for _, s, _ in log.steps) if log.steps else log.log_start
        windows = [(start, max(log.log_end, start))]
    gaps = []
    for a, b in windows:
        edges = [a, *[t for t in times if a <= t <= b], b]
        gaps += list(itertools.pairwise(edges))
    longest = max(b - a for a, b in gaps)
    bad = [(a, b) for a, b in gaps if outside(b - a, None, c["max_gap"])]
    evidence = bad if bad else [(windows[0][0], windows[-1][1])]
    return Verdict("fail" if bad else "pass", longest, c["max_gap"] - longest, evidence)


def counter_check(log: Log, c: dict, scale: float, offset: float, length: int) -> Verdict:
    counts = [
        (t, round((v - offset) / scale)) for t, v in log.samples(c["counter"]) if not is_nan(v)
    ]
    times = [t for t, _ in counts]
    windows = None
    if c.get("during"):
        if not log.steps:
            raise Unjudgeable("no steps")
        windows = log.selected(c["during"])
        if not windows:
            raise Unjudgeable("steps never ran")
    judged, errors = 0, []
    for (ta, a), (tb, b) in itertools.pairwise(counts):
        if windows is not None:
            wa, wb = log.window_of(ta, windows), log.window_of(tb, windows)
            if wa is None or wa != wb:
                continue
        judged += 1
        if (b - a) % (1 << length) != 1:
            errors.append((ta, tb))
    if not judged:
        raise Unjudgeable("no pair")
    allowed = c.get("max_errors", 0)
    verdict = "fail" if len(errors) > allowed else "marginal" if errors else "pass"
    evidence = errors if errors else [(times[0], times[-1])]
    return Verdict(verdict, len(errors), float(allowed - len(errors)), evidence)


def crc8(data: bytes) -> int:
    """CRC8 SAE J1850 bit by bit: polynomial 0x1D, init 0xFF, final XOR 0xFF."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def crc_check(log: Log, c: dict, length: int, index: int) -> Verdict:
    frames = sorted(log.frames.get(c["crc"], []), key=lambda f: f[0])
    frames = [(t, p) for t, p in frames if len(p) >= length]
    if c.get("during"):
        if not log.steps:
            raise Unjudgeable("no steps")
        windows = log.selected(c["during"])
        if not windows:
            raise Unjudgeable("steps never ran")
        frames = [(t, p) for t, p in frames if log.window_of(t, windows) is not None]
    if not frames:
        raise Unjudgeable("no frames")
    bad = [(t, t) for t, p in frames if crc8(p[:index] + p[index + 1 : length]) != p[index]]
    allowed = c.get("max_errors", 0)
    verdict = "fail" if len(bad) > allowed else "marginal" if bad else "pass"
    evidence = bad if bad else [(frames[0][0], frames[-1][0])]
    return Verdict(verdict, len(bad), float(allowed - len(bad)), evidence)


# -- diagnostic kinds (dtc, did) -----------------------------------------------------------------
# A diagnostic "log" here is the list of DTC reads an ECU answered, in time order: ``(request's
# status mask, [(code, status), …] as the ECU holds them, "ok" | "nrc")``. The ECU reports a DTC
# when its status shares a bit with the mask (ISO 14229-1 reportDTCByStatusMask).


def _has_all(status: int, bits: int) -> bool:
    return all(status >> b & 1 for b in range(8) if bits >> b & 1)


def dtc_none_with_status(bits: int, reads: list[tuple[int, list[tuple[int, int]], str]]) -> str:
    """No reported DTC has any of ``bits``; only a read whose mask asks for all of them proves
    it; a refused read is an error unless another read already proves a fail."""
    judged, failed = 0, False
    for mask, dtcs, how in reads:
        if how == "nrc":
            failed = True
            continue
        reported = [(c, s) for c, s in dtcs if s & mask]
        if any(s & bits for _, s in reported):
            return "fail"
        if _has_all(mask, bits):
            judged += 1
    return "error" if failed else "pass" if judged else "inconclusive"


def dtc_present(code: int, bits: int, reads: list[tuple[int, list[tuple[int, int]], str]]) -> str:
    """Some read reports ``code`` with all of ``bits``; a refused read is an error."""
    judged, found, failed = 0, False, False
    for mask, dtcs, how in reads:
        if how == "nrc":
            failed = True
            continue
        if bits and not mask & bits:
            continue  # this read could not show it with those bits
        judged += 1
        found |= any(c == code and s & mask and _has_all(s, bits) for c, s in dtcs)
    if failed:
        return "error"
    return "pass" if found else "fail" if judged else "inconclusive"


def did_limits(values: list[float], refused: bool, low: float, high: float,
               marginal_low: float) -> str:  # fmt: skip
    """Every reading within [low, high]; one below ``marginal_low`` is marginal."""
    if any(v < low - slack(low) or v > high + slack(high) for v in values):
        return "fail"
    if refused:
        return "error"
    if not values:
        return "inconclusive"
    return "marginal" if any(v < marginal_low for v in values) else "pass"
