"""Thin a long metric line to a number of points a browser draws quickly, keeping its shape.

Largest-Triangle-Three-Buckets (Steinarsson, "Downsampling Time Series for Visual
Representation", 2013): the first and last points stay, the rest is cut into equal buckets and
each bucket keeps the point that makes the largest triangle with the point kept before it and the
average of the next bucket. Spikes survive (a plain stride would drop them); the result is a
subset of the input, so every value drawn is one that was logged.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def lttb(points: Sequence[Point], limit: int) -> list[Point]:
    """At most ``limit`` of ``points`` (sorted by x), chosen by Largest-Triangle-Three-Buckets.

    Returns the points unchanged when there are ``limit`` or fewer.
    """
    n = len(points)
    if limit < 3:
        raise ValueError("downsampling keeps at least 3 points (the first, the last and one between)")
    if n <= limit:
        return list(points)
    kept = [points[0]]
    every = (n - 2) / (limit - 2)  # points per bucket, the first and last left out
    a = 0  # index of the point kept last
    for i in range(limit - 2):
        start = int(i * every) + 1
        end = int((i + 1) * every) + 1
        # The next bucket's average (for the last bucket: the last point).
        nxt_start, nxt_end = end, min(int((i + 2) * every) + 1, n)
        if nxt_start >= n - 1 or nxt_end <= nxt_start:
            avg_x, avg_y = points[-1]
        else:
            span = nxt_end - nxt_start
            avg_x = sum(p[0] for p in points[nxt_start:nxt_end]) / span
            avg_y = sum(p[1] for p in points[nxt_start:nxt_end]) / span
        ax, ay = points[a]
        best, best_area = start, -1.0
        for j in range(start, min(end, n - 1)):
            x, y = points[j]
            area = abs((ax - avg_x) * (y - ay) - (ax - x) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        kept.append(points[best])
        a = best
    kept.append(points[-1])
    return kept
