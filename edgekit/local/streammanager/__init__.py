"""Stream Manager for the local device: aws.greengrass.StreamManager, built into edgekit.

Owns: the wire protocol of the public Stream Manager SDKs (``protocol``: frames, CBOR,
operation and status codes), stream definitions and S3 export task validation
(``definitions``), the message store with its strategies on full, time to live and
file persistence (``store``), exports: S3 export tasks with status streams
(``exporter``) and Kinesis Data Streams (``kinesis``), the
asyncio server on a loopback port (``server``), client authentication against the
device's IPC server (``auth``), the component's recipe (``recipe``, the provider
``edgekit.local.device.provided`` names) and the process entry point (``__main__``:
``python -m edgekit.local.streammanager serve``).

Must not import the device runtime (``edgekit.local.device``: the device runs this as a
component, and reaches it only through the recipe), the other local servers, or any
layer above the local backend. It uses the foundation (``errors``, ``files``,
``version``), boto3 for S3, cbor2 for the wire format and awsiotsdk to ask the device's
IPC server about client tokens.
"""
