"""kcat (librdkafka's command-line client) against `stormlog serve`."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (.ci/run installs it)")


def kcat(*args, input=None):
    return subprocess.run(["kcat", *args], input=input, capture_output=True, text=True, timeout=60, check=True)


def test_kcat_produces_and_consumes(bootstrap):
    lines = [f"k{i}:value-{i}" for i in range(100)]
    kcat("-b", bootstrap, "-P", "-t", "kcat", "-K:", "-X", "acks=all", "-X", "enable.idempotence=true", input="\n".join(lines) + "\n")
    out = kcat("-b", bootstrap, "-C", "-t", "kcat", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n").stdout
    assert sorted(out.split()) == sorted(lines)
    meta = kcat("-b", bootstrap, "-L", "-t", "kcat").stdout
    assert "3 brokers" in meta and 'topic "kcat" with 2 partitions' in meta


def test_kcat_group_consumer_reads_everything(bootstrap):
    out = kcat("-b", bootstrap, "-G", "kcat-group", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%s\n", "kcat").stdout
    assert len(out.split()) >= 100
