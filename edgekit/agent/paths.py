"""Where a device's model agent listens when its configuration leaves SocketPath empty.

Unix socket paths are limited to 108 bytes, so the socket cannot live in the
component's work folder; a short path in /tmp derived from that folder keeps two
device roots on one machine (two local homes, parallel test runs) apart. The
agent component and the inference app both call this, so they always agree.
"""

from __future__ import annotations

import hashlib


def socket_for_work(agent_work_path: str) -> str:
    digest = hashlib.sha1(agent_work_path.encode("utf-8")).hexdigest()[:12]
    return f"/tmp/edgekit-agent-{digest}.sock"


if __name__ == "__main__":  # used by the agent component's Run script
    import sys

    print(socket_for_work(sys.argv[1]))
