"""The independent FHIR validator (``validate.mjs``: medplum on Node) as the tests call it.

Installed by ``make fhir-validator`` (``make test`` runs it). Without Node the tests that need it
are skipped, unless ``CLINIC_REQUIRE_SERVICES=1`` (CI), where they fail, as tests/conftest.py
treats PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "validate.mjs"
PACKAGES = HERE / "node_modules" / "@medplum"


@dataclass
class Report:
    """What medplum said about each resource it was given."""

    checked: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


class Medplum:
    def __init__(self, node: str) -> None:
        self.node = node

    def validate(self, resources: Iterable[dict[str, Any]]) -> Report:
        """Validate resources (a Bundle among them is validated whole and entry by entry)."""
        ndjson = "".join(json.dumps(resource) + "\n" for resource in resources)
        done = subprocess.run(
            [self.node, str(SCRIPT)],
            input=ndjson,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=HERE,
            check=False,
        )
        if done.returncode not in {0, 1}:
            pytest.fail(f"the FHIR validator could not run ({done.returncode}): {done.stdout}{done.stderr}")
        body = json.loads(done.stdout)
        return Report(checked=body["checked"], errors=body["errors"], warnings=body["warnings"])


def medplum_or_skip() -> Medplum:
    """The validator; skips without Node unless services are required, fails when it is not installed."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CLINIC_REQUIRE_SERVICES") == "1":
            pytest.fail("the FHIR validator needs Node.js (node >= 20.19) when CLINIC_REQUIRE_SERVICES=1")
        pytest.skip("the FHIR validator needs Node.js: sudo apt-get install nodejs npm")
    if not (PACKAGES / "core").is_dir() or not (PACKAGES / "definitions").is_dir():
        pytest.fail("the FHIR validator is not installed: run `make fhir-validator` (npm ci in tests/fhir_validator)")
    return Medplum(node)
