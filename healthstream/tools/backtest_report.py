"""The backtest and calibration reports as one self-contained HTML page with SVG plots.

No plotting library: three small plots drawn as SVG (score distribution by outcome, ROC
curves of the score and the baselines, calibration), and the figures as tables.
"""

from __future__ import annotations

from html import escape
from typing import Any

W, H, PAD = 360, 260, 40
COLOURS = {
    "score": "#1f6feb",
    "calibrated": "#8250df",
    "recency": "#d29922",
    "frequency": "#57ab5a",
    "stayed": "#8c959f",
    "churned": "#cf222e",
}


def _x(v: float) -> float:
    return PAD + v * (W - 2 * PAD)


def _y(v: float) -> float:
    return H - PAD - v * (H - 2 * PAD)


def _axes(x_label: str, y_label: str, x_ticks: bool = True) -> str:
    ticks = "".join(
        (
            f'<text x="{_x(t):.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">'
            f"{t:g}</text>"
            if x_ticks
            else ""
        )
        + f'<text x="{PAD - 6}" y="{_y(t) + 3:.1f}" font-size="10" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    return (
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#333"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>'
        f"{ticks}"
        f'<text x="{W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{H / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {H / 2})">{escape(y_label)}</text>'
    )


def _legend(names: list[tuple[str, str]], bottom: bool = False) -> str:
    """A legend in the top-right corner, or the bottom-right one (clear of ROC curves)."""
    top = H - PAD - 8 - 14 * len(names) if bottom else PAD
    return "".join(
        f'<rect x="{W - PAD - 130}" y="{top + 14 * i}" width="10" height="10" fill="{c}"/>'
        f'<text x="{W - PAD - 116}" y="{top + 9 + 14 * i}" font-size="10">{escape(n)}</text>'
        for i, (n, c) in enumerate(names)
    )


def roc_svg(curves: dict[str, tuple[list[Any], float | None]]) -> str:
    """ROC curves, one per named risk, with the chance diagonal."""
    lines = []
    legend = []
    for name, (points, auc) in curves.items():
        colour = COLOURS.get(name, "#444")
        path = " ".join(f"{_x(fp):.1f},{_y(tp):.1f}" for fp, tp in points)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        legend.append((f"{name} (AUC {auc if auc is not None else 'n/a'})", colour))
    diagonal = (
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" '
        'stroke="#999" stroke-dasharray="4 3"/>'
    )
    return _svg(
        "roc",
        "ROC curve",
        _axes("false positive rate", "true positive rate") + diagonal + "".join(lines),
        _legend(legend, bottom=True),
    )


def distribution_svg(distribution: dict[str, list[int]]) -> str:
    """Share of stayers and of churners in each band of 10 points."""
    bars = []
    band_w = (W - 2 * PAD) / 10
    for k, outcome in enumerate(("stayed", "churned")):
        counts = distribution[outcome]
        total = sum(counts) or 1
        for band, n in enumerate(counts):
            share = n / total
            x = PAD + band * band_w + 2 + k * (band_w - 4) / 2
            bars.append(
                f'<rect class="{outcome}" x="{x:.1f}" y="{_y(share):.1f}" '
                f'width="{(band_w - 4) / 2:.1f}" height="{_y(0) - _y(share):.1f}" '
                f'fill="{COLOURS[outcome]}"><title>{outcome}, score {band * 10}-'
                f"{band * 10 + 9}: {n}</title></rect>"
            )
    labels = "".join(
        f'<text x="{PAD + (b + 0.5) * band_w:.1f}" y="{H - PAD + 26}" font-size="9" '
        f'text-anchor="middle">{b * 10}</text>'
        for b in range(10)
    )
    return _svg(
        "distribution",
        "Score distribution by outcome",
        _axes("", "share of the group", x_ticks=False) + labels + "".join(bars),
        _legend([("stayed", COLOURS["stayed"]), ("churned", COLOURS["churned"])])
        + f'<text x="{W / 2}" y="{H - 2}" font-size="11" text-anchor="middle">score</text>',
    )


def calibration_svg(bins: list[dict[str, Any]], x_label: str) -> str:
    """Observed churn rate against the predicted chance, bin by bin."""
    path = " ".join(f"{_x(b['predicted']):.1f},{_y(b['observed']):.1f}" for b in bins)
    dots = "".join(
        f'<circle cx="{_x(b["predicted"]):.1f}" cy="{_y(b["observed"]):.1f}" r="3.5" '
        f'fill="{COLOURS["score"]}"><title>{b["accounts"]} accounts: predicted '
        f"{b['predicted']:.2f}, observed {b['observed']:.2f}</title></circle>"
        for b in bins
    )
    diagonal = (
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" '
        'stroke="#999" stroke-dasharray="4 3"/>'
    )
    line = f'<polyline fill="none" stroke="{COLOURS["score"]}" points="{path}"/>'
    return _svg(
        "calibration",
        "Calibration",
        _axes(x_label, "observed churn rate") + diagonal + line + dots,
        "",
    )


