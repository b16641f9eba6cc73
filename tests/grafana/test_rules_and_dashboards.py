"""The rules pass promtool's checks and unit tests; the checked-in dashboards are what the generator
makes (regenerate with `.venv/bin/python -m grafana.dashboards.generate`)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "grafana" / "alerts"


def promtool(*args):
    res = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_rules_check():
    assert "SUCCESS" in promtool("check", "rules", str(ALERTS / "hakwatch.rules.yml"))


def test_rules_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", str(ALERTS / "tests" / "hakwatch.test.yml"))


def test_deployment_scrape_config_is_valid(tmp_path):
    """As deployed: the rules file where the config expects it (here, in a scratch copy)."""
    text = (ROOT / "grafana" / "deploy" / "prometheus.yml").read_text()
    assert "/etc/prometheus/rules/hakwatch.rules.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/hakwatch.rules.yml", str(ALERTS / "hakwatch.rules.yml")))
    assert "SUCCESS" in promtool("check", "config", str(config))


def test_dashboards_are_generated():
    from grafana.dashboards.generate import DASHBOARDS, OUT, render
    for name, make in DASHBOARDS.items():
        assert (OUT / name).read_text() == render(make()), \
            f"grafana/dashboards/{name} is stale: run .venv/bin/python -m grafana.dashboards.generate"


def test_every_panel_has_unit_description_and_thresholds():
    import json
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        for p in json.loads(path.read_text())["panels"]:
            if p["type"] == "row":
                continue
            assert p.get("description"), f"{path.name}: {p['title']} has no description"
            defaults = p.get("fieldConfig", {}).get("defaults", {})
            if p["type"] != "heatmap":
                assert defaults.get("unit"), f"{path.name}: {p['title']} has no unit"
                assert defaults.get("thresholds", {}).get("steps"), f"{path.name}: {p['title']} has no thresholds"
