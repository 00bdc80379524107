"""The human-readable page of an evidence bundle (report.html): the incident, its case file, the
track drawn as inline SVG, every event and note, the frames received. One self-contained file
for a prosecutor to read or print to PDF from a browser: no script, no style or image fetched
from anywhere (its Content-Security-Policy forbids both), every text from the records escaped.
Times are UTC, ISO 8601."""
from __future__ import annotations

import html
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_SVG_W, _SVG_H, _MARGIN = 640, 420, 24
_STYLE = """
body { font: 11pt/1.4 sans-serif; margin: 2em; color: #000; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #888; padding: 2px 6px; text-align: left; vertical-align: top; }
td.mono, .mono { font-family: monospace; font-size: 9pt; word-break: break-all; }
td.time { white-space: nowrap; }
.note { white-space: pre-wrap; }
svg { border: 1px solid #888; background: #fafafa; }
@media print { body { margin: 0; } tr { page-break-inside: avoid; } }
"""
_SKIP = frozenset({"at", "what", "by"})


def utc_iso(at: float) -> str:
    """A time as ISO 8601 in UTC with milliseconds, e.g. 2026-11-30T10:42:24.123Z."""
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds"
                                                          ).replace("+00:00", "Z")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value):
        return utc_iso(float(value))
    return "unknown"


def _rows(rows: Iterable[Iterable[object]], head: Iterable[str] = (),
          classes: dict[int, str] | None = None) -> str:
    """A table; `classes` gives columns a CSS class (mono, time)."""
    names = list(head)
    out = ["<table>"]
    if names:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in names) + "</tr>")
    for row in rows:
        cells = "".join(f'<td class="{(classes or {})[i]}">{_e(v)}</td>'
                        if i in (classes or {}) else f"<td>{_e(v)}</td>"
                        for i, v in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def track_svg(track: list[dict[str, Any]]) -> str:
    """The track as an inline SVG: north up, east right, distances to scale (an
    equirectangular projection about the track's mean latitude: metres-exact enough over the
    few kilometres of an incident)."""
    points = [(float(p["lat"]), float(p["lon"]), p.get("update_no")) for p in track]
    if not points:
        return "<p>No position was received.</p>"
    mid = math.cos(math.radians(sum(p[0] for p in points) / len(points)))
    xs = [p[1] * mid for p in points]
    ys = [p[0] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = min(_SVG_W, _SVG_H) - 2 * _MARGIN
    coords = [(_MARGIN + (x - min(xs)) / span * scale, _SVG_H - _MARGIN - (y - min(ys)) / span
               * scale) for x, y in zip(xs, ys)]
    marks = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if i in (0, len(coords) - 1) else 3}"'
        f' fill="{"#080" if i == 0 else "#c00" if i == len(coords) - 1 else "#03c"}">'
        f"<title>update {_e(points[i][2])}: {points[i][0]:.6f}, {points[i][1]:.6f}</title>"
        "</circle>" for i, (x, y) in enumerate(coords))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    metres = span / mid * 111_320 if mid else 0.0
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}"'
            f' viewBox="0 0 {_SVG_W} {_SVG_H}" role="img" aria-label="track">'
            f'<polyline points="{line}" fill="none" stroke="#03c" stroke-width="2"/>{marks}'
            f'<text x="{_MARGIN}" y="16" font-size="12">N up; frame about {metres:,.0f} m'
            f" across; green: first fix, red: last</text></svg>")


def _details(event: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {_time(v) if k.endswith('_time') else v}"
                     for k, v in sorted(event.items()) if k not in _SKIP)


def _case(case: object) -> str:
    if not isinstance(case, dict):
        return "<p>No case file is linked to this button.</p>"
    measures = case.get("measures") or []
    return _rows([("Case", case.get("case_ref")), ("Victim", case.get("victim")),
                  ("Victim's phone", case.get("victim_phone")),
                  ("Suspect", case.get("suspect")),
                  ("About the suspect", case.get("suspect_notes")),
                  ("Measures", "; ".join(str(m) for m in measures) or "none recorded"),
                  ("Weapons feared", "yes" if case.get("weapons") else "no")])


def render_report(timeline: dict[str, Any], key_fingerprint: str, exported_at: float) -> str:
    """The page for `timeline` (centre/timeline.py's shape, plus "case")."""
    ref = timeline["incident"]
    kind = "TEST alarm" if timeline.get("test") else "Stalking alarm"
    events = timeline.get("events", [])
    notes = [e for e in events if e.get("what") == "note"]
    summary = _rows([("Incident", ref), ("Kind", kind), ("Status", timeline.get("status")),
                     ("Case", timeline.get("case_ref") or "none"),
                     ("Button", f"{int(timeline['button_id']):08x}"),
                     ("Alarm key", timeline.get("key")),
                     ("Opened (centre)", _time(timeline.get("opened_at"))),
                     ("Resolved", _time(timeline.get("resolved_at"))
                      if timeline.get("resolved_at") is not None else "not resolved")])
    event_rows = _rows(((_time(e.get("at")), e.get("what"), e.get("by"), _details(e))
                        for e in events), ("Time (UTC)", "What", "By", "Details"),
                       {0: "time", 3: "mono"})
    note_html = "".join(
        f"<h3>{_e(n.get('author', ''))}, {_e(_time(n.get('at')))}</h3>"
        f'<p class="note">{_e(n.get("text", ""))}</p>' for n in notes) or "<p>No notes.</p>"
    frames = _rows(((_time(f.get("received_at")), f.get("channel"), f.get("verdict"),
                     f.get("key"), f.get("frame_hex")) for f in timeline.get("frames", [])),
                   ("Received (UTC)", "Channel", "Verdict", "Key", "Frame (hex)"),
                   {0: "time", 3: "mono", 4: "mono"})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Evidence {_e(ref)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_e(kind)} {_e(ref)}: evidence report</h1>
{summary}
<h2>Case file</h2>
{_case(timeline.get("case"))}
<h2>Track ({len(timeline.get("track", []))} positions)</h2>
{track_svg(timeline.get("track", []))}
<h2>Events</h2>
{event_rows}
<h2>Notes</h2>
{note_html}
<h2>Frames received</h2>
{frames}
<p>Exported {_e(utc_iso(exported_at))}. This page is one file of a signed evidence bundle:
check the whole bundle with <span class="mono">msa verify</span> and the centre's public key
(fingerprint <span class="mono">{_e(key_fingerprint)}</span>).</p>
</body></html>
"""
