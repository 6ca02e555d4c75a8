"""config/fastdds_large_images.xml: a well-formed Fast DDS profile whose shared-memory
segment holds camera images (the default 512 KiB segment does not)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}


def test_profile_enables_a_large_shm_segment_by_default(repo_root: Path) -> None:
    root = ET.parse(repo_root / "config" / "fastdds_large_images.xml").getroot()
    shm = [
        d
        for d in root.findall("f:transport_descriptors/f:transport_descriptor", NS)
        if d.findtext("f:type", namespaces=NS) == "SHM"
    ]
    assert len(shm) == 1
    segment = int(shm[0].findtext("f:segment_size", namespaces=NS) or 0)
    assert segment >= 2 * 1920 * 1080 * 3  # two 1080p rgb8 frames at least
    (participant,) = root.findall("f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.findall("f:rtps/f:userTransports/f:transport_id", NS)]
    assert shm[0].findtext("f:transport_id", namespaces=NS) in used
    assert "udp" in used  # other machines stay reachable
