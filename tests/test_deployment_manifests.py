"""The Kubernetes manifests in docs/deployment.md pass the Kubernetes JSON schemas, strictly (no unknown fields)."""

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vlm_router.config import parse_config

DOC = Path(__file__).parent.parent / "docs" / "deployment.md"
# an older release still widely run, and the newest whose schemas kubernetes-validate bundles
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.major_minor(kubernetes_validate.latest_version())]


def manifests() -> list[dict[str, Any]]:
    """Every document of the page's yaml blocks that has an apiVersion and a kind."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    documents = [document for block in blocks for document in yaml.safe_load_all(block)]
    return [document for document in documents if isinstance(document, dict) and "apiVersion" in document and "kind" in document]


MANIFESTS = manifests()


def find(kind: str) -> dict[str, Any]:
    (manifest,) = [manifest for manifest in MANIFESTS if manifest["kind"] == kind]
    return manifest


def test_the_page_has_every_kind():
    kinds = {manifest["kind"] for manifest in MANIFESTS}
    assert kinds == {"PersistentVolumeClaim", "Job", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", [pytest.param(m, id=f"{m['kind']}/{m['metadata']['name']}") for m in MANIFESTS])
def test_manifest_is_valid(manifest: dict[str, Any], version: str):
    kubernetes_validate.validate(manifest, version, strict=True)


def test_an_unknown_field_is_refused():
    deployment = copy.deepcopy(find("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullSecret"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullSecret"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_configmap_models_yaml_parses():
    config = parse_config(yaml.safe_load(find("ConfigMap")["data"]["models.yaml"]))
    out = find("Job")["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert [str(model.path) for model in config.models] == [out], "the server reads the model the job converts"
