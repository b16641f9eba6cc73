"""The rules pass promtool's checks and unit tests; the checked-in dashboards are what the generator
makes (regenerate with `.venv/bin/python -m grafana.dashboards.generate`)."""

import re
import subprocess
from pathlib import Path

from certs import make_cert

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


def test_churn_rules_count_the_churn_syscalls():
    """The rules are YAML, which cannot read probes/hakwatch_maps.h: held to its list here, the recorded
    rate the churn alert divides and the syscalls its description names."""
    import yaml

    from hakwatch.contract.layout import load
    rules = {r.get("record") or r.get("alert"): r
             for g in yaml.safe_load((ALERTS / "hakwatch.rules.yml").read_text())["groups"] for r in g["rules"]}
    counted = re.fullmatch(r'.*\{syscall=~"([\w|]+)"\}.*', rules["hakmem:memory_syscalls:rate1m"]["expr"].strip())
    assert counted and counted.group(1).split("|") == list(load().churn_syscalls), rules["hakmem:memory_syscalls:rate1m"]["expr"]
    named = re.match(r"Memory syscalls \(([\w/]+)\)", rules["HakmemSyscallChurn"]["annotations"]["description"])
    assert named and named.group(1).split("/") == list(load().churn_syscalls), rules["HakmemSyscallChurn"]["annotations"]


def test_deployment_scrape_config_is_valid(tmp_path):
    """As deployed: the rules file, hakwatch's CA and the password where the config expects them (here,
    in a scratch copy)."""
    text = (ROOT / "deploy" / "prometheus.yml").read_text()
    crt, _ = make_cert(tmp_path)
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    for deployed, here in (("/etc/prometheus/rules/hakwatch.rules.yml", ALERTS / "hakwatch.rules.yml"),
                           ("/etc/prometheus/hakwatch-ca.crt", crt), ("/etc/prometheus/hakwatch.password", password)):
        assert deployed in text
        text = text.replace(deployed, str(here))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    assert "SUCCESS" in promtool("check", "config", str(config))


def test_deployment_web_config_is_valid(tmp_path):
    """hakwatch's web-config.yml as shipped, with a real certificate and hash where it says to put them."""
    import bcrypt

    from hakwatch.export.webconfig import load
    text = (ROOT / "deploy" / "web-config.yml").read_text()
    crt, key = make_cert(tmp_path)
    text = text.replace("/etc/hakwatch/hakwatch.crt", str(crt)).replace("/etc/hakwatch/hakwatch.key", str(key))
    text = re.sub(r"\$2b\$10\$REPLACE\S+", bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode(), text)
    config = tmp_path / "web-config.yml"
    config.write_text(text)
    web = load(str(config))
    assert web.tls is not None and list(web.users) == ["prometheus"]
    unit, options = (ROOT / "deploy" / "hakwatch.service").read_text(), (ROOT / "deploy" / "hakwatch.default").read_text()
    assert "EnvironmentFile=-/etc/default/hakwatch" in unit and "$HAKWATCH_OPTS" in unit
    assert "--web.config.file /etc/hakwatch/web-config.yml" in options


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
