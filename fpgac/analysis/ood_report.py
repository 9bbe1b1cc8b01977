"""The OOD monitor's section of ``report.md`` (facts from the ood pass, ``report.json``'s ``ood``)."""

from __future__ import annotations

from typing import Any


def ood_markdown(facts: dict[str, Any] | None) -> list[str]:
    """The monitored layer and why, k, tau, the stable rank of every layer, and the monitor's memory and
    work next to a Mahalanobis detector's at the same layer."""
    if not facts:
        return []
    ratio = facts["mahalanobis_words"] / max(facts["words"], 1)
    lines = [
        "",
        "## Unknown-data monitor",
        "",
        f"- score `{facts['score']}` on the input of `{facts['layer']}` ({facts['chosen_by']}); "
        f"k = {facts['k']} directions of {facts['taps']} taps, over {facts['patches']} patches",
        f"- threshold tau = {facts['tau']:.6g} ({facts['tau_format']}): flag = num < tau * den; "
        f"{facts['calib_tpr']:.1%} of the calibration batch passes (asked: {facts['tpr']:.0%})",
        f"- memory {facts['words']:,} words ({facts['bits']:,} bits, basis {facts['basis_format']}); "
        f"a Mahalanobis detector here stores {facts['mahalanobis_words']:,} words ({ratio:.1f}x more)",
        f"- extra MACs per sample: {facts['extra_macs']:,}; outputs: {', '.join(facts['outputs'])}",
    ]
    if facts.get("reused_factor"):
        lines.append(
            f"- reuses the low-rank split's first factor `{facts['reused_factor']}` (its output z = A h): "
            f"num = ||Q z||^2, saving {facts['words_saved']:,} words and {facts['macs_saved']:,} MACs"
        )
    if facts.get("warning"):
        lines.append(f"- warning: {facts['warning']}")
    sep = facts.get("separation", {})
    lines += [
        "",
        "| layer | stable rank |" + (" separation (AUROC) |" if sep else ""),
        "|---|---:|" + "---:|" * bool(sep),
    ]
    for name, srank in facts["srank"].items():
        extra = f" {sep[name]:.3f} |" if name in sep else (" |" if sep else "")
        lines.append(f"| `{name.replace('|', chr(92) + '|')}` | {srank:.2f} |{extra}")
    return lines
