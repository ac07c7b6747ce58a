"""Defer deployments as in the developer guide's "Defer component updates" tutorial."""

import sys
import threading
import time
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

EVENTS_FILE = sys.argv[1]
DEFER_TIMES = int(sys.argv[2])
RECHECK_MS = int(sys.argv[3])

ipc_client = None
deferred = {}
lock = threading.Lock()


def record(line):
    print(line)
    with lock, open(EVENTS_FILE, "a") as events:
        events.write(line + "\n")


def on_component_update_event(event):
    try:
        if event.pre_update_event is not None:
            deployment_id = event.pre_update_event.deployment_id
            count = deferred.get(deployment_id, 0)
            if count < DEFER_TIMES:
                deferred[deployment_id] = count + 1
                record(f"pre {deployment_id} deferred")
                ipc_client.defer_component_update(
                    deployment_id=deployment_id, message="busy", recheck_after_ms=RECHECK_MS
                )
            else:
                record(f"pre {deployment_id} acknowledged")
                ipc_client.defer_component_update(deployment_id=deployment_id, recheck_after_ms=0)
        elif event.post_update_event is not None:
            record(f"post {event.post_update_event.deployment_id}")
    except Exception:
        traceback.print_exc()


def main():
    global ipc_client
    ipc_client = GreengrassCoreIPCClientV2()
    ipc_client.subscribe_to_component_updates(on_stream_event=on_component_update_event)
    record("subscribed")
    while True:
        time.sleep(10)


if __name__ == "__main__":
    main()