def _svg(name: str, title: str, body: str, legend: str) -> str:
    return (
        f'<figure><svg id="{name}" xmlns="http://www.w3.org/2000/svg" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">'
        f"{body}{legend}</svg><figcaption>{escape(title)}</figcaption></figure>"
    )


def _table(rows: list[list[Any]], header: list[str], table_id: str | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; max-width: 80em; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figcaption { font-size: 0.9em; text-align: center; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: right; }
th { background: #f6f8fa; }
.verdict { font-size: 1.1em; }
.warning { color: #9a6700; }
td:first-child, #riskiest_accounts td:last-child, #churners_ranked_safe td:last-child {
  text-align: left;
}
"""


def _figures(report: dict[str, Any]) -> str:
    baselines = report["baselines"]
    zones = [
        [
            zone,
            z["accounts"],
            _percent(z["share"]),
            z["churned"],
            _percent(z["churn_rate"]),
            f"{_percent(z['churn_rate_ci'][0])} to {_percent(z['churn_rate_ci'][1])}",
        ]
        for zone, z in report["zones"].items()
    ]
    lead = report["lead_time"]
    return (
        _table(
            zones,
            ["zone", "accounts", "share", "churned", "churn rate", "churn rate, 95% interval"],
            "zones",
        )
        + _table(
            [
                ["score (100 - score as risk)", report["auc"]],
                ["recency only (days since the last event)", baselines["recency"]["auc"]],
                ["frequency only (events in the last 30 days)", baselines["frequency"]["auc"]],
            ],
            ["ranking", "AUC"],
        )
        + _table(
            [
                [
                    report["critical"]["precision"],
                    report["critical"]["recall"],
                    report["top_decile_lift"],
                    f"{lead['churners_flagged_before_churn']} of {lead['churners']}",
                    lead["median_days"],
                ]
            ],
            [
                "critical: precision",
                "critical: recall",
                "lift of the riskiest 10%",
                "churners out of healthy at the cutoff",
                "median days out of healthy before churn",
            ],
        )
    )


NAMED = {
    "riskiest_accounts": "The riskiest accounts (lowest score first)",
    "churners_ranked_safe": "The churners the score ranked as safe (highest score first)",
}


def _named_accounts(report: dict[str, Any]) -> str:
    """The two lists of accounts by name, each under its heading."""
    header = ["account", "score", "zone", "churned", "days since last event", "main reason"]
    out = ""
    for key, heading in NAMED.items():
        rows = [
            [
                a["account_id"],
                a["score"],
                a["zone"],
                "yes" if a["churned"] else "no",
                a["days_since_event"],
                a["reason"],
            ]
            for a in report[key]
        ]
        out += f"<h2>{escape(heading)}</h2>" + (
            _table(rows, header, key) if rows else "<p>None.</p>"
        )
    return out


def render_backtest(report: dict[str, Any]) -> str:
    """The backtest report page."""
    baselines = report["baselines"]
    best = max(
        (baselines["recency"]["auc"] or 0, "recency"),
        (baselines["frequency"]["auc"] or 0, "frequency"),
    )
    verdict = (
        f"The score ranks churners with AUC {report['auc']}; the best baseline "
        f"({best[1]}) reaches {best[0]}."
    )
    curves = {
        "score": (report["roc"], report["auc"]),
        "recency": (baselines["recency"]["roc"], baselines["recency"]["auc"]),
        "frequency": (baselines["frequency"]["roc"], baselines["frequency"]["auc"]),
    }
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>healthstream backtest at {escape(report['at'])}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Backtest at {escape(report['at'])}, horizon {report['horizon_days']} days</h1>"
        f"<p>Profile <code>{escape(report['profile'])}</code> "
        f"(config {escape(report['config_version'])}); churn from {escape(report['labels'])}. "
        f"{report['accounts']} accounts scored, {report['churned']} churned in the horizon; "
        f"{report['excluded_churned_before']} left out for churning before the date"
        + (
            f"; {report['unlabelled_accounts']} not in the label file, counted as staying"
            if report.get("unlabelled_accounts")
            else ""
        )
        + f". The data runs from {escape(report['data_span']['first'])} to "
        f"{escape(report['data_span']['last'])}.</p>"
        + "".join(f'<p class="warning">{escape(w)}</p>' for w in report["warnings"])
        + f'<p class="verdict">{escape(verdict)}</p>'
        + distribution_svg(report["score_distribution"])
        + roc_svg(curves)
        + calibration_svg(report["calibration"], "risk = 1 - score / 100")
        + _figures(report)
        + _named_accounts(report)
        + "</body></html>"
    )


def render_calibration(report: dict[str, Any]) -> str:
    """The calibration report page: the fit, then the original and calibrated profiles side by
    side at the test date."""
    test = report["test"]
    original, calibrated = test["original"], test["calibrated"]
    baselines = calibrated["baselines"]
    coefficients = [
        [c["signal"], c["category"], c["coefficient"], c["weight"]]
        for c in report["fit"]["coefficients"]
    ]
    curves = {
        "score": (original["roc"], original["auc"]),
        "calibrated": (calibrated["roc"], calibrated["auc"]),
        "recency": (baselines["recency"]["roc"], baselines["recency"]["auc"]),
        "frequency": (baselines["frequency"]["roc"], baselines["frequency"]["auc"]),
    }
    comparison = [
        [f"profile {report['profile']}", original["auc"], original["top_decile_lift"]],
        ["calibrated profile", calibrated["auc"], calibrated["top_decile_lift"]],
        ["recency only", baselines["recency"]["auc"], None],
        ["frequency only", baselines["frequency"]["auc"], None],
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>healthstream calibration</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Calibration: trained at {escape(report['train_at'])}, tested at "
        f"{escape(report['test_at'])}, horizon {report['horizon_days']} days</h1>"
        f"<p>Fitted on {report['fit']['accounts']} accounts ({report['fit']['churned']} "
        f"churned), L2 penalty {report['fit']['l2']}. The profile written: "
        f"<code>{escape(report['profile_file'])}</code>.</p>"
        + _table(comparison, ["at the test date", "AUC", "lift of the riskiest 10%"])
        + roc_svg(curves)
        + distribution_svg(calibrated["score_distribution"])
        + calibration_svg(report["fit"]["calibration"], "fitted churn chance (test date)")
        + calibration_checks(report)
        + "<h2>Coefficients and weights</h2>"
        + _table(coefficients, ["signal", "category", "coefficient (per SD)", "weight"])
        + "<h2>Calibrated profile at the test date</h2>"
        + _figures(calibrated)
        + "</body></html>"
    )


def calibration_checks(report: dict[str, Any]) -> str:
    """The penalty chosen by cross-validation, the fitted ranking against the profile's own
    (and whether the profile kept its weights), and each zone's churn rate with its 95%
    interval at both dates."""
    fit, zones = report["fit"], report["zones"]
    grid = [[g["l2"], g["log_loss"], g["auc"]] for g in fit["validation"]["grid"]]
    c = fit["comparison"]
    verdict = (
        f"The profile kept its own weights: {report['fallback_reason']}"
        if report["fell_back"]
        else "The fitted weights ranked held-out churners better than the profile's scores."
    )
    rows = [
        [
            part,
            zone,
            z["accounts"],
            z["churned"],
            z["churn_rate"],
            "–".join(map(str, z["churn_rate_ci"])),
        ]
        for part in ("train", "test")
        for zone, z in zones[part]["zones"].items()
    ]
    order = ", ".join(
        f"{part}: {'yes' if zones[part]['ordered'] else 'no'}" for part in ("train", "test")
    )
    kept = f" (kept: {zones['kept_reason']})" if zones["kept_reason"] else ""
    return (
        f"<h2>Validation on the training date</h2><p>L2 penalty {fit['l2']:g}, chosen by "
        f"{escape(fit['l2_chosen_by'])}.</p>"
        + _table(grid, ["L2 penalty", "log-loss", "AUC"])
        + _table(
            [[c["fitted_auc"], c["original_auc"], c["difference"], c["standard_error"]]],
            ["fitted AUC", "profile AUC", "difference", "standard error"],
        )
        + f'<p class="verdict">{escape(verdict)}</p>'
        + f"<h2>Zones</h2><p>healthy from {zones['thresholds']['healthy']:g}, at risk from "
        f"{zones['thresholds']['at_risk']:g}{escape(kept)}. Critical churns more than at risk, "
        f"and at risk more than healthy: {order}.</p>"
        + _table(rows, ["date", "zone", "accounts", "churned", "churn rate", "95% interval"])
    )
