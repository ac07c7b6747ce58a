"""The local backend: emulated AWS endpoints, a Greengrass v2 control plane,
an MQTT broker and a device runtime, all on loopback."""
