"""Get secret values over IPC, as in the developer guide's "Retrieve secret values" example."""

import sys
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError, UnauthorizedError


def print_secret(ipc_client, secret_id):
    try:
        response = ipc_client.get_secret_value(secret_id=secret_id, version_stage="AWSCURRENT")
        print(f"secret {secret_id}: {response.secret_value.secret_string}")
        print(f"secret {secret_id} version stages: {response.version_stage}")
    except UnauthorizedError as e:
        print(f"secret {secret_id}: UnauthorizedError: {e.message}")
    except ResourceNotFoundError as e:
        print(f"secret {secret_id}: ResourceNotFoundError: {e.message}")


def main():
    ipc_client = GreengrassCoreIPCClientV2()
    for secret_id in sys.argv[1:]:
        if secret_id:
            print_secret(ipc_client, secret_id)
    print_secret(ipc_client, "a-secret-nobody-configured")
    print("done")
    ipc_client.close()


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
