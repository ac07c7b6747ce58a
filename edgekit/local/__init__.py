"""The local backend: emulated AWS endpoints, a Greengrass v2 control plane, an MQTT
broker and device runtimes, all on loopback.

Owns: the local home (``home``), starting and stopping the detached servers
(``endpoints``, ``process``, ``moto_server`` with ``moto_cloudformation``, and
``moto_shadows``: IoT Core's Device Shadow service on the broker's topics), moto's
state across restarts (``moto_state``: the snapshot file; ``moto_backends``: pickling
moto's backends; ``moto_keeper``: when to save), boto3 clients
on the local endpoints for the backend's own use (``boto``), and the subsystems
``greengrass`` (control plane), ``mqtt`` (broker), ``ipc`` (Greengrass IPC),
``device`` (the nucleus) and ``streammanager`` (aws.greengrass.StreamManager, run by the
device as a component).

Must not import the layers above it (``edgekit.clients``, ``deploy``, ``provision``,
``components``, ``notebook``, ``cli``...): it builds what it needs from the local
endpoints itself. It may use the foundation: ``errors``, ``files``, ``awsapi``,
``settings``, ``recipes``, ``unix_socket``.
"""
